"""Completion writes: the outcomes of a batch of attempts in one statement."""

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from djtasks import server_binding
from djtasks.enqueue.insert import statement_budget
from djtasks.models import Job
from djtasks.workflows import next_steps

logger = logging.getLogger("djtasks")

TABLE = Job._meta.db_table


@dataclass(slots=True)
class Outcome:
    """How one attempt ended, waiting to be written."""

    job_id: object
    status: str  # SUCCESSFUL, FAILED, READY (retry), EXPIRED or CANCELLED
    finished_at: datetime | None
    return_value: object = None
    error: dict | None = None
    # For a retry: when the job may be claimed again.
    available_at: datetime | None = None
    # The attempt this outcome ends (Job.attempts when it was claimed).
    attempt: int | None = None
    # The job's workflow, if it is a workflow step (see djtasks.workflows.next_steps).
    workflow_id: object = None
    # When the claim of this attempt marked the row (its last_attempted_at).
    claimed_at: datetime | None = None


def attempt_outcome(job, status: str, finished_at, **fields) -> Outcome:
    """How the attempt of ``job`` (a claim.ClaimedJob) that is running ended.

    Names the claim it ends by the attempt and the claim's time, which the
    statements below match on, and carries the job's workflow.
    """
    return Outcome(
        job.id,
        status,
        finished_at,
        attempt=job.attempts,
        workflow_id=job.workflow_id,
        claimed_at=job.last_attempted_at,
        **fields,
    )


# Every UPDATE below matches on the worker that claimed the row, on status
# RUNNING, on the attempt and on the claim's time: if the job was rescued
# meanwhile (this worker was thought dead, e.g. through a long database
# outage) and claimed again, by another worker or by this one, this stale
# outcome changes nothing. The attempt number alone cannot tell a claim from
# one made again after it was lost (a claim that did not wait for the disk,
# gone with a crash of PostgreSQL, see djtasks.worker.claim): both count
# the same attempt. The claim's time (last_attempted_at, set by every claim
# to the claiming worker's clock) can.
# A retry (READY) of a job whose cancellation was requested while it ran
# ends CANCELLED instead, so a cancel is never lost to a retry.
# The outcomes travel as one JSON array of objects: encoding it is one call
# of the C JSON encoder, where one SQL array per column made the driver
# adapt and quote every value in Python (a tenth of the worker's time on a
# drain of no-op jobs). The return value goes as JSON text, since
# jsonb_to_recordset reads a JSON null as SQL NULL, and NULL means "no
# return value" (see _return_json).
POSTGRESQL = f"""
UPDATE {TABLE} AS job SET
    status = CASE WHEN outcome.status = 'READY' AND job.cancel_requested_at IS NOT NULL
                  THEN 'CANCELLED' ELSE outcome.status END,
    finished_at = CASE WHEN outcome.status = 'READY' AND job.cancel_requested_at IS NOT NULL
                       THEN now() ELSE outcome.finished_at END,
    return_value = outcome.return_value::jsonb,
    errors = CASE WHEN outcome.error IS NULL THEN job.errors
                  ELSE job.errors || jsonb_build_array(outcome.error) END,
    available_at = COALESCE(outcome.available_at, job.available_at)
FROM jsonb_to_recordset(%s::jsonb)
    AS outcome(id uuid, status text, finished_at timestamptz, return_value text,
               error jsonb, available_at timestamptz, attempt integer,
               claimed_at timestamptz)
WHERE job.id = outcome.id AND job.worker_id = %s AND job.status = 'RUNNING'
    AND (outcome.attempt IS NULL OR job.attempts = outcome.attempt)
    AND (outcome.claimed_at IS NULL OR job.last_attempted_at = outcome.claimed_at)
"""

SQLITE = f"""
UPDATE {TABLE} SET
    status = CASE WHEN %s = 'READY' AND cancel_requested_at IS NOT NULL
                  THEN 'CANCELLED' ELSE %s END,
    finished_at = CASE WHEN %s = 'READY' AND cancel_requested_at IS NOT NULL
                       THEN %s ELSE %s END,
    return_value = %s,
    errors = CASE WHEN %s IS NULL THEN errors
                  ELSE json_insert(errors, '$[#]', json(%s)) END,
    available_at = COALESCE(%s, available_at)
WHERE id = %s AND worker_id = %s AND status = 'RUNNING'
    AND (%s IS NULL OR attempts = %s)
    AND (%s IS NULL OR last_attempted_at = %s)
"""

