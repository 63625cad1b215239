"""Jobs of a task the worker lacks (a rolling deploy): handed back, failed after the grace."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.models import Job, JobStatus, Worker
from djtasks.worker import heartbeat
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

NEW_TASK = "tests.tasks.only_in_the_next_deploy"


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
