"""Two TASKS aliases on one database: each serves only its own jobs.

tests.settings defines "second" beside "default", both djtasks backends on
the default database. Every row records the alias it was enqueued through,
and the claim (plain and limited), run_jobs() and the assert helpers read
only their alias's rows.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from djtasks.compat import task_backends
from djtasks.models import Job, JobStatus
from djtasks.testing import assert_enqueued, assert_not_enqueued, captured_jobs, run_jobs
from djtasks.worker import heartbeat, rescue
from djtasks.worker.claim import claim
from tests import tasks

pytestmark = pytest.mark.django_db

QUEUES = ["default", "emails"]


def status_of(result) -> str:
    return Job.objects.get(pk=result.id).status


def test_the_aliases_share_one_database():
    assert task_backends["second"].database == task_backends["default"].database


def test_run_jobs_of_the_second_backend_leaves_the_default_ones_ready():
    default_job = tasks.noop.enqueue()
    second_job = tasks.noop.using(backend="second").enqueue()

    ran = run_jobs(backend="second")

    assert [result.id for result in ran] == [second_job.id]
    assert status_of(second_job) == JobStatus.SUCCESSFUL
    assert status_of(default_job) == JobStatus.READY
    assert [result.id for result in run_jobs()] == [default_job.id]


def test_the_plain_claim_takes_only_its_backends_rows():
    default_job = tasks.noop.enqueue()
    second_job = tasks.noop.using(backend="second").enqueue()
    now = timezone.now()

    claimed_by_second = claim("second", "w-second", QUEUES, 10, now)
    claimed_by_default = claim("default", "w-default", QUEUES, 10, now)

    assert [str(job.id) for job in claimed_by_second] == [second_job.id]
    assert [str(job.id) for job in claimed_by_default] == [default_job.id]
    assert claimed_by_second[0].backend == "second"


@pytest.mark.parametrize("task_name", ["rate_limited", "per_customer"])
def test_the_limited_claim_takes_only_its_backends_rows(task_name):
    task = getattr(tasks, task_name)
    args = (1,) if task_name == "per_customer" else ()
    second_job = task.using(backend="second").enqueue(*args)
    now = timezone.now()

    assert claim("default", "w-default", QUEUES, 10, now) == []
    [claimed] = claim("second", "w-second", QUEUES, 10, now)

    assert str(claimed.id) == second_job.id


def test_a_rescued_job_goes_back_to_its_own_backend():
    # Attempts left, so the rescue makes it READY again.
    second_job = tasks.always_failing.using(backend="second").enqueue()
    heartbeat.register("default", "dead", backend="second", queues=QUEUES, concurrency=1)
    claim("second", "dead", QUEUES, 10, timezone.now())

    # Any worker on the database rescues the dead one's jobs (a rescue runs
    # nothing): the job is READY again, for "second" only.
    rescued = rescue.rescue_stale("default", stale_after=0, exclude="a-default-worker")

    assert rescued == 1
    job = Job.objects.get(pk=second_job.id)
    assert (job.status, job.backend) == (JobStatus.READY, "second")
    assert run_jobs(now=timezone.now() + timedelta(seconds=1)) == []
    assert status_of(second_job) == JobStatus.READY


def test_a_handed_back_job_keeps_its_backend():
    second_job = tasks.noop.using(backend="second").enqueue()
    claim("second", "w-second", QUEUES, 10, timezone.now())

    assert rescue.hand_back("default", "w-second") == 1

    job = Job.objects.get(pk=second_job.id)
    assert (job.status, job.backend, job.attempts) == (JobStatus.READY, "second", 0)
    assert run_jobs() == []
    assert [result.id for result in run_jobs(backend="second")] == [second_job.id]


def test_assert_enqueued_looks_at_the_tasks_own_backend():
    tasks.add.using(backend="second").enqueue(1, 2)

    assert_not_enqueued(tasks.add)
    assert_enqueued(tasks.add, [1, 2], backend="second")
    assert_enqueued(tasks.add.using(backend="second"), [1, 2])
    with pytest.raises(AssertionError, match="found 0"):
        assert_enqueued(tasks.add, [1, 2])


def test_captured_jobs_collects_one_backends_jobs():
    with captured_jobs() as default_jobs, captured_jobs(backend="second") as second_jobs:
        tasks.add.enqueue(1, 1)
        tasks.add.using(backend="second").enqueue(2, 2)

    assert [job.args for job in default_jobs] == [[1, 1]]
    assert [job.args for job in second_jobs] == [[2, 2]]
    assert [job.backend for job in second_jobs] == ["second"]
