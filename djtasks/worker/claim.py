"""The claim: the only code that takes row locks on ready jobs.

One statement picks up to ``limit`` ready jobs of one backend's queues,
highest priority first then oldest due, marks them RUNNING for this worker,
counts the attempt and returns them. It commits before any task code runs.

A worker serves one TASKS alias: several aliases may keep their jobs in one
database, and each row records the alias it was enqueued through
(``Job.backend``), so every claim reads only its own alias's rows.

Jobs under a limit (a rate limit or concurrency key on the row, a queue
rate limit in the settings or stored, a stored queue concurrency limit) are
left to djtasks.worker.claim_limited, which runs first, in its own
transaction, when its LimitedGate says so; with no limits in use the plain
statement below is all a claim costs.

Stored controls (djtasks.controls): a paused queue is left out of the queues
claimed, so it costs nothing. READY rows of a paused task carry ``paused``,
which keeps them out of both claim indexes; a row of such a task that
reached READY after the pause (enqueued, retried, released) is flagged by
the first claim that meets it, and so is a row of a task whose rate limit
was overridden (it gets ``limited``), so the claim meets each such row once.

Tasks this worker lacks while a live worker has them (``skip_tasks``, see
djtasks.worker.unknown_tasks) are left out of the scan, unflagged: they are
another worker's to claim. Their rows are read past on every claim, which
costs only while a rolling deploy is under way.
"""

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djtasks import controls, server_binding
from djtasks.compat import database_of
from djtasks.conf import settings as djtasks_settings
from djtasks.models import Job, JobStatus
from djtasks.worker import claim_limited, claim_mysql

logger = logging.getLogger("djtasks")

TABLE = Job._meta.db_table

# Columns the executor needs, in RETURNING order: the first fields of
# ClaimedJob, in the same order (it is built from the row positionally).
COLUMNS = (
    "id",
    "task_path",
    "backend",
    "queue_name",
    "priority",
    "args",
    "kwargs",
    "enqueued_at",
    "run_after",
    "available_at",
    "started_at",
    "last_attempted_at",
    "expires_at",
    "attempts",
    "max_attempts",
    "retry_policy",
    "timeout",
    "worker_ids",
    "errors",
    "workflow_id",
)
_RETURNING = ", ".join(f"job.{column}" for column in COLUMNS)
# SQLite's RETURNING takes bare column names only.
_SQLITE_RETURNING = ", ".join(COLUMNS)

# How a claim marks its rows, the same for the plain and the limited claim:
# RUNNING for this worker (worker id twice), the attempt counted, the first
# start kept, this attempt's start (claim time twice).
_PG_MARK_RUNNING = """    status = 'RUNNING',
    worker_id = %s,
    attempts = job.attempts + 1,
    worker_ids = job.worker_ids || to_jsonb(%s::text),
    started_at = COALESCE(job.started_at, %s),
    last_attempted_at = %s"""
_SQLITE_MARK_RUNNING = """    status = 'RUNNING',
    worker_id = %s,
    attempts = attempts + 1,
    worker_ids = json_insert(worker_ids, '$[#]', %s),
    started_at = COALESCE(started_at, %s),
    last_attempted_at = %s"""

