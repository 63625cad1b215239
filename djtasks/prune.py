"""Pruning: delete finished jobs and old worker rows past their retention.

Rows go in batches of PRUNE_BATCH, one short transaction each, oldest first,
so pruning a large history never holds many locks or one long transaction:
workers claim and record between two batches. Only finished jobs
(SUCCESSFUL, FAILED, CANCELLED, EXPIRED) are ever deleted; WAITING, READY
and RUNNING rows are never touched, nor the steps of a workflow that has
some of those left.

Rows are deleted with plain SQL, not QuerySet.delete(): the ORM would load
every row and null the references to it (Job.worker, Schedule.last_job),
and those columns have no index of their own. Both references are declared
without a database constraint, so a pruned row leaves at most a dangling id
(the admin then says the row no longer exists).
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from djtasks.conf import DEFAULTS, settings
from djtasks.models import FINISHED_STATUSES, Job, JobStatus, Worker

logger = logging.getLogger("djtasks")

# The built-in schedule (see builtin_schedules) and the task it runs.
SCHEDULE_NAME = "djtasks.prune"
TASK_PATH = "djtasks.tasks.prune_jobs"

JOBS = Job._meta.db_table
LIVE_STATUSES = (JobStatus.WAITING, JobStatus.READY, JobStatus.RUNNING)
WORKERS = Worker._meta.db_table

# A step of a workflow that still has steps to run is kept: a later step
# reads its return value when it is released (see djtasks.workflows.next_steps). The
# test reads the partial index djtasks_job_workflow, and costs nothing for a
# job outside a workflow (NULL workflow_id).
_WORKFLOW_DONE = f"""(old.workflow_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM {JOBS} AS live
        WHERE live.workflow_id = old.workflow_id
          AND live.status IN ('WAITING', 'READY', 'RUNNING')))"""

# PostgreSQL. FOR UPDATE SKIP LOCKED: a row someone else holds (e.g. the
# admin retrying a failed job) is skipped, never waited for. FOR UPDATE
# re-reads a row changed since the snapshot and drops it if it no longer
# matches, so a job made READY again is not deleted. MATERIALIZED, so the
# planner runs the locking sub-select once (see djtasks.worker.claim). The scan
# walks the partial index djtasks_job_finished from the oldest row.
# The oldest finished rows of one status, up to a batch, whose workflow (if
# any) has ended: the doomed rows of every statement below.
_DOOMED = f"""SELECT id FROM {JOBS} AS old
    WHERE finished_at IS NOT NULL AND finished_at < %s AND status = %s
      AND {_WORKFLOW_DONE}
    ORDER BY finished_at
    LIMIT %s"""

PG_DELETE_JOBS = f"""
WITH doomed AS MATERIALIZED (
    {_DOOMED}
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {JOBS} AS job USING doomed WHERE job.id = doomed.id
"""

# SQLite has no row locks: the statement runs under the database write lock
# (taken at BEGIN with transaction_mode IMMEDIATE), and selects and deletes
# in one statement, so no row changes between the two.
SQLITE_DELETE_JOBS = f"""
DELETE FROM {JOBS} WHERE id IN (
    {_DOOMED}
)
"""

# MariaDB and MySQL refuse a DELETE whose sub-select reads the same table
# with a LIMIT: the batch is locked by one statement (SKIP LOCKED, as on
# PostgreSQL; FOR UPDATE reads the rows as they are now, so a job made
# READY again is not among them) and deleted by key in the same transaction.
MYSQL_DOOMED_JOBS = f"""
{_DOOMED}
FOR UPDATE SKIP LOCKED
"""


@dataclass
class Pruned:
    """What one prune deleted (or, with dry_run, would delete)."""

    # Jobs per status, for the statuses considered (kept ones are absent).
    jobs: dict[str, int] = field(default_factory=dict)
    workers: int = 0
    dry_run: bool = False

    @property
    def total_jobs(self) -> int:
        return sum(self.jobs.values())

    def as_dict(self) -> dict:
        return {"jobs": dict(self.jobs), "workers": self.workers, "dry_run": self.dry_run}


def prune(
    database: str = "default",
    *,
    now: datetime | None = None,
    statuses=None,
    older_than: timedelta | None = None,
    workers: bool = True,
    batch_size: int | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Delete finished jobs (and old worker rows) past their retention.

    ``statuses`` limits the finished statuses pruned (default: all four);
    ``older_than`` replaces the RETENTION setting for each of them;
    ``workers=False`` keeps the worker rows. With ``dry_run`` nothing is
    deleted and the counts say what would be.
    """
    now = now or timezone.now()
    batch_size = _batch_size(batch_size)
    pruned = Pruned(dry_run=dry_run)
    for status, keep_for in job_retention(statuses, older_than).items():
        if keep_for is not None:
            pruned.jobs[status] = _prune_status(
                database, status, now - keep_for, batch_size, dry_run
            )
    keep_workers_for = worker_retention()
    if workers and keep_workers_for is not None:
        pruned.workers = _prune_workers(database, now - keep_workers_for, batch_size, dry_run)
    logger.info(
        "prune%s: %s %d jobs (%s) and %d worker rows (database %s)",
        " (dry run)" if dry_run else "",
        "would delete" if dry_run else "deleted",
        pruned.total_jobs,
        ", ".join(f"{status} {count}" for status, count in pruned.jobs.items()) or "none",
        pruned.workers,
        database,
    )
    return pruned


# --- settings ------------------------------------------------------------------------------


def job_retention(statuses=None, older_than=None) -> dict:
    """The retention of each status to prune: a timedelta, or None to keep all."""
    statuses = _statuses(statuses)
    if older_than is not None:
        return {status: _duration("older_than", older_than) for status in statuses}
    configured = settings.RETENTION or {}
    unknown = set(configured) - set(FINISHED_STATUSES)
    if unknown:
        raise ImproperlyConfigured(
            f"DJTASKS['RETENTION'] names {', '.join(sorted(map(str, unknown)))}; the "
            f"statuses are {', '.join(FINISHED_STATUSES)}."
        )
    merged = {**DEFAULTS["RETENTION"], **configured}
    return {
        status: _duration(f"DJTASKS['RETENTION'][{status!r}]", merged[status])
        for status in statuses
    }


def worker_retention() -> timedelta | None:
    return _duration("DJTASKS['WORKER_RETENTION']", settings.WORKER_RETENTION)


def _statuses(statuses) -> list[str]:
    if statuses is None:
        return [str(status) for status in FINISHED_STATUSES]
    chosen = [str(status).upper() for status in statuses]
    bad = [status for status in chosen if status not in FINISHED_STATUSES]
    if bad:
        raise ValueError(
            f"Only finished jobs are pruned: {', '.join(bad)} is not one of "
            f"{', '.join(FINISHED_STATUSES)}."
        )
    return chosen


def _duration(name: str, value) -> timedelta | None:
    """A retention setting as a timedelta (numbers are seconds), or None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ImproperlyConfigured(
            f"{name} must be a timedelta (or seconds) of at least zero, or None; got {value!r}."
        )
    return value


def _batch_size(value) -> int:
    value = settings.PRUNE_BATCH if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ImproperlyConfigured(
            f"PRUNE_BATCH must be a whole number of at least 1; got {value!r}."
        )
    return value


# --- jobs ----------------------------------------------------------------------------------


def _prune_status(database, status, before, batch_size, dry_run) -> int:
    """Delete the jobs of ``status`` finished before ``before``, batch by batch."""
    if dry_run:
        live_steps = Job.objects.using(database).filter(
            workflow_id=OuterRef("workflow_id"), status__in=LIVE_STATUSES
        )
        return (
            Job.objects.using(database)
            .filter(status=status, finished_at__isnull=False, finished_at__lt=before)
            .filter(Q(workflow_id__isnull=True) | ~Exists(live_steps))
            .count()
        )
    deleted = 0
    while True:
        count = _delete_job_batch(database, status, before, batch_size)
        deleted += count
        # A short batch: nothing older is left (or the rest is locked by
        # someone else, and waits for the next prune).
        if count < batch_size:
            return deleted


def _delete_job_batch(database, status, before, batch_size) -> int:
    connection = connections[database]
    if connection.vendor == "postgresql":
        sql = PG_DELETE_JOBS
    else:
        sql = SQLITE_DELETE_JOBS
        before = connection.ops.adapt_datetimefield_value(before)
    # One transaction per batch: its locks last one DELETE.
    with transaction.atomic(using=database), connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(MYSQL_DOOMED_JOBS, [before, status, batch_size])
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                return 0
            cursor.execute(f"DELETE FROM {JOBS} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
            return cursor.rowcount
        cursor.execute(sql, [before, status, batch_size])
        return cursor.rowcount


# --- workers -------------------------------------------------------------------------------


def _prune_workers(database, before, batch_size, dry_run) -> int:
    """Delete worker rows stopped or silent since ``before`` that run nothing."""
    if dry_run:
        return _old_workers(database, before).count()
    deleted = 0
    while True:
        count = _delete_worker_batch(database, before, batch_size)
        deleted += count
        if count < batch_size:
            return deleted


def _delete_worker_batch(database, before, batch_size) -> int:
    # One DELETE whose sub-select is the ORM's query: the test for RUNNING
    # jobs and the delete are one statement, so no claim slips in between,
    # and the ORM does not null Job.worker on every finished job of the
    # worker (an unindexed column; see the module doc).
    batch = _old_workers(database, before).values("pk")[:batch_size]
    select, params = batch.query.get_compiler(using=database).as_sql()
    connection = connections[database]
    if connection.vendor == "mysql":
        # They take a LIMIT in a sub-select of the same table only from a
        # derived table, which they read in full before deleting.
        select = f"SELECT batch.pk FROM ({select}) AS batch"
    with transaction.atomic(using=database), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {WORKERS} WHERE id IN ({select})", params)
        return cursor.rowcount


def _old_workers(database, before):
    # A worker that still holds RUNNING jobs is kept whatever its age: the
    # rescue reports those jobs against it. The test uses the partial index
    # djtasks_job_running (worker_id WHERE status = 'RUNNING').
    running = Job.objects.using(database).filter(worker_id=OuterRef("pk"), status=JobStatus.RUNNING)
    return (
        Worker.objects.using(database)
        .filter(Q(stopped_at__lt=before) | Q(stopped_at__isnull=True, last_heartbeat_at__lt=before))
        .exclude(Exists(running))
        .order_by()
    )


# --- the built-in schedule -----------------------------------------------------------------


def builtin_schedules() -> dict[str, dict]:
    """The schedule declared by djtasks itself, read by code_schedules.sync().

    Declared like DJTASKS["SCHEDULES"]: a settings entry of the same name
    replaces it; PRUNE_SCHEDULE = None declares nothing, and beat disables a
    row it made before.
    """
    cron = settings.PRUNE_SCHEDULE
    if not cron:
        return {}
    # skip_if_running: a long first prune is not joined by a second one.
    return {SCHEDULE_NAME: {"task": TASK_PATH, "cron": cron, "skip_if_running": True}}
