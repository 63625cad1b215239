"""Cancellation of ready and running jobs, through the database."""

from datetime import timedelta

import pytest

import djtasks
from djtasks.control import CancelResult
from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def status_of(job_id):
    return Job.objects.get(pk=job_id).status


def started(job_id):
    return Ledger.objects.filter(job_id=job_id).first()


def test_a_cancelled_ready_job_never_runs(start_worker):
    cancelled = tasks.ledger.using(run_after=timedelta(seconds=1)).enqueue("never")
    kept = tasks.ledger.using(run_after=timedelta(seconds=1)).enqueue("kept")

    assert djtasks.cancel(cancelled) == CancelResult.CANCELLED
    worker = start_worker("--processes", "1")

    wait_for(lambda: status_of(kept.id) == JobStatus.SUCCESSFUL, 20, "kept job", worker)
    assert status_of(cancelled.id) == JobStatus.CANCELLED
    assert not Ledger.objects.filter(job_id=cancelled.id).exists()


def test_a_running_job_that_checks_stops_cooperatively(start_worker):
    job_id = tasks.cooperative_cancel.enqueue().id
    worker = start_worker("--processes", "1")
    first = wait_for(lambda: started(job_id), 20, "start", worker)

    assert djtasks.cancel(job_id) == CancelResult.REQUESTED

    wait_for(lambda: status_of(job_id) == JobStatus.CANCELLED, 20, "cancel", worker)
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1 and job.finished_at is not None
    assert Ledger.objects.filter(job_id=job_id).count() == 1
    # It stopped by itself: the process was not replaced.
    assert "stopped by force" not in worker.log()
    assert djtasks.cancel(job_id) == CancelResult.FINISHED
    # The same process goes on with other work.
    after = tasks.ledger.enqueue("after").id
    wait_for(lambda: status_of(after) == JobStatus.SUCCESSFUL, 20, "next job", worker)
    assert started(after).pid == first.pid


def test_a_running_job_that_ignores_the_cancel_is_stopped_by_force(start_worker):
    job_id = tasks.ignores_cancel.enqueue().id
    worker = start_worker("--processes", "1")
    wait_for(lambda: started(job_id), 20, "start", worker)

    djtasks.cancel(job_id)

    # CANCEL_GRACE is 1 s in the acceptance settings.
    wait_for(lambda: status_of(job_id) == JobStatus.CANCELLED, 20, "forced cancel", worker)
    worker.wait_for_log("stopped by force")
    # Never retried, though it had attempts left.
    assert Ledger.objects.filter(job_id=job_id).count() == 1
    assert Job.objects.get(pk=job_id).attempts == 1


def test_cancel_of_an_unknown_job():
    assert djtasks.cancel("00000000-0000-0000-0000-000000000000") == CancelResult.NOT_FOUND
    assert djtasks.cancel("not a uuid") == CancelResult.NOT_FOUND