# PostgreSQL. FOR UPDATE SKIP LOCKED: rows another claimer has locked are
# skipped, not waited for, so claimers never block each other and a row is
# handed to one claimer only.
# - Each queue is an ordered scan of the partial index djtasks_job_ready
#   (backend, queue_name, priority DESC, available_at) that stops after
#   ``limit`` rows, so the cost follows the batch size, not the backlog or
#   the history, nor another backend's backlog in the same queue: backend
#   and queue are both equalities the index leads with. Several queues take
#   one LATERAL sub-select per queue (a plain "queue_name IN (...)" cannot
#   use the index order and sorts every ready row); the best ``limit`` of
#   those are kept, and the few others locked on the way are released at
#   commit, untouched. One queue (the usual case) is the plain scan, which
#   PostgreSQL plans and runs in some 0.1 ms less (for one ready job: 0.19
#   against 0.23 ms planning, 0.20 against 0.28 ms execution), 0.1-0.2 ms
#   sooner from a NOTIFY to the job's start.
# - "NOT limited AND NOT paused" matches the partial index's own condition,
#   so the index is usable, and rows under a limit (djtasks.worker.claim_limited)
#   or of a paused task are not in it.
# - The locking SELECT sits in a MATERIALIZED CTE because, written as
#   "WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)", the planner may
#   run the sub-select more than once and lock (and update) more than
#   ``limit`` rows.
# - The UPDATE does not test status again: FOR UPDATE re-reads a row that
#   changed since the snapshot and drops it if it is no longer READY, and the
#   lock is held until commit. A second test is not only useless but costly:
#   with a large history the planner then drives the UPDATE from the ready
#   index instead of the primary key (236 ms against 3 ms per claim of 100).
# - The UPDATE takes the ids as one array (id = ANY(...)), which PostgreSQL
#   always looks up through the primary key. Joined to the CTE instead, the
#   planner hashes the CTE and scans the whole table when it is small (up to
#   some 15,000 rows), which made a claim of 100 take 3 to 8 ms instead of 2.
_PG_CLAIM = f"""
WITH claimable AS MATERIALIZED ({{claimable}}
)
UPDATE {TABLE} AS job SET
{_PG_MARK_RUNNING}
WHERE job.id = ANY(ARRAY(SELECT id FROM claimable))
RETURNING {_RETURNING}
"""
_PG_ONE_QUEUE = f"""
    SELECT id{{async_commit}} FROM {TABLE}
    WHERE status = 'READY' AND NOT limited AND NOT paused AND backend = %s
        AND queue_name = %s AND available_at <= %s
    ORDER BY priority DESC, available_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED"""
_PG_SEVERAL_QUEUES = f"""
    SELECT candidate.id{{async_commit}}
    FROM unnest(%s::text[]) AS queue(name)
    CROSS JOIN LATERAL (
        SELECT id, priority, available_at FROM {TABLE}
        WHERE status = 'READY' AND NOT limited AND NOT paused AND backend = %s
            AND queue_name = queue.name AND available_at <= %s
        ORDER BY priority DESC, available_at
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    ) AS candidate
    ORDER BY candidate.priority DESC, candidate.available_at
    LIMIT %s"""
# A claim that is a transaction of its own (no outcomes written with it)
# commits without waiting for its WAL to reach the disk: SET LOCAL
# synchronous_commit = off, said as set_config() in the rows it locks, so
# the statement stays one round trip. That takes some 0.2-0.3 ms off the
# way from a NOTIFY to the job's start. What it risks: if PostgreSQL crashes
# (or fails over) within a few hundred ms of the claim, the claim may be
# gone, and the job, READY again, runs again (at least once): the
# completion's guard refuses the first run's outcome, also when this
# worker process claimed the job again first, with the same attempt number
# (djtasks.worker.outcomes matches the claim's time too). Every later
# commit that waits for the disk (the job's outcome, anything the task
# writes) makes the claim durable with it. DJTASKS["SYNCHRONOUS_CLAIMS"] =
# True makes every claim wait. A claim inside the outcomes' transaction
# never sets it: the outcomes must not be lost.
_ASYNC_COMMIT = ", set_config('synchronous_commit', 'off', true)"


def _pg_claim(claimable: str, asynchronous: bool) -> str:
    async_commit = _ASYNC_COMMIT if asynchronous else ""
    return _PG_CLAIM.format(claimable=claimable.format(async_commit=async_commit))


# (one queue?, a transaction of its own and SYNCHRONOUS_CLAIMS off?) -> SQL
POSTGRESQL = {
    (one_queue, asynchronous): _pg_claim(
        _PG_ONE_QUEUE if one_queue else _PG_SEVERAL_QUEUES, asynchronous
    )
    for one_queue in (True, False)
    for asynchronous in (True, False)
}

