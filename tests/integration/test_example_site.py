"""The example site: demo buttons, the job page and its JSON view."""

import logging
import uuid
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.errors import error_entry
from djtasks.models import Job, JobStatus
from djtasks.worker.executor import JOB_FORMAT
from example_project.demo.logs import JOB_STARTED, OutcomesOnly
from example_project.demo.models import Report
from example_project.demo.views import DEMOS, LATER, error_message

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


def test_index_offers_every_demo(client):
    body = client.get(reverse("index")).content.decode()
    for name in ("add", "slow", "flaky", "fail", "later", "report", "chord"):
        assert f'id="enqueue-{name}"' in body
    assert reverse("admin:index") in body


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("add", "example_project.demo.tasks.add"),
        ("slow", "example_project.demo.tasks.slow_count"),
        ("flaky", "example_project.demo.tasks.flaky"),
        ("fail", "example_project.demo.tasks.fail_for_good"),
        ("later", "example_project.demo.tasks.add"),
        ("report", "example_project.demo.tasks.build_report"),
    ],
)
def test_each_demo_enqueues_its_job_and_shows_it(client, name, task):
    response = client.post(reverse("enqueue-demo", args=[name]))
    job = Job.objects.get()
    assert job.task_path == task
    assert response["Location"] == reverse("job-detail", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert reverse("job-json", args=[job.pk]) in page
    assert reverse("admin:djtasks_job_change", args=[job.pk]) in page
    assert 'id="progress-fill"' in page


def test_chord_demo_shows_the_waiting_callback(client):
    response = client.post(reverse("enqueue-demo", args=["chord"]))
    callback = Job.objects.get(task_path="example_project.demo.tasks.total")
    assert response["Location"] == reverse("job-detail", args=[callback.pk])
    assert callback.status == "WAITING"
    assert Job.objects.filter(workflow_id=callback.workflow_id).count() == 6


def test_later_demo_is_deferred():
    before = timezone.now()
    DEMOS["later"][1]()
    job = Job.objects.get()
    assert job.available_at >= before + LATER


def test_report_demo_binds_the_job_to_the_report():
    DEMOS["report"][1]()
    job = Job.objects.get()
    assert job.about == Report.objects.get()


def test_demos_only_accept_post_and_known_names(client):
    assert client.get(reverse("enqueue-demo", args=["add"])).status_code == 405
    assert client.post(reverse("enqueue-demo", args=["rm-rf"])).status_code == 404
    assert not Job.objects.exists()


def test_json_view_reports_status_progress_and_result(client):
    job = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        status=JobStatus.RUNNING,
        attempts=1,
        max_attempts=1,
        progress={"current": 5, "total": 20, "message": "step 6 of 20"},
    )
    data = client.get(reverse("job-json", args=[job.pk])).json()
    assert data["status"] == "RUNNING"
    assert data["progress"] == {"current": 5, "total": 20, "message": "step 6 of 20"}
    assert data["percent"] == 25.0
    assert data["finished"] is False
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED,
        errors=[{"exception_class_path": "builtins.RuntimeError", "traceback": "..."}],
        return_value=None,
    )
    data = client.get(reverse("job-json", args=[job.pk])).json()
    assert data["finished"] is True
    assert data["errors"] == ["builtins.RuntimeError"]


def test_json_view_without_progress(client):
    job = Job.objects.create(task_path="example_project.demo.tasks.add", return_value=3)
    data = client.get(reverse("job-json", args=[job.pk])).json()
    assert data["progress"] is None and data["percent"] is None
    assert data["return_value"] == 3


def test_unknown_jobs_are_404(client):
    assert client.get(reverse("job-json", args=[uuid.uuid4()])).status_code == 404
    assert client.get(reverse("job-detail", args=[uuid.uuid4()])).status_code == 404


