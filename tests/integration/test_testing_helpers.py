"""djtasks.testing: run jobs inline and assert what was enqueued, with pytest and TestCase."""

import re
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.test import TestCase
from django.utils import timezone

import djtasks
from djtasks import testing
from djtasks.models import Job, JobStatus
from djtasks.testing import (
    JobFailed,
    assert_enqueued,
    assert_not_enqueued,
    captured_jobs,
    run_jobs,
)
from tests import tasks


def later():
    return timezone.now() + timedelta(hours=1)


# --- run_jobs ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_jobs_runs_due_jobs_and_returns_their_results():
    first = tasks.add.enqueue(1, 2)
    second = tasks.std_add.enqueue(3, 4)  # the standard decorator too
    results = run_jobs()
    assert [(r.id, str(r.status), r.return_value) for r in results] == [
        (first.id, "SUCCESSFUL", 3),
        (second.id, "SUCCESSFUL", 7),
    ]
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCESSFUL}
    assert run_jobs() == []


@pytest.mark.django_db
def test_jobs_enqueued_by_running_jobs_run_too():
    tasks.enqueues_add.enqueue(2, 5)
    results = run_jobs()
    assert [r.task.module_path for r in results] == ["tests.tasks.enqueues_add", "tests.tasks.add"]
    assert results[1].return_value == 7
    assert results[0].return_value == results[1].id


@pytest.mark.django_db
def test_a_failure_is_recorded_and_propagate_raises_it_with_its_traceback():
    tasks.failing.enqueue("it broke")
    [result] = run_jobs()
    assert str(result.status) == "FAILED"
    assert result.errors[0].exception_class_path == "builtins.ValueError"

    tasks.failing.enqueue("loudly")
    with pytest.raises(JobFailed, match=r"(?s)tests\.tasks\.failing.*ValueError: loudly"):
        run_jobs(propagate=True)


@pytest.mark.django_db
def test_retries_wait_for_their_backoff_unless_now_is_later():
    tasks.always_failing.enqueue()
    [result] = run_jobs()
    # Attempt 1 failed; the retry is due in 1 s, not now.
    assert str(result.status) == "READY"
    assert len(result.errors) == 1
    [result] = run_jobs(now=later())
    # A clock an hour ahead passes every backoff: attempts 2 and 3 run.
    assert str(result.status) == "FAILED"
    assert Job.objects.get().attempts == 3
    assert len(result.errors) == 3


@pytest.mark.django_db
def test_a_retry_asked_for_by_the_task_then_success():
    tasks.retry_once.enqueue(delay=30)
    assert str(run_jobs()[0].status) == "READY"
    [result] = run_jobs(now=later())
    assert (str(result.status), result.return_value) == ("SUCCESSFUL", 2)


@pytest.mark.django_db
def test_deferred_jobs_and_other_queues_wait():
    deferred = tasks.add.using(run_after=timedelta(minutes=10)).enqueue(1, 1)
    email = tasks.send_email.enqueue("a@example.com")
    assert [r.id for r in run_jobs(queues=["emails"])] == [email.id]
    assert run_jobs() == []
    assert [r.id for r in run_jobs(now=later())] == [deferred.id]


@pytest.mark.django_db
def test_a_task_that_enqueues_itself_for_ever_is_stopped(monkeypatch):
    monkeypatch.setattr(testing, "MAX_RUNS", 5)
    tasks.enqueues_itself.enqueue()
    with pytest.raises(RuntimeError, match="does a task enqueue itself"):
        run_jobs()


# --- assert_enqueued --------------------------------------------------------------------------


@pytest.mark.django_db
def test_assert_enqueued_matches_task_and_arguments():
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(1, 2)
    tasks.echo.enqueue("x", flag=True)
    jobs = assert_enqueued(tasks.add, args=(1, 2), count=2)
    assert {job.task_path for job in jobs} == {"tests.tasks.add"}
    assert_enqueued(tasks.add)
    assert_enqueued("tests.tasks.echo", args=["x"], kwargs={"flag": True}, count=1)
    assert_enqueued(tasks.echo, kwargs={"flag": mock.ANY})
    assert_enqueued(tasks.add, args=[mock.ANY, 2], queue_name="default")
    assert_not_enqueued(tasks.add, args=(2, 1))
    assert_not_enqueued(tasks.noop)


