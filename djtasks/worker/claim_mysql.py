"""The claim's statements on MariaDB and MySQL.

Neither has UPDATE ... RETURNING, so a claim there is a locking SELECT of
the rows, an UPDATE of the same rows by primary key, and the claimed values
computed here from what the SELECT read (the UPDATE's changes are known:
the status, the worker, one more attempt, the start times). Both run in one
transaction (the caller's atomic block), so the rows stay locked from the
SELECT to the COMMIT and no other claimer can take them in between.

Neither has partial indexes either: djtasks_job_ready there is a full index
led by the columns of the partial index's condition (djtasks.schema), so
the equalities on status, limited, paused, backend and queue_name select
one contiguous range, already in claim order; FORCE INDEX keeps the
optimizer from choosing another index on a table whose statistics are off.
InnoDB's FOR UPDATE SKIP LOCKED skips rows another claimer holds, as on
PostgreSQL. Each queue is its own range, so each gets its own statement.
"""

from djtasks.models import Job

TABLE = Job._meta.db_table

# {columns}: the columns the caller wants; {skip_test}: tasks left out.
_CANDIDATES = f"""
SELECT {{columns}} FROM {TABLE} FORCE INDEX (djtasks_job_ready)
WHERE status = 'READY' AND limited = 0 AND paused = 0 AND backend = %s
    AND queue_name = %s AND available_at <= %s{{skip_test}}
ORDER BY priority DESC, available_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

# The rows claim_limited chose, locked again by key (they are locked
# already: this only reads them, in this transaction).
_CHOSEN = f"""
SELECT {{columns}} FROM {TABLE}
WHERE id IN ({{ids}}) AND status = 'READY'
FOR UPDATE
"""

# What the claim writes; the values the claimed jobs get in Python below
# must match it (see running()).
_MARK_RUNNING = f"""
UPDATE {TABLE} SET
    status = 'RUNNING',
    worker_id = %s,
    attempts = attempts + 1,
    worker_ids = JSON_ARRAY_APPEND(worker_ids, '$', %s),
    started_at = COALESCE(started_at, %s),
    last_attempted_at = %s
WHERE id IN ({{ids}})
"""


def candidates(cursor, connection, columns, backend, queues, limit, now, skip_tasks):
    """Up to ``limit`` due READY rows (the ``columns`` asked for), best first, locked.

    ``columns`` must hold priority and available_at: the rows of several
    queues are merged by them.
    """
    skip = sorted(skip_tasks)
    skip_test = f" AND task_path NOT IN ({', '.join(['%s'] * len(skip))})" if skip else ""
    sql = _CANDIDATES.format(columns=", ".join(columns), skip_test=skip_test)
    stamp = connection.ops.adapt_datetimefield_value(now)
    rows = []
    for queue in queues:
        cursor.execute(sql, [backend, queue, stamp, *skip, limit])
        rows.extend(cursor.fetchall())
    if len(queues) > 1:
        # The best of every queue's best; the others stay locked, untouched,
        # until the COMMIT releases them.
        priority, due = columns.index("priority"), columns.index("available_at")
        rows.sort(key=lambda row: (-row[priority], row[due]))
        del rows[limit:]
    return rows


def locked_chosen(cursor, columns, ids):
    """The READY rows among ``ids`` (locked by the caller already)."""
    marks = ", ".join(["%s"] * len(ids))
    cursor.execute(_CHOSEN.format(columns=", ".join(columns), ids=marks), [_hex(i) for i in ids])
    return cursor.fetchall()


def mark_running(cursor, connection, worker_id, ids, now):
    """Mark the locked rows ``ids`` RUNNING for ``worker_id``, as claimed at ``now``."""
    if not ids:
        return
    stamp = connection.ops.adapt_datetimefield_value(now)
    marks = ", ".join(["%s"] * len(ids))
    params = [worker_id, worker_id, stamp, stamp, *(_hex(job_id) for job_id in ids)]
    cursor.execute(_MARK_RUNNING.format(ids=marks), params)


def _hex(job_id) -> str:
    # Django stores UUIDField as 32 hex digits (char(32)) on MariaDB and MySQL.
    return getattr(job_id, "hex", str(job_id).replace("-", ""))
