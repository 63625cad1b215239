"""Giving RUNNING jobs back: rescue from lost workers, hand-back on shutdown.

Two ways a RUNNING job leaves a worker without an outcome:

* **lost** — its worker died (SIGKILL, OOM, host gone) or stopped
  heartbeating. The job most likely did nothing wrong (a neighbour used up
  the memory, a pod was stopped), so it runs again (at least once) and the
  attempt does not use up max_attempts: it is recorded as a ``WorkerLost``
  error entry (the same shape as the executor's entries) and counted in
  ``lost_attempts``. A poison job that takes every worker down with it ends
  FAILED at its MAX_LOST_ATTEMPTS-th lost attempt. When the supervisor saw
  its child die, it knows which jobs the child was running
  (djtasks.worker.inflight_board): only those are lost; the rest of the
  child's claimed batch is handed back. When the supervisor killed the
  child because a job was past its timeout, that attempt ended through its
  timeout and counts against max_attempts (``counted``).
* **handed back** — its worker is alive and gives the job up unrun or
  interrupted through no fault of the job (graceful shutdown, a sibling's
  timeout replaced the process, a task this worker does not have). The
  attempt does not count: ``attempts`` and ``worker_ids`` are rolled back
  and the job is READY again.

Either way a job whose cancellation was requested ends CANCELLED instead,
so a cancel is never undone by a restart.
"""

import logging
import uuid
from datetime import timedelta

from django.db import connections, transaction
from django.utils import timezone

from djtasks.conf import max_lost_attempts
from djtasks.errors import class_path
from djtasks.exceptions import WorkerLost
from djtasks.models import Job, Worker
from djtasks.worker import rescue_mysql
from djtasks.workflows import next_steps

logger = logging.getLogger("djtasks")

JOBS = Job._meta.db_table
WORKERS = Worker._meta.db_table

WORKER_LOST = class_path(WorkerLost)

# The SET clause of a lost attempt, in two kinds:
#
# * uncounted (the default): the attempt stays in ``attempts`` (it did
#   start) and max_attempts grows by one, so it uses up none of the job's
#   budget; ``lost_attempts`` counts it, and the one that reaches
#   MAX_LOST_ATTEMPTS fails the job as a poison job.
# * counted: the supervisor killed the process because a job was past its
#   timeout; that attempt ended through its timeout and counts as today.
#
# {back} is true when the job goes back to READY. Parameters carry explicit
# casts: with psycopg's server-side binding they arrive untyped, and
# jsonb_build_object cannot infer a type. Expressions on the right read the
# row as it was before the UPDATE (SQL semantics), so "attempts" is the
# attempt that was lost and "lost_attempts + 1" counts it.
_PG_LOST_SET = """
    status = CASE WHEN job.cancel_requested_at IS NOT NULL THEN 'CANCELLED'
                  WHEN {back} THEN 'READY'
                  ELSE 'FAILED' END,
    finished_at = CASE WHEN {back} THEN NULL ELSE %(now)s::timestamptz END,
    available_at = %(now)s::timestamptz,
    max_attempts = CASE WHEN {back} THEN job.max_attempts + {grow} ELSE job.max_attempts END,
    lost_attempts = job.lost_attempts + {grow},
    errors = job.errors || jsonb_build_array(jsonb_build_object(
        'exception_class_path', '{path}',
        'traceback', '{path}: ' || %(reason)s::text
                     || ' (worker ' || COALESCE(job.worker_id, '?') || ')'
                     || CASE WHEN job.cancel_requested_at IS NULL AND NOT ({back}) AND {grow} = 1
                             THEN '; it has now taken its worker down '
                                  || (job.lost_attempts + 1)::text
                                  || ' times (MAX_LOST_ATTEMPTS), so it is not run again'
                             ELSE '' END
                     || chr(10),
        'attempt', job.attempts,
        'worker_id', job.worker_id,
        'failed_at', %(failed_at)s::text))
"""
_PG_UNCOUNTED = _PG_LOST_SET.format(
    back="job.cancel_requested_at IS NULL AND job.lost_attempts + 1 < %(max_lost)s::integer",
    grow=1,
    path=WORKER_LOST,
)
_PG_COUNTED = _PG_LOST_SET.format(
    back="job.cancel_requested_at IS NULL AND job.attempts < job.max_attempts",
    grow=0,
    path=WORKER_LOST,
)
# PostgreSQL, rescue of stale workers. The LEFT JOIN also catches jobs whose
# worker row is gone. FOR UPDATE OF job SKIP LOCKED: a row being written
# right now (a late outcome of the "dead" worker, or another rescuer) is
# skipped, never waited for and never rescued twice; the next pass sees it
# again if it is still RUNNING. The CTE is MATERIALIZED so the locking
# sub-select runs once (see djtasks.worker.claim for the planner trap).
PG_RESCUE_STALE = f"""
WITH lost AS MATERIALIZED (
    SELECT job.id FROM {JOBS} AS job
    LEFT JOIN {WORKERS} AS worker ON worker.id = job.worker_id
    WHERE job.status = 'RUNNING'
      AND job.worker_id IS DISTINCT FROM %(exclude)s::text
      AND (worker.id IS NULL OR worker.stopped_at IS NOT NULL
           OR worker.last_heartbeat_at < %(stale_before)s::timestamptz)
    FOR UPDATE OF job SKIP LOCKED
)
UPDATE {JOBS} AS job SET {_PG_UNCOUNTED}
FROM lost
WHERE job.id = lost.id AND job.status = 'RUNNING'
RETURNING job.id, job.task_path, job.queue_name, job.status, job.attempts, job.worker_id,
    job.workflow_id, job.workflow_stage
"""

