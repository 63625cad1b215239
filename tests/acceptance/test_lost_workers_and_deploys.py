"""Issue 15 with real runworker processes: lost workers, poison jobs, rolling deploys."""

import os
import textwrap

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import ROOT, wait_for
from tests.models import Ledger
from tests.reliability import procs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

NEW_TASK = "new_deploy_app.tasks.arrives"


def status_of(job_id):
    return Job.objects.get(pk=job_id).status


def runs_of(job_id):
    return list(Ledger.objects.filter(job_id=job_id).order_by("id"))


# --- lost workers ---------------------------------------------------------------


def test_a_standard_task_whose_runworker_is_killed_completes_on_the_next_one(start_worker):
    job_id = tasks.std_slow_first_attempt.enqueue().id  # max_attempts 1
    doomed = start_worker("--processes", "1")
    first = wait_for(lambda: runs_of(job_id), 30, "first attempt", doomed)[0]

    doomed.kill_group()  # supervisor and child: nobody releases the job
    successor = start_worker("--processes", "1")

    # Rescued once the dead worker's heartbeat is STALE_AFTER (2 s) old.
    wait_for(lambda: status_of(job_id) == JobStatus.SUCCESSFUL, 60, "rescue", successor)
    job = Job.objects.get(pk=job_id)
    assert (job.attempts, job.lost_attempts) == (2, 1)
    assert "sent no heartbeat" in job.errors[0]["traceback"]
    second = runs_of(job_id)[1]
    assert second.pid != first.pid and second.pid in procs.children(successor.pid)


def test_a_job_that_kills_every_worker_fails_after_max_lost_attempts(start_worker):
    job_id = tasks.kills_its_worker.enqueue().id
    worker = start_worker("--processes", "1")

    # The supervisor spaces out restarts of a child that dies at once.
    wait_for(lambda: status_of(job_id) == JobStatus.FAILED, 120, "the poison verdict", worker)
    job = Job.objects.get(pk=job_id)
    assert (job.attempts, job.lost_attempts) == (3, 3)  # MAX_LOST_ATTEMPTS' default
    assert [error["exception_class_path"] for error in job.errors] == [
        "djtasks.exceptions.WorkerLost"
    ] * 3
    assert "taken its worker down 3 times" in job.errors[-1]["traceback"]
    # It never loops: no further run, and the worker is up for other jobs.
    after = tasks.ledger.enqueue("after").id
    wait_for(lambda: status_of(after) == JobStatus.SUCCESSFUL, 60, "next job", worker)
    assert len(runs_of(job_id)) == 3


# --- rolling deploys ------------------------------------------------------------


@pytest.fixture
def deploys(tmp_path, fast_settings_dir):
    """make(grace): environments of an old deploy (without NEW_TASK) and a new one (with it)."""
    return lambda grace: write_deploys(tmp_path / "deploys", fast_settings_dir, grace)


def write_deploys(directory, fast_settings_dir, grace):
    app = directory / "new_deploy_app"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text(
        textwrap.dedent(
            """
            import os

            import djtasks
            from tests.models import Ledger


            @djtasks.task(takes_context=True)
            def arrives(context):
                Ledger.objects.create(
                    job_id=context.task_result.id, tag="new", attempt=context.attempt,
                    pid=os.getpid(),
                )
                return "ran on the new deploy"
            """
        )
    )
    grace = f'{{**DJTASKS, "UNKNOWN_TASK_GRACE": {grace}}}'
    (directory / "old_deploy.py").write_text(
        f"from worker_acceptance_settings import *  # noqa: F403\nDJTASKS = {grace}\n"
    )
    (directory / "new_deploy.py").write_text(
        "from worker_acceptance_settings import *  # noqa: F403\n"
        f"DJTASKS = {grace}\n"
        'INSTALLED_APPS = [*INSTALLED_APPS, "new_deploy_app"]\n'
    )
    path = os.pathsep.join([str(directory), str(fast_settings_dir), str(ROOT)])
    return {
        name: {"DJANGO_SETTINGS_MODULE": f"{name}_deploy", "PYTHONPATH": path}
        for name in ("old", "new")
    }


def enqueue_new_task():
    """What a web server of the new deploy writes when it enqueues NEW_TASK."""
    return Job.objects.create(task_path=NEW_TASK).pk


def test_a_task_of_the_new_deploy_waits_for_a_worker_that_has_it(start_worker, deploys):
    environments = deploys(grace=600)
    job_id = enqueue_new_task()
    # A job of a task every worker has is not held up by it.
    plain = tasks.ledger.enqueue("plain").id
    old = start_worker("--processes", "1", **environments["old"])

    # The old worker claims it and hands it back (twice: 5 s apart), uncounted.
    old.wait_for_log(f"task={NEW_TASK} queue=default: task not known", timeout=30, count=2)
    wait_for(lambda: status_of(plain) == JobStatus.SUCCESSFUL, 30, "plain job", old)
    job = Job.objects.get(pk=job_id)
    # READY, or RUNNING for the instant between a claim and its hand-back.
    assert job.status in (JobStatus.READY, JobStatus.RUNNING)
    assert job.errors == [] and job.attempts <= 1

    new = start_worker("--processes", "1", **environments["new"])

    wait_for(lambda: status_of(job_id) == JobStatus.SUCCESSFUL, 60, "the new worker", [old, new])
    job = Job.objects.get(pk=job_id)
    assert job.return_value == "ran on the new deploy"
    # Hand-backs are not attempts: one attempt, no error.
    assert job.attempts == 1 and job.errors == []
    [run] = runs_of(job_id)
    assert run.pid in procs.children(new.pid)


def test_a_task_no_worker_has_fails_after_the_grace(start_worker, deploys):
    job_id = enqueue_new_task()
    enqueued = timezone.now()
    old = start_worker("--processes", "1", **deploys(grace=3)["old"])

    wait_for(lambda: status_of(job_id) == JobStatus.FAILED, 60, "the grace to pass", old)
    job = Job.objects.get(pk=job_id)
    [error] = job.errors
    assert error["exception_class_path"] == "djtasks.exceptions.UnknownTask"
    assert "UNKNOWN_TASK_GRACE (3 s)" in error["traceback"]
    assert (parse_datetime(error["failed_at"]) - enqueued).total_seconds() >= 3
    assert job.attempts == 1 and not runs_of(job_id)