# SQLite has no row locks: the whole claim runs in a write transaction that
# takes the database lock at BEGIN (Django's transaction_mode "IMMEDIATE"),
# so claimers run one at a time and each sees the others' committed work.
# One statement selects and updates, so there is no gap between them even
# without that setting.
# SQLite uses a partial index only for a query that repeats each term of the
# index's WHERE word for word, and Django writes djtasks_job_ready's
# "limited is false" as "limited" = 0 (Django 6) or NOT "limited" (5.2): the
# query says both (and both for "paused"), so it matches an index made by
# either, or by a version before "paused" existed. INDEXED BY turns an
# index that stopped matching into an error ("no query solution") instead of
# a silent plan that sorts every ready row per claim. The unary plus in
# "+status" keeps SQLite from
# driving the UPDATE from the status index, which read every ready row on
# each claim (a drain cost the square of its backlog); the chosen ids are
# looked up by key instead.
_SQLITE_READY_TERMS = "limited = 0 AND NOT limited AND paused = 0 AND NOT paused"
SQLITE = f"""
UPDATE {TABLE} SET
{_SQLITE_MARK_RUNNING}
WHERE id IN (
    SELECT id FROM {TABLE} INDEXED BY djtasks_job_ready
    WHERE status = 'READY' AND {_SQLITE_READY_TERMS} AND backend = %s
        AND queue_name {{queue_test}} AND available_at <= %s
    ORDER BY priority DESC, available_at
    LIMIT %s
) AND +status = 'READY'
RETURNING {_SQLITE_RETURNING}
"""

# The candidates of the plain claim while some tasks are diverted (paused,
# or rate-limited by a stored override) or skipped: the same index scans and
# locks as POSTGRESQL and SQLITE, returning each row's task; the caller flags
# the diverted rows (which leaves them out of the index) and marks the
# others RUNNING with POSTGRESQL_CHOSEN or SQLITE_CHOSEN in the same
# transaction, so the locks are held until then. {skip_test} leaves out the
# skipped tasks' rows (a filter on the index scan: they are not locked).
POSTGRESQL_CANDIDATES = f"""
SELECT candidate.id, candidate.task_path
FROM unnest(%s::text[]) AS queue(name)
CROSS JOIN LATERAL (
    SELECT id, task_path, priority, available_at FROM {TABLE}
    WHERE status = 'READY' AND NOT limited AND NOT paused AND backend = %s
        AND queue_name = queue.name AND available_at <= %s{{skip_test}}
    ORDER BY priority DESC, available_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
) AS candidate
ORDER BY candidate.priority DESC, candidate.available_at
LIMIT %s
"""

SQLITE_CANDIDATES = f"""
SELECT id, task_path FROM {TABLE} INDEXED BY djtasks_job_ready
WHERE status = 'READY' AND {_SQLITE_READY_TERMS} AND backend = %s
    AND queue_name {{queue_test}} AND available_at <= %s{{skip_test}}
ORDER BY priority DESC, available_at
LIMIT %s
"""

# The rows djtasks.worker.claim_limited chose (and locked, on PostgreSQL), marked
# like the plain claim marks its rows.
POSTGRESQL_CHOSEN = f"""
UPDATE {TABLE} AS job SET
{_PG_MARK_RUNNING}
WHERE job.id = ANY(%s::uuid[]) AND job.status = 'READY'
RETURNING {_RETURNING}
"""

SQLITE_CHOSEN = f"""
UPDATE {TABLE} SET
{_SQLITE_MARK_RUNNING}
WHERE id IN ({{ids}}) AND status = 'READY'
RETURNING {_SQLITE_RETURNING}
"""


@dataclass(slots=True)
class ClaimedJob:
    """A job row as the claim returned it (lighter than a model instance)."""

    id: object
    task_path: str
    backend: str
    queue_name: str
    priority: int
    args: list
    kwargs: dict
    enqueued_at: datetime
    run_after: datetime | None
    available_at: datetime
    started_at: datetime
    last_attempted_at: datetime
    expires_at: datetime | None
    attempts: int
    max_attempts: int
    retry_policy: dict
    timeout: float | None
    worker_ids: list
    errors: list
    # Set on workflow steps: their outcome advances the workflow.
    workflow_id: uuid.UUID | None
    # What the row looks like to djtasks.results while the attempt runs.
    status: str = "RUNNING"
    finished_at: datetime | None = None
    return_value: object = None