@pytest.mark.django_db
def test_assert_enqueued_failure_lists_what_was_enqueued():
    tasks.add.enqueue(1, 3)
    tasks.noop.enqueue()
    with pytest.raises(AssertionError) as failure:
        assert_enqueued(tasks.add, args=[1, 2])
    message = str(failure.value)
    assert message.startswith(
        "Expected a job of tests.tasks.add with args=[1, 2], any kwargs; found 0."
    )
    assert re.search(
        r"Jobs of tests\.tasks\.add \(1\):\n  tests\.tasks\.add args=\[1, 3\] kwargs=\{\}", message
    )
    assert "Other jobs (1):\n  tests.tasks.noop args=[]" in message


@pytest.mark.django_db
def test_assert_enqueued_count_and_empty_table_messages():
    with pytest.raises(AssertionError, match="No job was enqueued at all"):
        assert_enqueued(tasks.add)
    tasks.add.enqueue(1, 2)
    with pytest.raises(
        AssertionError, match=r"Expected 2 job\(s\) of tests\.tasks\.add .* found 1\."
    ):
        assert_enqueued(tasks.add, count=2)


@pytest.mark.django_db
def test_assert_not_enqueued_failure_names_the_jobs():
    result = tasks.send_email.enqueue("b@example.com")
    with pytest.raises(AssertionError) as failure:
        assert_not_enqueued(tasks.send_email, args=["b@example.com"])
    assert 'Expected no job of tests.tasks.send_email with args=["b@example.com"]' in str(
        failure.value
    )
    assert result.id in str(failure.value)


# --- captured_jobs ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_captured_jobs_sees_only_the_block_and_freezes_after_it():
    tasks.add.enqueue(0, 0)
    with captured_jobs() as jobs:
        tasks.add.enqueue(1, 2)
        djtasks.bulk_enqueue(tasks.echo, [((1,), {}), ((2,), {})])
        assert len(jobs) == 3  # live inside the block
    tasks.add.enqueue(9, 9)
    assert [job.task_path for job in jobs] == [
        "tests.tasks.add",
        "tests.tasks.echo",
        "tests.tasks.echo",
    ]
    jobs.assert_enqueued(tasks.add, args=[1, 2], count=1)
    jobs.assert_not_enqueued(tasks.add, args=[0, 0])
    jobs.assert_not_enqueued(tasks.add, args=[9, 9])
    with pytest.raises(AssertionError, match="found 0"):
        jobs.assert_enqueued(tasks.noop)


@pytest.mark.django_db
def test_captured_jobs_of_one_task():
    with captured_jobs(tasks.echo) as jobs:
        tasks.add.enqueue(1, 2)
        tasks.echo.enqueue("only me")
    assert [job.args for job in jobs] == [["only me"]]
    assert isinstance(jobs[0].id, uuid.UUID)


# --- inside django.test.TestCase (one transaction, no threads) ---------------------------------


class HelpersInsideTestCase(TestCase):
    def test_enqueue_assert_and_run_inline(self):
        with captured_jobs() as jobs:
            tasks.send_email.enqueue("c@example.com")
        jobs.assert_enqueued(tasks.send_email, args=["c@example.com"])
        [result] = run_jobs()
        self.assertEqual(result.return_value, "sent to c@example.com")
        self.assertEqual(Job.objects.get().status, JobStatus.SUCCESSFUL)

    def test_failure_message_reaches_unittest(self):
        tasks.noop.enqueue()
        with self.assertRaisesMessage(AssertionError, "Other jobs (1):"):
            assert_enqueued(tasks.add)

    def test_on_commit_enqueue_is_seen_once_callbacks_run(self):
        from django.db import transaction

        with self.captureOnCommitCallbacks(execute=True):
            transaction.on_commit(lambda: tasks.add.enqueue(4, 4))
            assert_not_enqueued(tasks.add)
        assert_enqueued(tasks.add, args=[4, 4], count=1)
        self.assertEqual(run_jobs()[0].return_value, 8)
