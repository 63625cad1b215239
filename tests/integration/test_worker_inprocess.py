"""WorkerProcess run in this process (burst mode): the claim threads' rules."""

import dataclasses
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from djtasks.compat import signals
from djtasks.models import Job, JobStatus, Worker
from djtasks.worker import watchdog
from djtasks.worker.claim import claim
from djtasks.worker.process import EXIT_RECYCLE, EXIT_STOPPED, WorkerProcess
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_worker():
    """Run a WorkerProcess in burst mode here; restore pytest's signal handlers."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def run(worker=None, **options):
        worker = worker or WorkerProcess(burst=True, poll_interval=0.01, **options)
        return worker, worker.run()

    yield run
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_burst_runs_every_due_job_and_unregisters(run_worker):
    ids = [tasks.add.enqueue(index, 1).id for index in range(30)]

    worker, code = run_worker(threads=2)

    assert code == EXIT_STOPPED
    assert worker.processed == 30
    assert set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        JobStatus.SUCCESSFUL
    }
    assert Worker.objects.get(pk=worker.worker_id).stopped_at is not None


@pytest.mark.parametrize("kind", ["KeyboardInterrupt", "SystemExit", "TaskAbort"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_base_exception_from_a_task_fails_its_attempt_not_the_thread(run_worker, kind, threads):
    bad = tasks.raises_base_exception.enqueue(kind).id
    after = [tasks.add.enqueue(index, 1).id for index in range(5)]

    worker, code = run_worker(threads=threads)

    assert code == EXIT_STOPPED
    job = Job.objects.get(pk=bad)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.errors[0]["exception_class_path"].endswith(kind)
    assert set(Job.objects.filter(pk__in=after).values_list("status", flat=True)) == {
        JobStatus.SUCCESSFUL
    }
    assert worker.processed == 6


def test_a_base_exception_with_attempts_left_is_retried(run_worker):
    job_id = tasks.raises_base_exception_twice.enqueue("KeyboardInterrupt").id

    run_worker()

    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts) == (JobStatus.READY, 1)
    assert job.available_at > job.last_attempted_at


def test_a_receiver_raising_a_base_exception_fails_the_job_not_the_thread(run_worker):
    def interrupting_receiver(sender, task_result, **kwargs):
        if task_result.task.func is tasks.failing.func:
            raise KeyboardInterrupt

    signals.task_started.connect(interrupting_receiver, weak=False)
    try:
        broken = tasks.failing.enqueue().id
        fine = tasks.noop.enqueue().id
        run_worker()
    finally:
        signals.task_started.disconnect(interrupting_receiver)

    assert Job.objects.get(pk=broken).status == JobStatus.FAILED
    assert Job.objects.get(pk=fine).status == JobStatus.SUCCESSFUL


def test_a_receiver_that_raises_fails_the_job_not_the_worker(run_worker):
    def broken_receiver(sender, task_result, **kwargs):
        if task_result.task.func is tasks.failing.func:
            raise RuntimeError("receiver bug")

    signals.task_started.connect(broken_receiver, weak=False)
    try:
        broken = tasks.failing.enqueue().id
        fine = tasks.noop.enqueue().id
        _, code = run_worker()
    finally:
        signals.task_started.disconnect(broken_receiver)

    assert code == EXIT_STOPPED
    job = Job.objects.get(pk=broken)
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["exception_class_path"] == "builtins.RuntimeError"
    assert "receiver bug" in job.errors[0]["traceback"]
    assert Job.objects.get(pk=fine).status == JobStatus.SUCCESSFUL


def test_a_claimed_job_cancelled_before_it_starts_never_runs(run_worker):
    job_id = tasks.ledger.enqueue("never").id
    worker = WorkerProcess(burst=True, poll_interval=0.01)
    worker.cancel_watch.requested = {uuid.UUID(job_id): time.time()}

    run_worker(worker)

    from tests.models import Ledger

    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED
    assert not Ledger.objects.filter(job_id=job_id).exists()


def test_a_task_raising_cancelled_ends_cancelled_not_retried(run_worker):
    job_id = tasks.raises_cancelled.enqueue().id

    run_worker()

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELLED and job.attempts == 1


def test_max_tasks_stops_the_process_for_recycling(run_worker):
    ids = [tasks.noop.enqueue().id for _ in range(5)]

    worker, code = run_worker(max_tasks=3)

    assert code == EXIT_RECYCLE
    assert worker.processed == 3
    statuses = list(Job.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses.count(JobStatus.SUCCESSFUL) == 3
    assert statuses.count(JobStatus.READY) == 2


def test_an_outcome_the_database_refuses_fails_that_job_only(run_worker):
    from django.db import connection

    refused = tasks.returns_nul.enqueue().id
    fine = tasks.add.enqueue(2, 2).id

    _, code = run_worker()

    assert code == EXIT_STOPPED
    assert Job.objects.get(pk=fine).status == JobStatus.SUCCESSFUL
    job = Job.objects.get(pk=refused)
    if connection.vendor == "postgresql":  # jsonb has no NUL character
        assert job.status == JobStatus.FAILED
        assert "refused to store the outcome (SUCCESSFUL)" in job.errors[0]["traceback"]
    else:
        assert job.status == JobStatus.SUCCESSFUL and job.return_value == "a\x00b"


def test_each_job_logs_one_start_and_one_finish_line(run_worker, caplog):
    good = tasks.add.enqueue(1, 2).id
    bad = tasks.failing.enqueue().id

    with caplog.at_level("INFO", logger="djtasks"):
        run_worker()

    lines = [record.getMessage() for record in caplog.records if record.name == "djtasks"]
    for job_id, outcome in ((good, "SUCCESSFUL"), (bad, "FAILED")):
        mine = [line for line in lines if line.startswith(f"job {job_id} ")]
        # id, task, queue and attempt on both lines; outcome and duration at the end.
        assert len(mine) == 2, mine
        assert mine[0].endswith("queue=default attempt=1/1 started")
        assert f"queue=default attempt=1/1 outcome={outcome} duration=" in mine[1]
        assert "task=tests.tasks." in mine[0] and "task=tests.tasks." in mine[1]


def stop_over_timeout(job_id, now):
    """Claim ``job_id`` and stop its attempt as the watchdog does on a timeout."""
    worker = WorkerProcess(burst=True)
    [job] = claim("default", worker.worker_id, ["default"], 1, now)
    assert str(job.id) == job_id
    slot = watchdog.Slot()
    job = dataclasses.replace(job, timeout=1.0)
    slot.current = (job, time.monotonic() - 2)
    worker._end_by_force(watchdog.Verdict(slot, job, "timeout"))
    return worker


def test_an_attempt_stopped_over_its_timeout_sends_task_finished_and_runs_its_hook():
    finished = []

    def receiver(sender, task_result, **kwargs):
        finished.append((sender, task_result.id, str(task_result.status), len(task_result.errors)))

    tasks.HOOK_CALLS.clear()
    job_id = tasks.with_hooks.enqueue().id  # 2 attempts, backoff 1 s
    signals.task_finished.connect(receiver, weak=False)
    try:
        worker = stop_over_timeout(job_id, timezone.now())
        assert Job.objects.get(pk=job_id).status == JobStatus.READY
        stop_over_timeout(job_id, timezone.now() + timedelta(seconds=5))
    finally:
        signals.task_finished.disconnect(receiver)

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    backend = type(worker.backend)
    assert finished == [
        (backend, str(job_id), "READY", 1),
        (backend, str(job_id), "FAILED", 2),
    ]
    hooks = list(tasks.HOOK_CALLS)
    assert hooks == [("retry", str(job_id), "READY"), ("failure", str(job_id), "FAILED")]


def test_a_receiver_failing_for_a_stopped_attempt_does_not_lose_its_outcome(caplog):
    def broken_receiver(sender, task_result, **kwargs):
        raise RuntimeError("receiver bug")

    job_id = tasks.noop.enqueue().id  # one attempt
    signals.task_finished.connect(broken_receiver, weak=False)
    try:
        stop_over_timeout(job_id, timezone.now())
    finally:
        signals.task_finished.disconnect(broken_receiver)

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["exception_class_path"] == "djtasks.exceptions.JobTimeout"
    assert "a task_finished receiver failed for job" in caplog.text