# MariaDB and MySQL: the same statement with their JSON function;
# JSON_EXTRACT(%s, '$') makes the error an object in the array, not a string.
MYSQL = SQLITE.replace(
    "json_insert(errors, '$[#]', json(%s))", "JSON_ARRAY_APPEND(errors, '$', JSON_EXTRACT(%s, '$'))"
)
# For a batch there, one UPDATE joined to the outcomes read as a table
# (JSON_TABLE: MariaDB 10.6+, MySQL 8.0.4+), as on PostgreSQL: executemany()
# sent an UPDATE per outcome (MySQLdb folds only INSERTs into one statement),
# and those round trips were most of the server's CPU per job of a drain
# (docs/benchmarks.md). A multi-table UPDATE assigns left to right, each
# clause seeing the columns assigned before it: no clause here reads a
# column another one sets. The ids are 32 hex digits, which meet the primary
# key by index with both of Django's id columns there (MariaDB 10.7+'s UUID
# type, CHAR(32) elsewhere). The index is forced: the optimizer would read
# the RUNNING rows by status first, locking other workers' rows on the way.
MYSQL_BATCH = f"""
UPDATE {TABLE} AS job FORCE INDEX (PRIMARY)
JOIN JSON_TABLE(%s, '$[*]' COLUMNS (
    id char(32) PATH '$.id',
    status varchar(16) PATH '$.status',
    finished_at datetime(6) PATH '$.finished_at',
    return_value longtext PATH '$.return_value',
    error longtext PATH '$.error',
    available_at datetime(6) PATH '$.available_at',
    attempt int PATH '$.attempt',
    claimed_at datetime(6) PATH '$.claimed_at'
)) AS outcome ON job.id = outcome.id
SET job.status = CASE WHEN outcome.status = 'READY' AND job.cancel_requested_at IS NOT NULL
                      THEN 'CANCELLED' ELSE outcome.status END,
    job.finished_at = CASE WHEN outcome.status = 'READY' AND job.cancel_requested_at IS NOT NULL
                           THEN %s ELSE outcome.finished_at END,
    job.return_value = outcome.return_value,
    job.errors = CASE WHEN outcome.error IS NULL THEN job.errors
                      ELSE JSON_ARRAY_APPEND(job.errors, '$', JSON_EXTRACT(outcome.error, '$')) END,
    job.available_at = COALESCE(outcome.available_at, job.available_at)
WHERE job.worker_id = %s AND job.status = 'RUNNING'
    AND (outcome.attempt IS NULL OR job.attempts = outcome.attempt)
    AND (outcome.claimed_at IS NULL OR job.last_attempted_at = outcome.claimed_at)
"""
# They have no RETURNING either: a written step is read back by its key.
_MYSQL_WRITTEN_STEP = (
    f"SELECT id, status, workflow_id, workflow_stage, task_path FROM {TABLE} WHERE id = %s"
)


def record(database: str, worker_id: str, outcomes: list[Outcome]) -> int:
    """Write ``outcomes`` in one transaction; return how many rows changed."""
    if not outcomes:
        return 0
    connection = connections[database]
    # Workflow steps are written apart, so a batch without any (the common
    # case) runs exactly the one statement it always did. No savepoint: inside
    # the worker's transaction that also claims the next batch
    # (ClaimThread._record_and_claim) a refused write rolls it all back.
    steps = [outcome for outcome in outcomes if outcome.workflow_id is not None]
    plain = [outcome for outcome in outcomes if outcome.workflow_id is None] if steps else outcomes
    with transaction.atomic(using=database, savepoint=False), _cursor(connection) as cursor:
        written = _write(connection, cursor, plain, worker_id) if plain else 0
        if steps:
            finished = _write_steps(connection, cursor, steps, worker_id)
            written += len(finished)
            # In the same transaction as the outcomes (see djtasks.workflows.next_steps).
            next_steps.steps_finished(database, finished)
    if written < len(outcomes):
        logger.warning(
            "%d of %d outcomes were not recorded: their jobs were rescued from "
            "worker %s, which was thought dead.",
            len(outcomes) - written,
            len(outcomes),
            worker_id,
        )
    return written


def _cursor(connection):
    """The outcome statements' cursor.

    On PostgreSQL the thread's server-binding one (djtasks.server_binding),
    left open for the next statement: the outcomes' JSON travels as a value,
    not quoted into the statement's text.
    """
    if connection.vendor == "postgresql":
        return contextlib.nullcontext(server_binding.cursor(connection))
    return connection.cursor()


def _write(connection, cursor, outcomes, worker_id) -> int:
    if connection.vendor == "mysql":
        return _write_mysql(connection, cursor, outcomes, worker_id)
    if connection.vendor == "postgresql":
        cursor.execute(POSTGRESQL, _postgresql_params(outcomes, worker_id))
    else:
        cursor.executemany(SQLITE, _sqlite_params(connection, outcomes, worker_id))
    return cursor.rowcount


