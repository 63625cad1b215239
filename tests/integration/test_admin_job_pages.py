"""What a person reads on the job pages: the timeline after a retry, a failed
job's page, a pending stop, the dashboard's figures, the workers' counts,
and the marker that makes an unfinished page refresh itself."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.admin import dashboard
from djtasks.admin.job_columns import timeline_events
from djtasks.control import operations
from djtasks.models import Job, JobStatus, Worker
from djtasks.testing import run_jobs
from tests import tasks

pytestmark = pytest.mark.django_db

LIVE_MARKER = 'id="djtasks-live"'


def page_of(client, job):
    return client.get(reverse("admin:djtasks_job_change", args=[job.pk])).content.decode()


def labels(job):
    job.refresh_from_db()
    return [what.split(":")[0] for _, what in timeline_events(job)]


def test_the_timeline_of_a_retried_job_reads_in_order():
    result = tasks.failing.enqueue("first")
    run_jobs()
    job = Job.objects.get(pk=result.id)
    first_start = job.started_at
    operations.retry(Job.objects.filter(pk=job.pk))
    run_jobs()
    job.refresh_from_db()
    assert job.started_at == first_start  # the retry does not move the first start
    assert labels(job) == [
        "enqueued",
        "first attempt started",
        "attempt 1 failed",
        "retried from the admin (a fresh attempt budget)",
        "attempt 2 started",
        "attempt 2 failed",
        "finished",
    ]


def test_each_retried_attempt_shows_its_start():
    job = Job.objects.create(task_path="tests.tasks.always_failing", max_attempts=3)
    for _ in range(3):
        Job.objects.filter(pk=job.pk).update(available_at=timezone.now())
        run_jobs()
    events = labels(job)
    for attempt in (2, 3):
        assert (
            events.index(f"attempt {attempt} started")
            == events.index(f"attempt {attempt - 1} failed") + 1
        )
        assert events.index(f"attempt {attempt} failed") > events.index(
            f"attempt {attempt} started"
        )


def test_a_failed_job_page_shows_the_error_first_and_hides_empty_fields(admin_client):
    result = tasks.failing.enqueue("card declined")
    run_jobs()
    body = page_of(admin_client, Job.objects.get(pk=result.id))
    assert body.index("card declined") < body.index("field-task_path")
    for empty in (
        "field-about_column",
        "field-schedule",
        "field-unique_key",
        "field-limits_column",
    ):
        assert empty not in body
    traceback = body[body.index('<div class="djtasks-error">') :]
    traceback = traceback[: traceback.index("</pre>")]
    assert "djtasks/worker/executor.py" not in traceback
    assert "tests/tasks.py" in traceback
    # The row keeps every frame.
    stored = Job.objects.get(pk=result.id).errors[0]["traceback"]
    assert "djtasks/worker/executor.py" in stored


def test_a_running_job_with_a_cancel_request_says_a_stop_is_pending(admin_client):
    job = Job.objects.create(
        task_path="tests.tasks.sleeping",
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=timezone.now(),
        last_attempted_at=timezone.now(),
    )
    url = reverse("admin:djtasks_job_operate", args=[job.pk, "cancel"])
    response = admin_client.post(url, follow=True)
    body = response.content.decode()
    assert "1 running job was asked to stop: its worker stops it at its next check" in body
    assert "stop requested" in body


def test_unfinished_pages_carry_the_refresh_marker_finished_ones_not(admin_client):
    running = Job.objects.create(task_path="tests.tasks.noop", status=JobStatus.RUNNING)
    assert LIVE_MARKER in page_of(admin_client, running)
    changelist = reverse("admin:djtasks_job_changelist")
    assert LIVE_MARKER in admin_client.get(changelist).content.decode()
    assert LIVE_MARKER in admin_client.get(reverse("admin:djtasks_dashboard")).content.decode()
    Job.objects.filter(pk=running.pk).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now()
    )
    assert LIVE_MARKER not in page_of(admin_client, running)
    assert LIVE_MARKER not in admin_client.get(changelist).content.decode()
    assert LIVE_MARKER not in admin_client.get(reverse("admin:djtasks_dashboard")).content.decode()


def test_the_dashboard_shows_messages_cancellations_and_deferred_jobs(admin_client):
    now = timezone.now()
    Job.objects.create(
        task_path="tests.tasks.failing",
        status=JobStatus.FAILED,
        finished_at=now,
        errors=[
            {
                "exception_class_path": "builtins.ValueError",
                "traceback": "Traceback ...\nValueError: card declined\nmore\n",
            }
        ],
    )
    Job.objects.create(task_path="tests.tasks.noop", status=JobStatus.CANCELLED, finished_at=now)
    for _ in range(3):
        Job.objects.create(task_path="tests.tasks.noop", available_at=now + timedelta(hours=1))
    figures = dashboard.context()
    assert figures["chart"]["total_cancelled"] == 1
    assert "cancelled" in {bar.css for bar in figures["chart"]["bars"]}
    body = admin_client.get(reverse("admin:djtasks_dashboard")).content.decode()
    assert "builtins.ValueError</code>: card declined" in body
    assert "3 deferred in default" in body and "Nothing is due now." in body
    assert "Nothing is waiting." not in body


def test_the_admin_index_links_the_dashboard_once_per_page(admin_client):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert index.count("Jobs dashboard</a>") == 1
    assert "<caption>Background jobs</caption>" not in index
    app = admin_client.get(reverse("admin:app_list", args=["djtasks"])).content.decode()
    assert app.count("Jobs dashboard</a>") == 1


def test_workers_show_their_counts_and_heartbeat_to_the_second(admin_client):
    now = timezone.now().replace(microsecond=0)
    worker = Worker.objects.create(id="w-counts", hostname="h", pid=1, last_heartbeat_at=now)
    for status in (JobStatus.SUCCESSFUL, JobStatus.SUCCESSFUL, JobStatus.FAILED):
        Job.objects.create(
            task_path="tests.tasks.noop", status=status, worker=worker, finished_at=now
        )
    Job.objects.create(
        task_path="tests.tasks.noop",
        status=JobStatus.SUCCESSFUL,
        worker=worker,
        finished_at=now - timedelta(hours=2),
    )
    listing = admin_client.get(reverse("admin:djtasks_worker_changelist")).content.decode()
    assert "3 (1)" in listing
    assert "s ago</span>" in listing
    page = admin_client.get(reverse("admin:djtasks_worker_change", args=[worker.pk]))
    with timezone.override("UTC"):
        stamp = timezone.localtime(now).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert stamp in page.content.decode()


def test_the_example_site_recent_jobs_refresh_while_one_is_unfinished(client):
    job = Job.objects.create(task_path="example_project.demo.tasks.add", args=[1, 2])
    body = client.get("/").content.decode()
    assert LIVE_MARKER in body and 'data-region="#recent-jobs"' in body
    assert "djtasks/refresh.js" in body
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    assert LIVE_MARKER not in client.get("/").content.decode()