# PostgreSQL, the jobs of one worker known to be dead (its supervisor saw
# the process exit). The status guard leaves alone jobs that finished or
# were rescued meanwhile. PG_RELEASE_COUNTED: the same for the job past its
# timeout that made the supervisor kill the process (its attempt counts).
_PG_RELEASE = f"""
UPDATE {JOBS} AS job SET {{lost_set}}
WHERE job.worker_id = %(worker_id)s AND job.status = 'RUNNING' {{{{only}}}}
RETURNING job.id, job.task_path, job.queue_name, job.status, job.attempts, job.worker_id,
    job.workflow_id, job.workflow_stage
"""
PG_RELEASE_LOST = _PG_RELEASE.format(lost_set=_PG_UNCOUNTED)
PG_RELEASE_COUNTED = _PG_RELEASE.format(lost_set=_PG_COUNTED)

# PostgreSQL, hand-back: undo the claim's bookkeeping of the attempt
# ("jsonb - int" drops the last worker id). Only this worker's RUNNING rows
# change, so a job that another worker holds after a rescue is untouched.
PG_HAND_BACK = f"""
UPDATE {JOBS} AS job SET
    status = CASE WHEN job.cancel_requested_at IS NOT NULL THEN 'CANCELLED'
                  ELSE 'READY' END,
    finished_at = CASE WHEN job.cancel_requested_at IS NOT NULL THEN %(now)s::timestamptz END,
    attempts = GREATEST(job.attempts - 1, 0),
    worker_ids = job.worker_ids - (jsonb_array_length(job.worker_ids) - 1),
    started_at = CASE WHEN job.attempts <= 1 THEN NULL ELSE job.started_at END,
    available_at = COALESCE(%(available_at)s::timestamptz, job.available_at)
WHERE job.worker_id = %(worker_id)s AND job.status = 'RUNNING' {{only}}
RETURNING job.id, job.task_path, job.queue_name, job.status, job.attempts, job.worker_id,
    job.workflow_id, job.workflow_stage
"""

_SQLITE_LOST_SET = """
    status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'CANCELLED'
                  WHEN {back} THEN 'READY'
                  ELSE 'FAILED' END,
    finished_at = CASE WHEN {back} THEN NULL ELSE %(now)s END,
    available_at = %(now)s,
    max_attempts = CASE WHEN {back} THEN max_attempts + {grow} ELSE max_attempts END,
    lost_attempts = lost_attempts + {grow},
    errors = json_insert(errors, '$[#]', json_object(
        'exception_class_path', '{path}',
        'traceback', '{path}: ' || %(reason)s
                     || ' (worker ' || COALESCE(worker_id, '?') || ')'
                     || CASE WHEN cancel_requested_at IS NULL AND NOT ({back}) AND {grow} = 1
                             THEN '; it has now taken its worker down ' || (lost_attempts + 1)
                                  || ' times (MAX_LOST_ATTEMPTS), so it is not run again'
                             ELSE '' END
                     || char(10),
        'attempt', attempts,
        'worker_id', worker_id,
        'failed_at', %(failed_at)s))
"""
_UNCOUNTED = {
    "back": "cancel_requested_at IS NULL AND lost_attempts + 1 < %(max_lost)s",
    "grow": 1,
    "path": WORKER_LOST,
}
_COUNTED = {
    "back": "cancel_requested_at IS NULL AND attempts < max_attempts",
    "grow": 0,
    "path": WORKER_LOST,
}
_SQLITE_UNCOUNTED = _SQLITE_LOST_SET.format(**_UNCOUNTED)
_SQLITE_COUNTED = _SQLITE_LOST_SET.format(**_COUNTED)

