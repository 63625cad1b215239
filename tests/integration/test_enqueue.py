"""djtasks' own enqueue API: enqueue(), bulk_enqueue(), options on the row, unique."""

import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import djtasks
from djtasks.compat import TaskResultStatus
from djtasks.models import Job
from tests import tasks

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "task", [tasks.add, "tests.tasks.add", tasks.std_add, "tests.tasks.std_add"]
)
def test_enqueue_accepts_a_task_or_its_dotted_path(task, run_jobs):
    result = djtasks.enqueue(task, 1, b=2)
    run_jobs()
    result.refresh()

    assert result.return_value == 3
    assert Job.objects.get(pk=result.id).kwargs == {"b": 2}


def test_aenqueue_accepts_a_dotted_path():
    result = async_to_sync(djtasks.aenqueue)("tests.tasks.add", 5, 6)

    assert Job.objects.get(pk=result.id).args == [5, 6]


def test_enqueue_keeps_the_task_defaults():
    result = djtasks.enqueue("tests.tasks.send_email", "a@example.com")

    job = Job.objects.get(pk=result.id)
    assert (job.queue_name, job.priority) == ("emails", 10)


@pytest.fixture
def copy_statements(monkeypatch):
    """COPY statements sent through psycopg (they bypass Django's query log)."""
    sent = []
    try:
        import psycopg
    except ImportError:
        return sent
    original = psycopg.Cursor.copy

    def copy(cursor, statement, *args, **kwargs):
        sent.append(str(statement))
        return original(cursor, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", copy)
    return sent


def test_bulk_enqueue_inserts_all_jobs_with_one_statement(run_jobs, copy_statements):
    calls = [((n, n), {}) for n in range(50)]

    with CaptureQueriesContext(connection) as queries:
        results = djtasks.bulk_enqueue(tasks.add, calls)

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    # One INSERT (SQLite) or one COPY (PostgreSQL) for the whole batch.
    assert len(inserts) + len(copy_statements) == 1, (len(inserts), copy_statements)
    assert len(results) == 50
    assert Job.objects.filter(pk__in=[r.id for r in results]).count() == 50
    run_jobs()
    assert [tasks.add.get_result(r.id).return_value for r in results] == [2 * n for n in range(50)]


def test_bulk_enqueue_by_path_sends_task_enqueued_for_each(signal_log):
    results = djtasks.bulk_enqueue("tests.tasks.echo", [((1,), {"a": 1}), ((), {})])

    assert [r.status for r in results] == [TaskResultStatus.READY] * 2
    assert [entry["id"] for entry in signal_log] == [r.id for r in results]
    assert Job.objects.get(pk=results[0].id).kwargs == {"a": 1}


def test_bulk_enqueue_validates_every_call_before_inserting():
    with pytest.raises(djtasks.ArgumentNotSerializable):
        djtasks.bulk_enqueue(tasks.echo, [((1,), {}), ((object(),), {})])

    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "task",
    [
        tasks.with_options,
        pytest.param(
            tasks.std_with_options,
            marks=pytest.mark.skipif(
                tasks.std_with_options is None,
                reason="Django 6.0's @task takes no backend options",
            ),
        ),
    ],
    ids=["djtasks", "standard"],
)
def test_djtasks_options_are_stored_on_the_row(task):
    before = timezone.now()
    result = task.enqueue()

    job = Job.objects.get(pk=result.id)
    if task is tasks.with_options:
        assert job.max_attempts == 5
        assert job.retry_policy == {
            "backoff": 2,
            "backoff_max": 60,
            "jitter": False,
            "retry_on": ["builtins.ValueError"],
        }
        assert job.timeout == 30
        assert job.expires_at == job.enqueued_at + timedelta(minutes=5)
        assert job.expires_at >= before + timedelta(minutes=5)
        assert job.unique_key is None
    else:
        assert (job.max_attempts, job.timeout, job.unique_key) == (2, 10, "std-unique")
        assert job.expires_at is None


def test_using_changes_djtasks_options():
    result = tasks.noop.using(max_attempts=4, timeout=2.5, expires=30).enqueue()

    job = Job.objects.get(pk=result.id)
    assert (job.max_attempts, job.timeout) == (4, 2.5)
    assert job.expires_at == job.enqueued_at + timedelta(seconds=30)


def test_unique_key_returns_the_existing_live_job():
    first = tasks.singleton.enqueue()
    second = tasks.singleton.enqueue()

    assert second.id == first.id
    assert Job.objects.filter(unique_key="the-singleton").count() == 1


