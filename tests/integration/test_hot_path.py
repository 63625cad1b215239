"""The shortcuts of the enqueue and worker hot paths store and read what the
plain way did: one-row INSERTs with literals, outcomes as one JSON document,
TaskResults built field by field, claimed rows built by position."""

import dataclasses
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from djtasks.compat import FRAMEWORKS
from djtasks.enqueue import insert
from djtasks.models import Job, JobStatus
from djtasks.results import _FIELDS, _builder, _standard_builder
from djtasks.worker import claim as claim_module
from djtasks.worker import outcomes
from djtasks.worker.outcomes import Outcome
from tests import tasks

pytestmark = pytest.mark.django_db

# Awkward for SQL literals, JSON text and parameter formatting alike.
AWKWARD = ["it's 100%", '"quoted" \\back\\', "%s %(name)s", "é ✓", {"nested": [1, 2.5, None]}]


def test_a_single_enqueue_stores_values_nulls_and_defaults():
    result = tasks.echo.using(priority=3).enqueue(*AWKWARD, key="%%'")

    job = Job.objects.get(pk=result.id)
    assert job.args == AWKWARD
    assert job.kwargs == {"key": "%%'"}
    assert job.priority == 3
    assert job.status == JobStatus.READY
    # Left out of the row: the model's defaults.
    assert (job.attempts, job.worker_ids, job.errors, job.progress) == (0, [], [], None)
    # Given as None: NULL.
    assert (job.run_after, job.expires_at, job.unique_key) == (None, None, None)


def test_single_insert_literals_quote_and_refuse_the_unknown():
    assert insert._literal(None) == "NULL"
    assert insert._literal(7) == "7"
    assert insert._literal("it's 100%") == "'it''s 100%%'"
    assert (insert._literal(True), insert._literal(False)) == ("TRUE", "FALSE")
    with pytest.raises(TypeError):
        insert._literal(1.5)
    # Every column's default can be written (a new field's default too).
    sql, names = insert._single_insert(("id", "enqueued_at", "available_at"), ())
    assert names == ("id", "enqueued_at", "available_at")


def test_the_single_insert_names_only_columns_that_are_not_null():
    sql, names = insert._single_insert(
        ("id", "task_path", "enqueued_at", "available_at"), ("run_after", "expires_at")
    )
    columns = sql[sql.index("(") + 1 : sql.index(")")].split(", ")

    # Given values are parameters; defaults are literals.
    assert names == ("id", "task_path", "enqueued_at", "available_at")
    assert {"attempts", "worker_ids", "errors", "limited", "waiting_for"} <= set(columns)
    # NULL, given or by default: left out, as the column's default is NULL.
    assert not {"run_after", "expires_at", "progress", "unique_key"} & set(columns)