# SQLite has no row locks: the statement runs in a write transaction that
# holds the database lock from BEGIN (transaction_mode IMMEDIATE), so no
# claim or completion interleaves with it.
SQLITE_RESCUE_STALE = f"""
UPDATE {JOBS} SET {_SQLITE_UNCOUNTED}
WHERE status = 'RUNNING' AND id IN (
    SELECT job.id FROM {JOBS} AS job
    LEFT JOIN {WORKERS} AS worker ON worker.id = job.worker_id
    WHERE job.status = 'RUNNING'
      AND (job.worker_id IS NULL OR job.worker_id != %(exclude)s)
      AND (worker.id IS NULL OR worker.stopped_at IS NOT NULL
           OR worker.last_heartbeat_at < %(stale_before)s)
)
RETURNING id, task_path, queue_name, status, attempts, worker_id, workflow_id, workflow_stage
"""

_SQLITE_RELEASE = f"""
UPDATE {JOBS} SET {{lost_set}}
WHERE worker_id = %(worker_id)s AND status = 'RUNNING' {{{{only}}}}
RETURNING id, task_path, queue_name, status, attempts, worker_id, workflow_id, workflow_stage
"""
SQLITE_RELEASE_LOST = _SQLITE_RELEASE.format(lost_set=_SQLITE_UNCOUNTED)
SQLITE_RELEASE_COUNTED = _SQLITE_RELEASE.format(lost_set=_SQLITE_COUNTED)

SQLITE_HAND_BACK = f"""
UPDATE {JOBS} SET
    status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'CANCELLED' ELSE 'READY' END,
    finished_at = CASE WHEN cancel_requested_at IS NOT NULL THEN %(now)s END,
    attempts = max(attempts - 1, 0),
    worker_ids = json_remove(worker_ids, '$[#-1]'),
    started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END,
    available_at = COALESCE(%(available_at)s, available_at)
WHERE worker_id = %(worker_id)s AND status = 'RUNNING' {{only}}
RETURNING id, task_path, queue_name, status, attempts, worker_id, workflow_id, workflow_stage
"""


def rescue_stale(database: str, stale_after: float, exclude: str = "") -> int:
    """Rescue RUNNING jobs of workers silent for ``stale_after`` seconds.

    ``exclude`` is the calling worker's own id: its heartbeat may look old
    right after a database outage, but it is alive and holds its jobs.
    """
    now = timezone.now()
    params = {
        "exclude": exclude,
        "stale_before": now - timedelta(seconds=stale_after),
        "reason": f"its worker sent no heartbeat for {stale_after:g} s",
    }
    rows = _lost(database, "RESCUE_STALE", params, now)
    _log_lost(rows)
    return len(rows)


def release_lost(
    database: str, worker_id: str, reason: str, job_ids=None, counted: bool = False
) -> int:
    """Rescue the RUNNING jobs of one worker known to be dead.

    ``job_ids``: only these (the jobs it was running when it died); default:
    all of the worker's RUNNING jobs. ``counted``: the attempts count
    against max_attempts (the process was killed because a job was past its
    timeout); by default a lost attempt does not.
    """
    if job_ids is not None and not job_ids:
        return 0
    params = {"worker_id": worker_id, "reason": reason}
    name = "RELEASE_COUNTED" if counted else "RELEASE_LOST"
    rows = _lost(database, name, params, timezone.now(), job_ids)
    _log_lost(rows)
    return len(rows)