def test_unique_key_is_free_again_once_the_job_finished(run_jobs):
    first = tasks.singleton.enqueue()
    run_jobs()

    second = tasks.singleton.enqueue()

    assert second.id != first.id
    assert Job.objects.filter(unique_key="the-singleton").count() == 2


def test_unique_duplicate_does_not_break_the_callers_transaction():
    from django.db import transaction

    with transaction.atomic():
        first = tasks.singleton.enqueue()
        second = tasks.singleton.enqueue()
        # Still usable: the failed INSERT was inside a savepoint.
        third = tasks.noop.enqueue()

    assert first.id == second.id
    assert Job.objects.filter(pk=third.id).exists()


def test_unique_true_derives_the_key_from_the_arguments():
    one = tasks.unique_by_args.enqueue(1)
    one_again = tasks.unique_by_args.enqueue(1)
    two = tasks.unique_by_args.enqueue(2)

    assert one.id == one_again.id
    assert two.id != one.id
    assert Job.objects.filter(task_path="tests.tasks.unique_by_args").count() == 2


def test_bulk_enqueue_of_unique_jobs_deduplicates():
    results = djtasks.bulk_enqueue(tasks.unique_by_args, [((1,), {}), ((1,), {}), ((2,), {})])

    assert results[0].id == results[1].id != results[2].id
    assert Job.objects.count() == 2


def test_expired_job_is_not_run(run_jobs):
    result = tasks.expiring.enqueue()

    outcomes = run_jobs(now=timezone.now() + timedelta(seconds=61))

    assert [o.status for o in outcomes] == ["EXPIRED"]
    job = Job.objects.get(pk=result.id)
    assert job.status == "EXPIRED"
    assert job.return_value is None
    # Seen through the standard API, an expired job has failed.
    assert tasks.expiring.get_result(result.id).status == TaskResultStatus.FAILED


def test_a_job_claimed_in_time_but_started_late_expires():
    from djtasks.worker.claim import claim
    from djtasks.worker.executor import Executor

    result = tasks.expiring.using(expires=0.2).enqueue()
    [job] = claim("default", "w-late", ["default"], 10, timezone.now())
    time.sleep(0.3)  # waits in its batch behind other jobs past its expiry

    outcome = Executor("w-late", type(tasks.expiring.get_backend())).run(job)

    assert outcome.status == "EXPIRED"
    assert Job.objects.get(pk=result.id).status == "RUNNING"  # the claim's write only


def test_a_retry_after_the_expiry_still_runs(run_jobs):
    # Started in time, failed, retried after its expiry: expiry is about a
    # late start, so the retry runs.
    result = tasks.always_failing.using(max_attempts=2, backoff=1, expires=30).enqueue()

    first = run_jobs()
    retry = run_jobs(now=timezone.now() + timedelta(seconds=61))

    assert [o.status for o in first] == ["READY"]
    assert [o.status for o in retry] == ["FAILED"]
    assert len(Job.objects.get(pk=result.id).errors) == 2


def test_job_on_another_queue_waits_for_a_worker_of_that_queue(run_jobs):
    result = tasks.on_other_queue.enqueue()

    assert run_jobs(queues=["default", "emails"]) == []
    assert len(run_jobs(queues=["other"])) == 1
    assert tasks.on_other_queue.get_result(result.id).return_value == "other"


def test_hooks_are_called_with_the_result(run_jobs, later):
    tasks.HOOK_CALLS.clear()
    ok = tasks.with_hooks.enqueue()
    bad = tasks.with_hooks.enqueue(fail=True)

    run_jobs()
    run_jobs(now=later)

    assert sorted(tasks.HOOK_CALLS) == sorted(
        [
            ("success", ok.id, "SUCCESSFUL"),
            ("retry", bad.id, "READY"),
            ("failure", bad.id, "FAILED"),
        ]
    )


def test_enqueued_jobs_get_time_ordered_ids():
    first = tasks.add.enqueue(1, 2)
    time.sleep(0.002)
    [second, third] = djtasks.bulk_enqueue(tasks.add, [((1, 2), {}), ((3, 4), {})])
    ids = [uuid.UUID(result.id) for result in (first, second, third)]
    assert {job_id.version for job_id in ids} == {7}
    assert ids[0] < ids[1] and ids[0] < ids[2]
    # A row made through the ORM gets one too.
    assert Job.objects.create(task_path="tests.tasks.add").id.version == 7
