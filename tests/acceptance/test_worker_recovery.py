"""Crash recovery, hard timeouts and retries, with real runworker processes."""

import os
import signal

import pytest

from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def started_by(job_id, count=1):
    """The Ledger rows of a job once it has started ``count`` times."""
    rows = list(Ledger.objects.filter(job_id=job_id))
    return rows if len(rows) >= count else None


def status_of(job_id):
    return Job.objects.get(pk=job_id).status


def test_kill_9_of_a_worker_process_mid_job_is_recovered(start_worker):
    job_id = tasks.slow_first_attempt.enqueue().id
    worker = start_worker("--processes", "1")
    first = wait_for(lambda: started_by(job_id), 20, "first attempt", worker)[0]

    os.kill(first.pid, signal.SIGKILL)

    wait_for(lambda: status_of(job_id) == JobStatus.SUCCESSFUL, 20, "recovery", worker)
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 2
    assert job.return_value == 2
    assert job.errors[0]["exception_class_path"] == "djtasks.exceptions.WorkerLost"
    assert "SIGKILL" in job.errors[0]["traceback"]
    assert "killed by SIGKILL" in worker.log()
    # The replacement process ran the second attempt.
    assert started_by(job_id, 2)[1].pid != first.pid


def test_jobs_of_a_whole_killed_runworker_are_rescued_by_another(start_worker):
    job_id = tasks.slow_first_attempt.enqueue().id
    doomed = start_worker("--processes", "1")
    wait_for(lambda: started_by(job_id), 20, "first attempt", doomed)

    doomed.kill_group()  # supervisor and children: nobody releases the job
    assert status_of(job_id) == JobStatus.RUNNING
    rescuer = start_worker("--processes", "1")

    # Rescued once the dead worker's heartbeat is STALE_AFTER (2 s) old.
    wait_for(lambda: status_of(job_id) == JobStatus.SUCCESSFUL, 30, "rescue", rescuer)
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 2
    assert "sent no heartbeat" in job.errors[0]["traceback"]


def test_a_standard_task_lost_with_its_worker_process_runs_again(start_worker):
    # max_attempts 1 (Django's API has no retries): the lost attempt uses up
    # none of it, so the job runs again instead of failing with WorkerLost.
    job_id = tasks.std_slow_first_attempt.enqueue().id
    worker = start_worker("--processes", "1")
    row = wait_for(lambda: started_by(job_id), 20, "start", worker)[0]

    os.kill(row.pid, signal.SIGKILL)

    wait_for(lambda: status_of(job_id) == JobStatus.SUCCESSFUL, 30, "second attempt", worker)
    job = Job.objects.get(pk=job_id)
    # attempts counts every start, the lost one included (docs/worker.md).
    assert (job.attempts, job.lost_attempts, job.max_attempts) == (2, 1, 2)
    assert job.return_value == 2
    assert [error["exception_class_path"] for error in job.errors] == [
        "djtasks.exceptions.WorkerLost"
    ]
    assert tasks.std_slow_first_attempt.get_result(job_id).attempts == 2


def test_timeout_kills_the_attempt_and_retries_it(start_worker):
    job_id = tasks.overruns.enqueue().id  # timeout 1 s, 2 attempts
    sibling = tasks.ledger.enqueue("sibling", seconds=1.5).id
    worker = start_worker("--processes", "1", "--threads", "2")

    wait_for(lambda: status_of(job_id) == JobStatus.FAILED, 30, "timeouts", worker)
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 2
    assert [error["exception_class_path"] for error in job.errors] == [
        "djtasks.exceptions.JobTimeout",
        "djtasks.exceptions.JobTimeout",
    ]
    # The stack of the stopped attempt is kept: it was sleeping in the task.
    assert "time.sleep(seconds)" in job.errors[0]["traceback"]
    assert "timeout of 1 s" in job.errors[0]["traceback"]
    # Each timeout replaced the process.
    starts = Ledger.objects.filter(job_id=job_id, tag="start")
    assert len(set(starts.values_list("pid", flat=True))) == 2

    # The stopped attempts' hooks ran (in the process being replaced, right
    # after it wrote the outcome the wait above saw), with the result as the
    # signals see it: attempt 1 will be retried, attempt 2 failed.
    # ``attempt`` holds how many errors the result carried.
    def hook_rows():
        rows = list(Ledger.objects.filter(job_id=job_id).exclude(tag="start"))
        return rows if len(rows) >= 2 else None

    hooks = wait_for(hook_rows, 10, "hooks", worker)
    assert [(row.tag, row.attempt) for row in hooks] == [
        ("retry:READY", 1),
        ("failure:FAILED", 2),
    ]
    worker.wait_for_log("stopped by force", count=2)
    # A job interrupted with its process is handed back, its attempt uncounted.
    wait_for(lambda: status_of(sibling) == JobStatus.SUCCESSFUL, 20, "sibling", worker)
    assert Job.objects.get(pk=sibling).attempts == 1


def test_retries_wait_for_their_backoff(start_worker):
    job_id = tasks.fails_twice.enqueue().id  # backoff 1 s then 2 s, no jitter
    worker = start_worker("--processes", "1")

    wait_for(lambda: status_of(job_id) == JobStatus.SUCCESSFUL, 30, "success", worker)
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 3 and job.return_value == 3
    assert len(job.errors) == 2
    runs = list(Ledger.objects.filter(job_id=job_id).order_by("attempt"))
    assert [run.attempt for run in runs] == [1, 2, 3]
    first_wait = (runs[1].created_at - runs[0].created_at).total_seconds()
    second_wait = (runs[2].created_at - runs[1].created_at).total_seconds()
    assert first_wait >= 1.0
    assert second_wait >= 2.0


def test_deferred_job_starts_after_its_run_after(start_worker):
    from datetime import timedelta

    from django.utils import timezone

    result = tasks.ledger.using(run_after=timedelta(seconds=1)).enqueue("deferred")
    worker = start_worker("--processes", "1")

    wait_for(lambda: status_of(result.id) == JobStatus.SUCCESSFUL, 20, "deferred job", worker)
    job = Job.objects.get(pk=result.id)
    assert job.started_at >= job.run_after
    assert job.run_after <= timezone.now()


def test_a_task_holding_the_gil_past_its_timeout_is_killed_by_the_supervisor(start_worker):
    job_id = tasks.holds_the_gil.enqueue().id
    worker = start_worker("--processes", "1")

    wait_for(lambda: status_of(job_id) == JobStatus.FAILED, 30, "kill", worker)
    job = Job.objects.get(pk=job_id)
    assert job.errors[0]["exception_class_path"] == "djtasks.exceptions.WorkerLost"
    assert "past its timeout" in job.errors[0]["traceback"]
    assert "holding the GIL" in worker.log()
    # The replacement process works.
    after = tasks.ledger.enqueue("after").id
    wait_for(lambda: status_of(after) == JobStatus.SUCCESSFUL, 20, "next job", worker)