def hand_back(database: str, worker_id: str, job_ids=None, keep=(), available_at=None) -> int:
    """Make this worker's RUNNING jobs READY again, the attempt not counted.

    ``job_ids``: only these (default: all of the worker's); ``keep``: not
    these (jobs whose outcome is being recorded); ``available_at``: not
    claimable before then (default: at once).
    """
    if job_ids is not None and not job_ids:
        return 0
    connection = connections[database]
    vendor = connection.vendor
    params = {
        "worker_id": worker_id,
        "now": _stamp(connection, timezone.now()),
        "available_at": None if available_at is None else _stamp(connection, available_at),
    }
    only = ""
    if job_ids is not None:
        only += " AND " + _id_test(vendor, params, "only_ids", job_ids, negate=False)
    if keep:
        only += " AND " + _id_test(vendor, params, "keep_ids", keep, negate=True)
    sql = PG_HAND_BACK if vendor == "postgresql" else SQLITE_HAND_BACK
    with transaction.atomic(using=database), connection.cursor() as cursor:
        if vendor == "mysql":
            rows = rescue_mysql.update_returning(
                cursor,
                rescue_mysql.WORKER_ROWS.format(only=only),
                rescue_mysql.HAND_BACK_SET,
                params,
            )
        else:
            cursor.execute(sql.format(only=only), params)
            rows = cursor.fetchall()
        # A job whose cancel was requested ends CANCELLED: its workflow fails.
        _advance_workflows(database, rows)
    count = len(rows)
    if count:
        logger.info("worker %s handed %d unfinished job(s) back to READY", worker_id, count)
    return count


def _lost(database, name, params, now, job_ids=None):
    connection = connections[database]
    vendor = connection.vendor
    params = {
        **params,
        "now": _stamp(connection, now),
        "failed_at": now.isoformat(),
        "max_lost": max_lost_attempts(),
    }
    if "stale_before" in params:
        params["stale_before"] = _stamp(connection, params["stale_before"])
    sql = globals()[("PG_" if vendor == "postgresql" else "SQLITE_") + name]
    only = ""
    if name.startswith("RELEASE_"):
        if job_ids is not None:
            only = " AND " + _id_test(vendor, params, "only_ids", job_ids, negate=False)
        sql = sql.format(only=only)
    with transaction.atomic(using=database), connection.cursor() as cursor:
        if vendor == "mysql":
            rows = rescue_mysql.update_returning(cursor, *_mysql_lost(name, only), params)
        else:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        # A step rescued to FAILED (or CANCELLED) fails the rest of its
        # workflow in this transaction, so none of its steps waits forever.
        _advance_workflows(database, rows)
        return rows


def _mysql_lost(name, only):
    """The rows and the SET of the lost-attempt statement ``name`` on MariaDB/MySQL."""
    if name == "RESCUE_STALE":
        return rescue_mysql.RESCUE_STALE_ROWS, rescue_mysql.lost_set(**_UNCOUNTED)
    counted = _COUNTED if name == "RELEASE_COUNTED" else _UNCOUNTED
    return rescue_mysql.WORKER_ROWS.format(only=only), rescue_mysql.lost_set(**counted)


def _advance_workflows(database, rows):
    steps = [
        next_steps.Finished(_uuid(job_id), status, _uuid(workflow_id), stage, task_path)
        for job_id, task_path, _, status, _, _, workflow_id, stage in rows
        if workflow_id is not None
    ]
    if steps:
        next_steps.steps_finished(database, steps)


def _uuid(value):
    # SQLite returns UUIDs as 32 hex digits.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _stamp(connection, value):
    # SQLite compares datetimes as text, MariaDB and MySQL store them
    # without a time zone: adapt them the way Django stores them.
    if connection.vendor in ("sqlite", "mysql"):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _id_test(vendor, params, name, ids, negate):
    if vendor == "postgresql":
        params[name] = [str(job_id) for job_id in ids]
        return f"{'NOT ' if negate else ''}job.id = ANY(%({name})s::uuid[])"
    # SQLite stores UUIDs as 32 hex digits.
    names = []
    for index, job_id in enumerate(ids):
        key = f"{name}_{index}"
        params[key] = getattr(job_id, "hex", str(job_id).replace("-", ""))
        names.append(f"%({key})s")
    return f"id {'NOT ' if negate else ''}IN ({', '.join(names)})"


def _log_lost(rows):
    for job_id, task_path, queue_name, status, attempts, worker_id, *_ in rows:
        logger.warning(
            "job %s task=%s queue=%s attempt=%d lost with worker %s: now %s",
            job_id,
            task_path,
            queue_name,
            attempts,
            worker_id,
            status,
        )
