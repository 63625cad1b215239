"""Jobs of a task the worker lacks (a rolling deploy): handed back, failed after the grace."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.models import Job, JobStatus, Worker
from djtasks.worker import heartbeat, unknown_tasks
from djtasks.worker.claim import claim
from djtasks.worker.claim_limited import LimitedGate
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

NEW_TASK = "tests.tasks.only_in_the_next_deploy"
QUEUES = ["default"]


def job_of_a_new_task():
    return Job.objects.create(task_path=NEW_TASK, args=[1])


def test_a_worker_lists_the_tasks_it_has(burst_worker):
    worker = burst_worker()

    row = Worker.objects.get(pk=worker.worker_id)
    assert "tests.tasks.add" in row.tasks and row.tasks == sorted(row.tasks)
    assert row.task_digest == heartbeat.task_digest(row.tasks)


def test_a_job_of_a_task_the_worker_lacks_is_handed_back_uncounted_and_delayed(burst_worker):
    job = job_of_a_new_task()
    fine = tasks.add.enqueue(1, 2).id
    before = timezone.now()

    burst_worker()

    job.refresh_from_db()
    assert job.status == JobStatus.READY
    assert (job.attempts, job.worker_ids, job.errors, job.started_at) == (0, [], [], None)
    # Not claimable again at once, so workers without the task do not spin on it.
    assert job.available_at >= before + timedelta(seconds=4)
    assert Job.objects.get(pk=fine).status == JobStatus.SUCCESSFUL


def test_the_job_fails_once_no_live_worker_had_its_task_for_the_grace(burst_worker, settings):
    settings.DJTASKS = {"UNKNOWN_TASK_GRACE": 0}
    job = job_of_a_new_task()

    burst_worker()

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempts == 1
    [error] = job.errors
    assert error["exception_class_path"] == "djtasks.exceptions.UnknownTask"
    assert (
        f"{NEW_TASK!r} is not a registered task of any live worker of its queue"
        in error["traceback"]
    )


def test_a_live_worker_with_the_task_keeps_the_job_waiting_for_it(burst_worker, settings):
    settings.DJTASKS = {"UNKNOWN_TASK_GRACE": 0}
    heartbeat.register(
        "default", "w-new", backend="default", queues=["default"], concurrency=1, tasks=[NEW_TASK]
    )
    job = job_of_a_new_task()

    burst_worker()

    job.refresh_from_db()
    assert job.status == JobStatus.READY and job.errors == []


def test_a_stopped_worker_that_had_the_task_extends_the_grace(burst_worker, settings):
    settings.DJTASKS = {"UNKNOWN_TASK_GRACE": 60}
    heartbeat.register(
        "default", "w-old", backend="default", queues=["default"], concurrency=1, tasks=[NEW_TASK]
    )
    heartbeat.unregister("default", "w-old")
    job = job_of_a_new_task()
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(hours=1))

    burst_worker()

    assert Job.objects.get(pk=job.pk).status == JobStatus.READY


def test_the_worker_page_lists_its_tasks(admin_client):
    heartbeat.register(
        "default", "w-1", backend="default", queues=["default"], concurrency=1, tasks=[NEW_TASK]
    )
    heartbeat.register("default", "w-legacy", backend="default", queues=["default"], concurrency=1)

    page = admin_client.get(reverse("admin:djtasks_worker_change", args=["w-1"])).content.decode()
    legacy = admin_client.get(reverse("admin:djtasks_worker_change", args=["w-legacy"]))
    listing = admin_client.get(reverse("admin:djtasks_worker_changelist")).content.decode()

    assert f"<li>{NEW_TASK}</li>" in page
    assert "Not reported" in legacy.content.decode()
    assert "1 (" in listing


def test_a_waiting_job_page_says_why_it_waits(admin_client):
    heartbeat.register(
        "default", "w-old", backend="default", queues=["default"], concurrency=1, tasks=["x.y"]
    )
    job = job_of_a_new_task()
    deferred = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 2)
    other_queue = tasks.on_other_queue.enqueue()

    def why(pk):
        url = reverse("admin:djtasks_job_change", args=[pk])
        return admin_client.get(url).content.decode()

    assert "Left for a worker with its task" in why(job.pk)
    assert "fails at" in why(job.pk)
    assert "its run_after" in why(deferred.id)
    assert "No live worker takes queue &#x27;other&#x27;" in why(other_queue.id)
    Worker.objects.all().delete()
    assert "No worker is running" in why(job.pk)


# --- a task a live worker has: left to it, not taken again and again ---


def new_task_job(**fields):
    """A job of a task this test process does not have (as from a newer deploy)."""
    return Job.objects.create(task_path=NEW_TASK, **fields)


def register(worker_id, task_paths):
    heartbeat.register(
        "default", worker_id, backend="default", queues=QUEUES, concurrency=1, tasks=task_paths
    )


def test_a_claim_leaves_the_skipped_tasks_jobs_ready_and_claims_the_others():
    skipped = new_task_job()
    plain = tasks.noop.enqueue()
    # Under a limit (claimed by the limited claim): skipped there too.
    skipped_limited = new_task_job(rate_limit="5/s", limited=True)
    limited = tasks.rate_limited.enqueue()
    now = timezone.now() + timedelta(seconds=1)

    claimed = claim(
        "default", "w", QUEUES, 10, now, LimitedGate(0), skip_tasks=frozenset({NEW_TASK})
    )

    assert {str(job.id) for job in claimed} == {plain.id, limited.id}
    for job in (skipped, skipped_limited):
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.READY, 0)
    # Without the skip another worker claims them.
    again = claim("default", "w2", QUEUES, 10, now, LimitedGate(0))
    assert {job.id for job in again} == {skipped.pk, skipped_limited.pk}


def test_a_job_a_live_worker_can_run_is_handed_back_at_once_and_left_to_it():
    register("new-deploy", sorted([NEW_TASK, "tests.tasks.noop"]))
    job = new_task_job()
    [claimed] = claim("default", "old", QUEUES, 10, timezone.now())
    left = unknown_tasks.LeftToOthers()

    failed = unknown_tasks.settle("default", "old", [claimed], "old-digest", left)

    assert failed == []
    job.refresh_from_db()
    assert job.status == JobStatus.READY
    assert job.available_at <= timezone.now()  # claimable by the new worker now
    assert job.errors == [] and job.attempts == 0
    assert left.current() == {NEW_TASK}
    # So the old worker's next claims pass it over, and the new one gets it.
    assert claim("default", "old", QUEUES, 10, timezone.now(), skip_tasks=left.current()) == []
    [taken] = claim("default", "new-deploy", QUEUES, 10, timezone.now())
    assert taken.id == job.pk


def test_a_job_no_live_worker_can_run_waits_and_is_not_left_to_anyone():
    job = new_task_job()
    [claimed] = claim("default", "old", QUEUES, 10, timezone.now())
    left = unknown_tasks.LeftToOthers()
    before = timezone.now()

    failed = unknown_tasks.settle("default", "old", [claimed], "old-digest", left)

    assert failed == []
    job.refresh_from_db()
    assert job.status == JobStatus.READY
    delay = (job.available_at - before).total_seconds()
    assert unknown_tasks.HAND_BACK_DELAY - 1 <= delay <= unknown_tasks.HAND_BACK_DELAY + 1
    # Nobody has it: this worker claims it again later (to fail it after the grace).
    assert left.current() == frozenset()


def test_a_left_task_is_claimed_again_once_a_dead_worker_would_be_noticed(monkeypatch, settings):
    settings.DJTASKS = {"STALE_AFTER": 30}
    clock = [1000.0]
    monkeypatch.setattr(unknown_tasks.time, "monotonic", lambda: clock[0])
    left = unknown_tasks.LeftToOthers()

    left.leave([NEW_TASK])
    clock[0] += 29
    still = left.current()
    clock[0] += 2
    after = left.current()

    assert still == {NEW_TASK}
    assert after == frozenset()