def claim(
    backend: str,
    worker_id: str,
    queues,
    limit: int,
    now,
    gate=None,
    stored=controls.NONE,
    skip_tasks=frozenset(),
) -> list[ClaimedJob]:
    """Mark up to ``limit`` due ready jobs of TASKS[``backend``] RUNNING for ``worker_id``.

    Only rows enqueued through that alias are claimed, from its database.
    ``gate`` (a claim_limited.LimitedGate) paces the claim of jobs under a
    limit; without one they are looked for on every call. ``stored`` is the
    djtasks.controls snapshot to obey (paused queues and tasks, stored
    limits); the caller reads it, so the claim itself runs no query for it.
    ``skip_tasks``: task paths whose jobs are left for other workers.
    """
    database = database_of(backend)
    # A paused queue is not even looked at.
    queues = [queue for queue in queues if queue not in stored.paused_queues]
    if not queues:
        return []
    limited_queues = set(stored.queue_rates()) | set(stored.queue_concurrency)
    jobs = []
    if gate is None or gate.due():
        jobs = _claim_limited(
            database, backend, worker_id, queues, stored, limited_queues, limit, now, skip_tasks
        )
        if gate is not None:
            gate.found(len(jobs))
    # Queues under a queue limit are claimed by _claim_limited only.
    plain_queues = [queue for queue in queues if queue not in limited_queues]
    if len(jobs) < limit and plain_queues:
        try:
            jobs += _claim_plain(
                database,
                backend,
                worker_id,
                plain_queues,
                limit - len(jobs),
                now,
                savepoint=bool(jobs),
                stored=stored,
                skip_tasks=skip_tasks,
            )
        except DatabaseError:
            if not jobs:
                raise
            # The limited jobs are RUNNING for this worker already (their
            # transaction committed): run them rather than strand them; the
            # next claim meets the error again.
            logger.warning("worker %s: claim failed after limited jobs were claimed", worker_id)
    return jobs


def _claim_plain(
    database,
    backend,
    worker_id,
    queues,
    limit,
    now,
    savepoint,
    stored=controls.NONE,
    skip_tasks=frozenset(),
) -> list[ClaimedJob]:
    if stored.paused_tasks or stored.task_rates or skip_tasks:
        return _claim_diverting(
            database, backend, worker_id, queues, limit, now, savepoint, stored, skip_tasks
        )
    connection = connections[database]
    if connection.vendor == "mysql":
        # Lock, update and read are three statements there: one transaction.
        with transaction.atomic(using=database, savepoint=savepoint), connection.cursor() as cursor:
            rows = claim_mysql.candidates(
                cursor, connection, COLUMNS, backend, queues, limit, now, frozenset()
            )
            return _mark_mysql(cursor, connection, worker_id, rows, now)
    # No outcomes to write with it: on PostgreSQL the one statement is a
    # transaction of its own, and BEGIN and COMMIT would be two more round
    # trips on the way from a NOTIFY to a job's start. (SQLite takes its
    # write lock at BEGIN IMMEDIATE; an implicit transaction can fail to.)
    alone = (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )
    if alone:
        block = contextlib.nullcontext()
    else:
        # A savepoint only when claim() would go on after an error here
        # (limited jobs already claimed): without one the worker's
        # transaction (the completion write plus this claim, see
        # ClaimThread._record_and_claim) could not. Otherwise the error ends the
        # transaction anyway: one statement, nothing to roll back to, two
        # round trips saved.
        block = transaction.atomic(using=database, savepoint=savepoint)
    if connection.vendor == "postgresql":
        sql, params = _postgresql(backend, worker_id, queues, limit, now, alone)
        with block:
            # Bound on the server: djtasks.server_binding.
            cursor = server_binding.cursor(connection)
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return to_claimed_batch(rows, connection)
    with block, connection.cursor() as cursor:
        cursor.execute(*_sqlite(connection, backend, worker_id, queues, limit, now))
        rows = cursor.fetchall()
    return to_claimed_batch(rows, connection)


def _claim_diverting(
    database, backend, worker_id, queues, limit, now, savepoint, stored, skip_tasks
):
    """The plain claim while tasks are paused, rate-limited by an override, or skipped.

    Candidates of such tasks are flagged (``paused``, or ``limited`` to go
    to claim_limited) instead of claimed, which takes them out of the ready
    index for good; the scan goes on until ``limit`` jobs are claimed or
    the index has no more due rows, so a run of flagged rows never makes a
    worker wait a poll interval with work left.
    """
    connection = connections[database]
    diverted = stored.diverted_tasks()
    jobs = []
    # One transaction: the candidates stay locked until they are flagged or
    # marked RUNNING.
    with transaction.atomic(using=database, savepoint=savepoint), connection.cursor() as cursor:
        while len(jobs) < limit:
            wanted = limit - len(jobs)
            candidates = _plain_candidates(
                cursor, connection, backend, queues, wanted, now, skip_tasks
            )
            paused = [pk for pk, task in candidates if task in stored.paused_tasks]
            rerouted = [
                pk
                for pk, task in candidates
                if task in stored.task_rates and task not in stored.paused_tasks
            ]
            chosen = [pk for pk, task in candidates if task not in diverted]
            if paused:
                Job.objects.using(database).filter(pk__in=paused).update(paused=True)
            if rerouted:
                Job.objects.using(database).filter(pk__in=rerouted).update(limited=True)
            if chosen:
                jobs += mark_chosen(cursor, connection, worker_id, chosen, now)
            if len(candidates) < wanted or len(chosen) == len(candidates):
                break
    jobs.sort(key=lambda job: (-job.priority, job.available_at))
    return jobs