def test_a_single_enqueue_is_seen_by_query_logging():
    with CaptureQueriesContext(connection) as queries:
        tasks.noop.enqueue()

    assert [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_a_single_enqueue_after_a_reconnect_uses_the_new_connection():
    first = tasks.noop.enqueue().id
    # Django reconnects per request by default: the cursor kept for the old
    # connection must not be used on (or instead of) the new one.
    connection.close()
    second = tasks.noop.enqueue().id

    assert Job.objects.filter(pk__in=[first, second]).count() == 2


@pytest.fixture
def prepare_threshold():
    """Set psycopg's prepare_threshold on this test's connection, as
    DATABASES OPTIONS would, and put Django's default (None) back.

    DEALLOCATE ALL before and after: the session starts with nothing
    prepared whatever ran before, and psycopg, which sees the command,
    forgets what it had prepared.
    """
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    raw = connection.connection

    def set_threshold(value):
        raw.prepare_threshold = value

    yield set_threshold
    raw.prepare_threshold = None
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")


def _prepared(pattern):
    """How many statements LIKE ``pattern`` this session has prepared."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [pattern]
        )
        return cursor.fetchone()[0]


@pytest.mark.postgresql
@pytest.mark.parametrize("threshold, prepared", [(None, 0), (2, 1)])
def test_the_single_insert_is_prepared_only_if_the_connection_allows(
    prepare_threshold, threshold, prepared
):
    prepare_threshold(threshold)
    ids = [tasks.noop.enqueue().id for _ in range(4)]

    # None is Django's default, and the setting for a transaction-mode
    # pooler: nothing may be prepared then.
    assert _prepared("INSERT INTO djtasks_job %") == prepared
    assert Job.objects.filter(pk__in=ids, status=JobStatus.READY).count() == 4


@pytest.mark.postgresql
@pytest.mark.parametrize("threshold, prepared", [(None, 0), (2, 1)])
def test_the_claim_and_the_outcomes_are_prepared_only_if_the_connection_allows(
    prepare_threshold, threshold, prepared
):
    # They bind on the server (djtasks.server_binding), as the INSERT does.
    prepare_threshold(threshold)
    for _ in range(4):
        tasks.noop.enqueue()
        [job] = claim_module.claim("default", "w-prepared", ["default"], 10, timezone.now())
        done = Outcome(job.id, "SUCCESSFUL", timezone.now(), attempt=job.attempts)
        assert outcomes.record("default", "w-prepared", [done]) == 1

    assert _prepared("%FOR UPDATE SKIP LOCKED%UPDATE djtasks_job AS job SET%") == prepared
    assert _prepared("%FROM jsonb_to_recordset%") == prepared
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 4


def test_outcomes_keep_null_apart_from_a_json_null_and_round_trip(run_jobs):
    nothing = tasks.noop.enqueue().id
    awkward = tasks.echo.enqueue(*AWKWARD).id
    failed = tasks.failing.enqueue().id

    run_jobs()

    assert Job.objects.get(pk=awkward).return_value == {"args": AWKWARD, "kwargs": {}}
    # The task returned None: stored as JSON null, not as "no value".
    assert not Job.objects.filter(pk=nothing, return_value__isnull=True).exists()
    assert Job.objects.filter(pk=failed, return_value__isnull=True).exists()
    assert Job.objects.get(pk=failed).status == JobStatus.FAILED


def test_claimed_rows_are_built_by_position():
    names = [field.name for field in dataclasses.fields(claim_module.ClaimedJob)]

    assert names[: len(claim_module.COLUMNS)] == list(claim_module.COLUMNS)


@pytest.mark.parametrize("framework", FRAMEWORKS, ids=lambda f: f["package"])
def test_task_results_built_directly_equal_the_standard_constructor(framework):
    now = timezone.now()
    values = {
        "task": tasks.noop,
        "id": str(uuid.uuid4()),
        "status": framework["TaskResultStatus"].RUNNING,
        "enqueued_at": now,
        "started_at": now,
        "finished_at": None,
        "last_attempted_at": now,
        "args": [1, ["a"]],
        "kwargs": {"k": {"v": None}},
        "backend": "default",
        "errors": [],
        "worker_ids": ["w"],
        "_return_value": 5,
    }
    result_class = framework["TaskResult"]

    direct = _builder(framework)(*values.values())
    standard = _standard_builder(result_class)(*values.values())

    assert type(direct) is result_class
    assert [getattr(direct, name) for name in _FIELDS] == list(values.values())
    assert direct == standard
    with pytest.raises(dataclasses.FrozenInstanceError):
        direct.id = "changed"


def test_enqueue_validates_a_task_object_once_per_backend(backend, monkeypatch):
    task = tasks.add.using(priority=7)
    other = tasks.add.using(priority=7)
    calls = []
    validate = type(backend).validate_task

    def counting(self, task):
        calls.append(task)
        validate(self, task)

    monkeypatch.setattr(type(backend), "validate_task", counting)

    task.enqueue(1, 2)
    task.enqueue(3, 4)
    other.enqueue(5, 6)

    # The second call reuses the verdict; another task object is validated.
    assert [id(validated) for validated in calls] == [id(task), id(other)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_claim_swallowed_an_error_keeps_its_outcomes_pending(monkeypatch):
    from django.db import DatabaseError, transaction

    from djtasks.worker.claim_thread import ClaimThread
    from djtasks.worker.outcomes import Outcome
    from djtasks.worker.process import WorkerProcess

    job_id = tasks.noop.enqueue().id
    worker = WorkerProcess(burst=True, worker_id="w-swallow")
    claimer = worker.claimers[0]
    [job] = claim_module.claim("default", "w-swallow", ["default"], 1, timezone.now())
    claimer.slot.pending.append(Outcome(job.id, "SUCCESSFUL", timezone.now(), attempt=1))

    def claim_that_swallows(self, size):
        try:
            with transaction.atomic(savepoint=False):
                raise DatabaseError("boom")
        except DatabaseError:
            return ["a job the rolled-back claim would have returned"]

    monkeypatch.setattr(ClaimThread, "_claim", claim_that_swallows)

    with pytest.raises(DatabaseError):
        claimer._record_and_claim(claimer.slot.pending, 10)

    # Nothing was run on a claim that did not commit, nothing was lost.
    assert len(claimer.slot.pending) == 1
    assert Job.objects.get(pk=job_id).status == JobStatus.RUNNING
