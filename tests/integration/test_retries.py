"""Retries: max_attempts, backoff on the row, retry_on, and raise Retry(delay=...).

The clock is moved by passing ``now`` to the claim, never by sleeping.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from djtasks.compat import TaskResultStatus
from djtasks.models import Job, JobStatus
from tests import tasks

pytestmark = pytest.mark.django_db


def test_failing_task_ends_failed_after_max_attempts(run_jobs):
    result = tasks.always_failing.enqueue()
    now = timezone.now()
    statuses = []
    waits = []

    for attempt in range(1, 4):
        started = timezone.now()
        outcomes = run_jobs(now=now, worker_id=f"worker-{attempt}")
        assert len(outcomes) == 1
        statuses.append(outcomes[0].status)
        job = Job.objects.get(pk=result.id)
        if job.status == "READY":
            # Backoff counts from the (real) time the attempt failed.
            waits.append(job.available_at - started)
            # Not due again until the backoff has elapsed.
            assert run_jobs(now=job.available_at - timedelta(milliseconds=1)) == []
            now = job.available_at

    assert statuses == ["READY", "READY", "FAILED"]
    # backoff=1, jitter=False: 1 s then 2 s (plus the time the attempt took).
    assert timedelta(seconds=1) <= waits[0] < timedelta(seconds=2)
    assert timedelta(seconds=2) <= waits[1] < timedelta(seconds=3)
    assert run_jobs(now=now + timedelta(days=1)) == []  # never claimed again
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert result.worker_ids == ["worker-1", "worker-2", "worker-3"]
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 3
    job = Job.objects.get(pk=result.id)
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert [e["worker_id"] for e in job.errors] == ["worker-1", "worker-2", "worker-3"]


def test_backoff_is_written_to_available_at(run_jobs):
    result = tasks.always_failing.enqueue()
    before = timezone.now()

    run_jobs()

    job = Job.objects.get(pk=result.id)
    assert job.status == "READY"
    assert job.finished_at is None
    # backoff=1, jitter=False: the second attempt is due one second later.
    assert before + timedelta(seconds=1) <= job.available_at
    assert job.available_at <= timezone.now() + timedelta(seconds=1)
    # Between attempts the standard API shows READY with the error so far.
    seen = tasks.always_failing.get_result(result.id)
    assert seen.status == TaskResultStatus.READY
    assert len(seen.errors) == 1


def test_retry_on_retries_listed_exceptions(run_jobs, later):
    result = tasks.raise_error.enqueue("connection")

    run_jobs()
    assert Job.objects.get(pk=result.id).status == "READY"
    run_jobs(now=later)
    run_jobs(now=later + timedelta(hours=1))

    job = Job.objects.get(pk=result.id)
    assert (job.status, job.attempts) == ("FAILED", 3)


def test_retry_on_does_not_retry_other_exceptions(run_jobs, later):
    result = tasks.raise_error.enqueue("value")

    run_jobs()
    assert run_jobs(now=later) == []

    job = Job.objects.get(pk=result.id)
    assert (job.status, job.attempts) == ("FAILED", 1)
    assert job.errors[0]["exception_class_path"] == "builtins.ValueError"


def test_raise_retry_with_a_delay(run_jobs):
    result = tasks.retry_once.enqueue(delay=30)
    before = timezone.now()

    run_jobs()

    job = Job.objects.get(pk=result.id)
    assert job.status == "READY"
    assert before + timedelta(seconds=30) <= job.available_at
    assert job.available_at <= timezone.now() + timedelta(seconds=30)
    assert job.errors[0]["exception_class_path"] == "djtasks.exceptions.Retry"
    assert run_jobs(now=job.available_at - timedelta(seconds=1)) == []

    run_jobs(now=job.available_at)

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2
    assert result.attempts == 2


def test_raise_retry_counts_against_max_attempts(run_jobs, later):
    result = tasks.always_retry.enqueue(delay=1)

    run_jobs()
    run_jobs(now=later)

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["djtasks.exceptions.Retry"] * 2


def test_task_without_max_attempts_is_not_retried(run_jobs, later):
    result = tasks.failing.enqueue()

    run_jobs()

    assert run_jobs(now=later) == []
    assert Job.objects.get(pk=result.id).status == "FAILED"


def test_using_max_attempts_enables_retries(run_jobs, later):
    result = tasks.failing.using(max_attempts=2, backoff=1).enqueue()

    run_jobs()
    assert Job.objects.get(pk=result.id).status == "READY"
    run_jobs(now=later)

    job = Job.objects.get(pk=result.id)
    assert (job.status, job.attempts) == ("FAILED", 2)


def test_keyboard_interrupt_in_the_main_thread_goes_up_as_a_ctrl_c_would(run_jobs):
    # run_jobs() runs the task in the caller's (main) thread, where a
    # KeyboardInterrupt may be the person at the keyboard: not swallowed.
    job_id = tasks.raises_base_exception.enqueue("KeyboardInterrupt").id

    with pytest.raises(KeyboardInterrupt):
        run_jobs()

    assert Job.objects.get(pk=job_id).status == JobStatus.RUNNING


def test_system_exit_from_a_task_fails_the_job_even_in_the_main_thread(run_jobs):
    job_id = tasks.raises_base_exception.enqueue("SystemExit").id

    run_jobs()

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["exception_class_path"] == "builtins.SystemExit"


@pytest.mark.parametrize("how", ["exc", "from"])
def test_a_retry_that_uses_up_max_attempts_records_the_exception_it_was_for(run_jobs, later, how):
    result = tasks.retries_for.enqueue(how, "gateway busy: try later")

    run_jobs()
    run_jobs(now=later)

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    # The retried attempt says it was retried; the last one names the cause,
    # as Celery re-raises self.retry(exc=...)'s exc once retries run out.
    assert [e.exception_class_path for e in result.errors] == [
        "djtasks.exceptions.Retry",
        "tests.tasks.GatewayBusy",
    ]
    assert result.errors[-1].exception_class is tasks.GatewayBusy
    last_line = result.errors[-1].traceback.strip().splitlines()[-1]
    assert last_line == "tests.tasks.GatewayBusy: gateway busy: try later"


def test_a_retry_naming_no_exception_is_recorded_itself(run_jobs, later):
    result = tasks.retries_for.enqueue("none")

    run_jobs()
    run_jobs(now=later)

    result.refresh()
    assert [e.exception_class_path for e in result.errors] == ["djtasks.exceptions.Retry"] * 2


def test_retry_exc_must_be_an_exception():
    from djtasks import Retry

    with pytest.raises(TypeError, match="takes an exception, not str"):
        Retry(exc="gateway busy")
