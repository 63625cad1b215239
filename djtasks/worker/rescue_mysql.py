"""The rescue and hand-back statements on MariaDB and MySQL.

They mean what djtasks.worker.rescue's PostgreSQL and SQLite statements
mean; two things differ there:

* No UPDATE ... RETURNING: the rows are locked by a SELECT ... FOR UPDATE,
  updated by key, then read back, all in the caller's transaction, so the
  rows cannot change between the three.
* An UPDATE's SET assigns left to right, and an expression reads the
  values assigned before it in the same SET (not the row as it was, as in
  standard SQL). Each SET below therefore assigns a column only after every
  expression that reads it: its order is part of its meaning.
"""

from djtasks.models import Job, Worker

JOBS = Job._meta.db_table
WORKERS = Worker._meta.db_table

# What the caller's rows hold (djtasks.worker.rescue._advance_workflows).
_RETURNED = "id, task_path, queue_name, status, attempts, worker_id, workflow_id, workflow_stage"

# A lost attempt; {back}, {grow}, {path} as in djtasks.worker.rescue. errors
# and status come first (they read lost_attempts, attempts, max_attempts),
# lost_attempts last.
_LOST_SET = """
    errors = JSON_ARRAY_APPEND(errors, '$', JSON_OBJECT(
        'exception_class_path', '{path}',
        'traceback', CONCAT('{path}: ', %(reason)s,
                            ' (worker ', COALESCE(worker_id, '?'), ')',
                            CASE WHEN cancel_requested_at IS NULL AND NOT ({back}) AND {grow} = 1
                                 THEN CONCAT('; it has now taken its worker down ',
                                             lost_attempts + 1,
                                             ' times (MAX_LOST_ATTEMPTS), so it is not run again')
                                 ELSE '' END,
                            CHAR(10 USING utf8mb4)),
        'attempt', attempts,
        'worker_id', worker_id,
        'failed_at', %(failed_at)s)),
    status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'CANCELLED'
                  WHEN {back} THEN 'READY'
                  ELSE 'FAILED' END,
    finished_at = CASE WHEN {back} THEN NULL ELSE %(now)s END,
    available_at = %(now)s,
    max_attempts = CASE WHEN {back} THEN max_attempts + {grow} ELSE max_attempts END,
    lost_attempts = lost_attempts + {grow}
"""

# Hand-back: started_at reads attempts before attempts is lowered.
HAND_BACK_SET = """
    status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'CANCELLED' ELSE 'READY' END,
    finished_at = CASE WHEN cancel_requested_at IS NOT NULL THEN %(now)s END,
    started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END,
    worker_ids = CASE WHEN JSON_LENGTH(worker_ids) > 0
                      THEN JSON_REMOVE(worker_ids, CONCAT('$[', JSON_LENGTH(worker_ids) - 1, ']'))
                      ELSE worker_ids END,
    available_at = COALESCE(%(available_at)s, available_at),
    attempts = GREATEST(attempts - 1, 0)
"""

# Which rows each statement takes. RESCUE_STALE skips job rows another
# transaction holds (a late outcome, another rescuer), as on PostgreSQL; the
# others take one worker's rows, which only it and its supervisor touch, and
# wait for them. RESCUE_STALE reads the workers in a sub-select, which takes
# no locks there: a locking join would lock worker rows too, and with SKIP
# LOCKED a live worker whose row its heartbeat holds at that moment would
# join as NULL, that is as gone, and its jobs be rescued while they run.
RESCUE_STALE_ROWS = f"""
SELECT job.id FROM {JOBS} AS job
WHERE job.status = 'RUNNING'
  AND (job.worker_id IS NULL OR job.worker_id != %(exclude)s)
  AND NOT EXISTS (
      SELECT 1 FROM {WORKERS} AS worker
      WHERE worker.id = job.worker_id AND worker.stopped_at IS NULL
        AND worker.last_heartbeat_at >= %(stale_before)s)
FOR UPDATE SKIP LOCKED
"""
WORKER_ROWS = f"""
SELECT id FROM {JOBS}
WHERE worker_id = %(worker_id)s AND status = 'RUNNING' {{only}}
FOR UPDATE
"""


def lost_set(back, grow, path) -> str:
    return _LOST_SET.format(back=back, grow=grow, path=path)


def update_returning(cursor, select_sql, set_sql, params) -> list[tuple]:
    """Lock the rows ``select_sql`` finds, apply ``set_sql`` to them, return them as rescue does."""
    cursor.execute(select_sql, params)
    ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    keys = {f"locked_{index}": job_id for index, job_id in enumerate(ids)}
    marks = ", ".join(f"%({key})s" for key in keys)
    # Still RUNNING: the rows are locked since the SELECT, so they are.
    cursor.execute(f"UPDATE {JOBS} SET {set_sql} WHERE id IN ({marks})", {**params, **keys})
    cursor.execute(f"SELECT {_RETURNED} FROM {JOBS} WHERE id IN ({marks})", keys)
    return cursor.fetchall()