def _plain_candidates(cursor, connection, backend, queues, limit, now, skip_tasks) -> list[tuple]:
    """(id, task_path) of up to ``limit`` plain candidates, best first, locked."""
    skip = sorted(skip_tasks)
    if connection.vendor == "mysql":
        columns = ("id", "task_path", "priority", "available_at")
        rows = claim_mysql.candidates(
            cursor, connection, columns, backend, queues, limit, now, skip_tasks
        )
        return [(_uuid(row[0]), row[1]) for row in rows]
    if connection.vendor == "postgresql":
        skip_test, skip_params = (" AND task_path <> ALL(%s::text[])", [skip]) if skip else ("", [])
        cursor.execute(
            POSTGRESQL_CANDIDATES.format(skip_test=skip_test),
            [queues, backend, now, *skip_params, limit, limit],
        )
    else:
        queue_test, queue_params = _queue_test(queues)
        skip_test = f" AND task_path NOT IN ({', '.join(['%s'] * len(skip))})" if skip else ""
        stamp = connection.ops.adapt_datetimefield_value(now)
        cursor.execute(
            SQLITE_CANDIDATES.format(queue_test=queue_test, skip_test=skip_test),
            [backend, *queue_params, stamp, *skip, limit],
        )
    return [(_uuid(pk), task) for pk, task in cursor.fetchall()]


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _claim_limited(
    database, backend, worker_id, queues, stored, limited_queues, limit, now, skip_tasks
) -> list[ClaimedJob]:
    connection = connections[database]
    if not any(queue in limited_queues for queue in queues) and not _limited_due(
        database, backend, queues, now
    ):
        # Nothing under a limit is due: one small read instead of a locking
        # transaction of three (BEGIN IMMEDIATE on SQLite), which every idle
        # claim thread would otherwise pay once per POLL_INTERVAL.
        return []
    try:
        with transaction.atomic(using=database), connection.cursor() as cursor:
            # Locks the candidate rows and the limits' rows, and books the
            # starts; the UPDATE below runs before those locks are released.
            ids, started_at = claim_limited.choose(
                database, backend, queues, stored, limit, now, skip_tasks
            )
            if not ids:
                return []
            # Marked started when their starts were booked (after the locks).
            return mark_chosen(cursor, connection, worker_id, ids, started_at)
    finally:
        # MariaDB/MySQL: the concurrency keys' locks outlive the transaction.
        claim_limited.release_named_locks(database)


def mark_chosen(cursor, connection, worker_id, ids, now) -> list[ClaimedJob]:
    """Mark the locked READY rows ``ids`` RUNNING for ``worker_id``."""
    if connection.vendor == "mysql":
        rows = claim_mysql.locked_chosen(cursor, COLUMNS, ids)
        return _mark_mysql(cursor, connection, worker_id, rows, now)
    if connection.vendor == "postgresql":
        params = [worker_id, worker_id, now, now, [str(job_id) for job_id in ids]]
        cursor.execute(POSTGRESQL_CHOSEN, params)
    else:
        stamp = connection.ops.adapt_datetimefield_value(now)
        marks = ", ".join(["%s"] * len(ids))
        params = [worker_id, worker_id, stamp, stamp, *(job_id.hex for job_id in ids)]
        cursor.execute(SQLITE_CHOSEN.format(ids=marks), params)
    return to_claimed_batch(cursor.fetchall(), connection)


