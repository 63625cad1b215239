"""Progress reports: written to the job row, throttled, shown as a bar."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import djtasks
from djtasks import progress
from djtasks.models import Job, JobStatus
from tests.tasks import reports_progress

pytestmark = pytest.mark.django_db


def running_job(attempts=1):
    job = Job.objects.create(
        task_path="tests.tasks.reports_progress",
        status=JobStatus.RUNNING,
        attempts=attempts,
        worker_ids=["w"] * attempts,
    )
    # What a real TaskContext carries (see the test below for the real one).
    result = SimpleNamespace(id=str(job.pk), backend="default", worker_ids=["w"] * attempts)
    return job, SimpleNamespace(task_result=result)


def test_a_report_from_an_earlier_attempt_changes_nothing():
    job, context = running_job(attempts=1)
    # The job was rescued and claimed again: its second attempt runs now.
    Job.objects.filter(pk=job.pk).update(attempts=2)
    djtasks.set_progress(context, 3, total=10, force=True)
    job.refresh_from_db()
    assert job.progress is None


def test_a_report_from_a_lost_claim_made_again_changes_nothing():
    # A claim lost with a crash of PostgreSQL and made again by the same
    # worker counts the same attempt, at a later time (djtasks.worker.claim).
    claimed_at = timezone.now()
    job, context = running_job(attempts=1)
    Job.objects.filter(pk=job.pk).update(last_attempted_at=claimed_at)
    context.task_result.last_attempted_at = claimed_at
    assert djtasks.set_progress(context, 1, total=10, force=True)
    assert Job.objects.get(pk=job.pk).progress["current"] == 1

    Job.objects.filter(pk=job.pk).update(last_attempted_at=claimed_at + timedelta(seconds=3))
    djtasks.set_progress(context, 2, total=10, force=True)
    assert Job.objects.get(pk=job.pk).progress["current"] == 1


def test_a_task_reports_progress_through_its_context(run_jobs):
    result = reports_progress.enqueue(5)
    [outcome] = run_jobs()
    assert outcome.status == "SUCCESSFUL"
    job = Job.objects.get(pk=result.id)
    assert job.progress == {"current": 5, "total": 5, "message": "done"}


def test_set_progress_writes_one_small_update():
    job, context = running_job()
    with CaptureQueriesContext(connection) as queries:
        assert djtasks.set_progress(context, 3, total=10, message="resizing") is True
    assert len(queries) == 1
    assert queries[0]["sql"].upper().startswith("UPDATE")
    job.refresh_from_db()
    assert job.progress == {"current": 3, "total": 10, "message": "resizing"}


def test_a_tight_loop_is_throttled(monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL", 3600)
    job, context = running_job()
    with CaptureQueriesContext(connection) as queries:
        written = [djtasks.set_progress(context, i, total=1000) for i in range(1000)]
        # Reaching the total is always written.
        written.append(djtasks.set_progress(context, 1000, total=1000))
    assert written.count(True) == 2
    assert len(queries) == 2
    job.refresh_from_db()
    assert job.progress["current"] == 1000


def test_force_writes_despite_the_throttle(monkeypatch):
    monkeypatch.setattr(progress, "MIN_INTERVAL", 3600)
    job, context = running_job()
    djtasks.set_progress(context, 1)
    assert djtasks.set_progress(context, 2, force=True) is True
    job.refresh_from_db()
    assert job.progress == {"current": 2, "total": None, "message": ""}


def test_a_finished_job_is_not_touched():
    job, context = running_job()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCESSFUL, progress=None)
    djtasks.set_progress(context, 1, total=2, force=True)
    job.refresh_from_db()
    assert job.progress is None


@pytest.mark.parametrize(
    ("current", "total"), [(-1, None), ("3", None), (1, 0), (1, -5), (True, None)]
)
def test_bad_values_are_rejected(current, total):
    _, context = running_job()
    with pytest.raises(ValueError):
        djtasks.set_progress(context, current, total=total)


def test_long_messages_are_cut():
    assert len(progress.progress_value(1, 2, "x" * 1000)["message"]) == progress.MAX_MESSAGE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"current": 1, "total": 4}, 25.0),
        ({"current": 9, "total": 4}, 100.0),
        ({"current": 3, "total": None}, None),
        (None, None),
        ("junk", None),
    ],
)
def test_percent(value, expected):
    assert progress.percent(value) == expected


def test_admin_list_shows_the_bar(admin_client):
    job, context = running_job()
    djtasks.set_progress(context, 1, total=2, message="half", force=True)
    body = admin_client.get(reverse("admin:djtasks_job_changelist")).content.decode()
    assert 'class="djtasks-progress djtasks-progress-compact"' in body
    assert 'style="width: 50.0%"' in body
    assert 'title="half"' in body  # the message, on hover