def _write_mysql(connection, cursor, outcomes, worker_id) -> int:
    """MYSQL_BATCH, in as few statements as max_allowed_packet allows."""
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    # A statement must fit the server's packet: long tracebacks of a batch
    # of failures may not all fit in one.
    budget = statement_budget(connection)
    written = 0
    for chunk in _json_chunks(_mysql_rows(adapt, outcomes), budget):
        cursor.execute(MYSQL_BATCH, ["[" + ",".join(chunk) + "]", now, worker_id])
        written += cursor.rowcount
    return written


def _mysql_rows(adapt, outcomes):
    # Ids as 32 hex digits, times in the server's DATETIME format, the error
    # as JSON text (JSON_TABLE reads a column as a scalar; MYSQL_BATCH makes
    # it an object again with JSON_EXTRACT).
    for row in _outcome_rows(outcomes, lambda job_id: job_id.hex, adapt):
        row["error"] = _json(row["error"])
        yield json.dumps(row)


def _json_chunks(encoded_rows, budget):
    """Groups of JSON texts, each group's total within ``budget`` characters.

    The driver may escape every character of the text: twice its length.
    """
    chunk, size = [], 0
    for text in encoded_rows:
        if chunk and size + 2 * len(text) > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(text)
        size += 2 * len(text) + 1
    if chunk:
        yield chunk


def _write_steps(connection, cursor, outcomes, worker_id) -> list:
    """Write workflow steps' outcomes; return the rows written, as they now are.

    RETURNING says which outcomes the guard let through (a stale one must
    not advance the workflow) and the status written (a retry of a
    cancelled job ends CANCELLED).
    """
    if connection.vendor == "postgresql":
        cursor.execute(POSTGRESQL + _PG_RETURNING, _postgresql_params(outcomes, worker_id))
        rows = cursor.fetchall()
    elif connection.vendor == "mysql":
        rows = []
        for params in _sqlite_params(connection, outcomes, worker_id):
            cursor.execute(MYSQL, params)
            if cursor.rowcount:
                # The row is this transaction's: its lock is held until COMMIT.
                cursor.execute(_MYSQL_WRITTEN_STEP, [params[9]])
                rows.extend(cursor.fetchall())
    else:
        # executemany() takes no RETURNING: one statement per step.
        rows = []
        for params in _sqlite_params(connection, outcomes, worker_id):
            cursor.execute(SQLITE + _SQLITE_RETURNING, params)
            rows.extend(cursor.fetchall())
    return [
        next_steps.Finished(_uuid(job_id), status, _uuid(workflow), stage, path)
        for job_id, status, workflow, stage, path in rows
    ]


_PG_RETURNING = "RETURNING job.id, job.status, job.workflow_id, job.workflow_stage, job.task_path"
_SQLITE_RETURNING = "RETURNING id, status, workflow_id, workflow_stage, task_path"


def _uuid(value):
    # SQLite returns UUIDs as 32 hex digits.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _json(value):
    return None if value is None else json.dumps(value)


def _postgresql_params(outcomes, worker_id):
    return [json.dumps(list(_outcome_rows(outcomes, str, _isoformat))), worker_id]


def _outcome_rows(outcomes, job_id, stamp):
    """The outcomes as the JSON objects the batch statements read as a table.

    ``job_id`` and ``stamp`` write an id and a time the way the database's
    statement reads them.
    """
    claimed_at = claimed_text = None
    for outcome in outcomes:
        if outcome.claimed_at != claimed_at:
            # The jobs of one claim share its time: written once per run of
            # them, not once per outcome.
            claimed_at = outcome.claimed_at
            claimed_text = stamp(claimed_at)
        yield {
            "id": job_id(outcome.job_id),
            "status": outcome.status,
            "finished_at": stamp(outcome.finished_at),
            "return_value": _return_json(outcome),
            "error": outcome.error,
            "available_at": stamp(outcome.available_at),
            "attempt": outcome.attempt,
            "claimed_at": claimed_text,
        }


def _isoformat(value):
    return None if value is None else value.isoformat()


def _return_json(outcome):
    # A task that returned None stores JSON null only when it succeeded, so
    # "no return value yet" (SQL NULL) stays distinguishable.
    if outcome.status != "SUCCESSFUL":
        return None
    if outcome.return_value is None:
        return "null"  # most tasks return nothing
    return json.dumps(outcome.return_value)


def _sqlite_params(connection, outcomes, worker_id):
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    for outcome in outcomes:
        error = _json(outcome.error)
        claimed_at = adapt(outcome.claimed_at)
        yield [
            outcome.status,
            outcome.status,
            outcome.status,
            now,
            adapt(outcome.finished_at),
            _return_json(outcome),
            error,
            error,
            adapt(outcome.available_at),
            outcome.job_id.hex,
            worker_id,
            outcome.attempt,
            outcome.attempt,
            claimed_at,
            claimed_at,
        ]