def _mark_mysql(cursor, connection, worker_id, rows, now) -> list[ClaimedJob]:
    """Mark the locked READY ``rows`` (COLUMNS) RUNNING; return them as claimed.

    MariaDB and MySQL return nothing from an UPDATE: the claimed values are
    the read ones changed as claim_mysql's UPDATE changes them.
    """
    jobs = to_claimed_batch(rows, connection)
    claim_mysql.mark_running(cursor, connection, worker_id, [job.id for job in jobs], now)
    for job in jobs:
        job.attempts += 1
        # JSON_ARRAY_APPEND makes an array of a hand-edited non-array first.
        previous = job.worker_ids if isinstance(job.worker_ids, list) else [job.worker_ids]
        job.worker_ids = [*previous, worker_id]
        job.started_at = job.started_at or now
        job.last_attempted_at = now
    return jobs


def _limited_due(database, backend, queues, now) -> bool:
    """Whether a due READY job of ``backend`` under a limit waits in ``queues`` (no lock)."""
    return (
        Job.objects.using(database)
        .filter(
            limited=True,
            paused=False,
            status=JobStatus.READY,
            backend=backend,
            queue_name__in=queues,
            available_at__lte=now,
        )
        .exists()
    )


def to_claimed_batch(rows, connection) -> list[ClaimedJob]:
    """The rows a claim's RETURNING gave, in claim order."""
    vendor = connection.vendor
    zone = connection.timezone if vendor in ("sqlite", "mysql") else None
    jobs = [_to_claimed(row, vendor, zone) for row in rows]
    # RETURNING gives no order; run the batch in claim order.
    jobs.sort(key=lambda job: (-job.priority, job.available_at))
    return jobs


def _queue_test(queues):
    if len(queues) == 1:
        return "= %s", queues
    return "IN (" + ", ".join(["%s"] * len(queues)) + ")", queues


def _postgresql(backend, worker_id, queues, limit, now, alone=False):
    """The plain claim's SQL and parameters; ``alone``: it is a transaction of its own."""
    marks = [worker_id, worker_id, now, now]
    asynchronous = alone and not djtasks_settings.SYNCHRONOUS_CLAIMS
    if len(queues) == 1:
        sql = POSTGRESQL[True, asynchronous]
        return sql, [backend, queues[0], now, limit, *marks]
    return POSTGRESQL[False, asynchronous], [queues, backend, now, limit, limit, *marks]


def _sqlite(connection, backend, worker_id, queues, limit, now):
    queue_test, queue_params = _queue_test(queues)
    sql = SQLITE.format(queue_test=queue_test)
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [worker_id, worker_id, stamp, stamp, backend, *queue_params, stamp, limit]
    return sql, params


def _to_claimed(row, vendor, zone) -> ClaimedJob:
    # Positional: COLUMNS lists the dataclass's fields in order.
    job = ClaimedJob(*row)
    if not isinstance(job.id, uuid.UUID):
        job.id = uuid.UUID(job.id)
    # Django's backends hand JSON columns over as text.
    job.args = _json(job.args)
    job.kwargs = _json(job.kwargs)
    job.retry_policy = _json(job.retry_policy)
    job.worker_ids = _json(job.worker_ids)
    job.errors = _json(job.errors)
    if job.workflow_id is not None and not isinstance(job.workflow_id, uuid.UUID):
        job.workflow_id = uuid.UUID(job.workflow_id)
    if vendor in ("sqlite", "mysql"):
        job.enqueued_at = _stored_datetime(job.enqueued_at, zone)
        job.run_after = _stored_datetime(job.run_after, zone)
        job.available_at = _stored_datetime(job.available_at, zone)
        job.started_at = _stored_datetime(job.started_at, zone)
        job.last_attempted_at = _stored_datetime(job.last_attempted_at, zone)
        job.expires_at = _stored_datetime(job.expires_at, zone)
    return job


def _json(value):
    if not isinstance(value, str):
        return value
    # Most rows hold empty defaults here; skip the JSON parser for them.
    empty = _EMPTY_JSON.get(value)
    return empty() if empty is not None else json.loads(value)


_EMPTY_JSON = {"[]": list, "{}": dict}


def _stored_datetime(value, zone):
    """A time column as SQLite, MariaDB and MySQL return it, made aware."""
    if value is None:
        return None
    # Django's SQLite converters may already have made a (naive) datetime.
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    # With USE_TZ, Django stores times without an offset, in the
    # connection's time zone (UTC unless DATABASES[...]["TIME_ZONE"] says
    # otherwise), and reads them back as that zone's, as done here: the
    # completion guard compares the claim's time as stored and as read.
    if parsed is not None and parsed.tzinfo is None and settings.USE_TZ:
        parsed = timezone.make_aware(parsed, zone)
    return parsed
