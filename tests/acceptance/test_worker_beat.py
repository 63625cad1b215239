"""runworker --beat: the worker supervisor also runs the beat, and both stop together."""

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from djtasks.models import Job, JobStatus, Schedule
from tests.acceptance.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_runworker_beat_enqueues_and_runs_scheduled_jobs(start_worker):
    schedule = Schedule.objects.create(
        name="every-second-in-the-worker",
        task_path="tests.tasks.add",
        args=[20, 22],
        interval=timedelta(seconds=1),
        next_run_at=timezone.now(),
    )
    worker = start_worker("--beat", "--processes", "1")

    done = Job.objects.filter(schedule=schedule, status=JobStatus.SUCCESSFUL)
    wait_for(lambda: done.count() >= 3, 30, "three scheduled runs done", worker)
    assert {job.return_value for job in done} == {42}
    times = sorted(Job.objects.filter(schedule=schedule).values_list("scheduled_at", flat=True))
    assert len(set(times)) == len(times), "a run was enqueued twice"

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert "beat" in worker.log() and "stopped" in worker.log()


def test_runworker_refuses_beat_with_burst(start_worker):
    worker = start_worker("--beat", "--burst")
    assert worker.wait() != 0
    assert "cannot go with --burst" in worker.log()
