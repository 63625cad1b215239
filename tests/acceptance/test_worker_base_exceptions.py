"""runworker and a task raising KeyboardInterrupt, SystemExit or another BaseException.

In a claim thread only task code can raise them (signals reach the main
thread), so each fails its attempt like any exception: FAILED with that
error, or retried while attempts remain. The claim thread goes on with the
jobs behind it, on one thread and on two, and the process is never replaced.
"""

import signal

import pytest

from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

KINDS = {
    "KeyboardInterrupt": "builtins.KeyboardInterrupt",
    "SystemExit": "builtins.SystemExit",
    "TaskAbort": "tests.tasks.TaskAbort",
}


def finished(ids) -> bool:
    return not Job.objects.filter(pk__in=ids, finished_at__isnull=True).exists()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_base_exceptions_fail_their_job_and_the_worker_goes_on(start_worker, threads):
    bad = {kind: tasks.raises_base_exception.enqueue(kind).id for kind in KINDS}
    retried = tasks.raises_base_exception_twice.enqueue("KeyboardInterrupt").id
    good = [tasks.ledger.enqueue(f"after-{index}").id for index in range(10)]
    everything = [*bad.values(), retried, *good]

    worker = start_worker("--processes", "1", "--threads", threads)
    wait_for(lambda: finished(everything), 60, "every job finished", worker)

    for kind, job_id in bad.items():
        job = Job.objects.get(pk=job_id)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1), job
        [error] = job.errors
        assert error["exception_class_path"] == KINDS[kind]
        assert "raised by the task" in error["traceback"]
    job = Job.objects.get(pk=retried)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert [error["exception_class_path"] for error in job.errors] == [
        "builtins.KeyboardInterrupt"
    ] * 2
    assert set(Job.objects.filter(pk__in=good).values_list("status", flat=True)) == {
        JobStatus.SUCCESSFUL
    }
    # No thread died: nothing left RUNNING, and the one process was never
    # replaced or restarted.
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    log = worker.log()
    assert "restarting worker process" not in log, log
    assert "claim thread failed" not in log, log
    assert log.count(" started: pid=") == 1, log
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