def test_pages_show_only_the_demo_jobs(client):
    demo = Job.objects.create(task_path="example_project.demo.tasks.add", return_value=3)
    other = Job.objects.create(task_path="tests.tasks.echo", args=["secret"], return_value="x")

    index = client.get(reverse("index")).content.decode()
    assert reverse("job-detail", args=[demo.pk]) in index
    assert reverse("job-detail", args=[other.pk]) not in index
    assert "tests.tasks.echo" not in index
    assert client.get(reverse("job-json", args=[other.pk])).status_code == 404
    assert client.get(reverse("job-detail", args=[other.pk])).status_code == 404


def test_job_page_escapes_task_data(client):
    job = Job.objects.create(task_path="example_project.demo.tasks.add", return_value=SCRIPT)
    body = client.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert SCRIPT not in body
    assert "&lt;script&gt;" in body


def test_pages_fit_a_phone_and_have_a_favicon(client):
    index = client.get(reverse("index")).content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in index
    assert f'<link rel="icon" href="{reverse("favicon")}"' in index
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg ")
    assert client.post("/favicon.ico").status_code == 405


def test_enqueued_shows_the_date(client):
    job = Job.objects.create(task_path="example_project.demo.tasks.add")
    Job.objects.filter(pk=job.pk).update(enqueued_at=datetime(2026, 12, 2, 9, 17, 5, tzinfo=UTC))
    index = client.get(reverse("index")).content.decode()
    assert ">2026-12-02 09:17:05</time>" in index
    assert "Enqueued (UTC)" in index
    page = client.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert ">2026-12-02 09:17:05 UTC</time>" in page


def test_the_fail_demo_ends_failed_and_shows_each_message(client, run_jobs, later):
    response = client.post(reverse("enqueue-demo", args=["fail"]))
    run_jobs()
    run_jobs(now=later)  # past the retry's backoff
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 2
    data = client.get(reverse("job-json", args=[job.pk])).json()
    assert data["finished"] is True
    assert data["failures"] == [
        {
            "attempt": attempt,
            "error": "builtins.RuntimeError",
            "message": f"attempt {attempt} of 2 fails on purpose, like every attempt",
        }
        for attempt in (1, 2)
    ]
    page = client.get(response["Location"]).content.decode()
    assert (
        "<li>attempt 2 failed: builtins.RuntimeError: "
        "attempt 2 of 2 fails on purpose, like every attempt</li>"
    ) in page


def raised(error):
    try:
        raise error
    except Exception as caught:  # noqa: BLE001 - any exception, as a task raises it
        return error_entry(caught, 1, "w", timezone.now())


class DeclinedError(Exception):
    pass


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (raised(ValueError("bad value\nsecond line")), "bad value"),
        (raised(DeclinedError("card declined: 402")), "card declined: 402"),
        (raised(KeyError("order")), "'order'"),
        (raised(RuntimeError()), ""),
        (
            {
                "exception_class_path": "djtasks.exceptions.UnknownTask",
                "traceback": "'shop.tasks.gone' is not a registered task.\n",
            },
            "'shop.tasks.gone' is not a registered task.",
        ),
    ],
)
def test_error_message_is_the_first_line_of_the_message(entry, message):
    assert error_message(entry["exception_class_path"], entry["traceback"]) == message


def test_a_chained_error_shows_the_message_of_the_last_one():
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as error:
        entry = error_entry(error, 1, "w", timezone.now())
    assert "inner" in entry["traceback"]
    assert error_message(entry["exception_class_path"], entry["traceback"]) == "outer"


def test_the_demo_log_filter_drops_only_the_start_lines():
    assert JOB_STARTED == JOB_FORMAT + " started"  # the worker's own start line

    def record(name, msg):
        return logging.LogRecord(name, logging.INFO, __file__, 1, msg, (), None)

    keep = OutcomesOnly().filter
    assert not keep(record("djtasks", JOB_STARTED))
    assert keep(record("djtasks", JOB_FORMAT + " outcome=%s duration=%.3fs"))
    assert keep(record("djtasks", "worker %s started: pid=%d queues=%s threads=%d wake-up=%s"))
    assert keep(record("myapp", JOB_STARTED))
