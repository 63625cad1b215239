"""The dashboard: counts, waiting work, the per-minute chart, recent failures."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.admin import dashboard
from djtasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


def finished(status, minutes_ago, **fields):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return Job.objects.create(
        task_path=fields.pop("task_path", "tests.tasks.noop"),
        status=status,
        enqueued_at=at - timedelta(seconds=1),
        finished_at=at,
        **fields,
    )


def test_counts_by_queue_and_status():
    Job.objects.create(task_path="tests.tasks.noop")
    Job.objects.create(task_path="tests.tasks.noop")
    Job.objects.create(task_path="tests.tasks.send_email", queue_name="emails")
    finished(JobStatus.FAILED, 1)
    statuses, queues = dashboard.counts_by_queue(Job.objects.all())
    table = {row["queue"]: dict(zip(statuses, row["counts"])) for row in queues}
    assert table["default"]["READY"] == (2, False)
    assert table["default"]["FAILED"] == (1, False)
    assert table["emails"]["READY"] == (1, False)
    assert [row["total"] for row in queues] == [3, 1]
    assert not any(row["approximate"] for row in queues)


@pytest.mark.postgresql
def test_large_histories_are_estimated_not_counted(monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from djtasks.admin import paging

    monkeypatch.setattr(dashboard, "ESTIMATE_ABOVE", 0)
    monkeypatch.setattr(dashboard, "EXACT_COUNT_BELOW", 0)
    Job.objects.create(task_path="tests.tasks.noop")
    for _ in range(3):
        finished(JobStatus.SUCCESSFUL, 1)
    with CaptureQueriesContext(connection) as queries:
        statuses, queues = dashboard.counts_by_queue(Job.objects.all())
    table = {row["queue"]: dict(zip(statuses, row["counts"])) for row in queues}
    assert table["default"]["READY"] == (1, False)  # live work: always exact
    count, approximate = table["default"]["SUCCESSFUL"]
    assert approximate is True and count >= 0
    grouped = [q["sql"] for q in queries if "GROUP BY" in q["sql"]]
    assert len(grouped) == 1 and "'READY'" in grouped[0]
    assert paging.EXACT_COUNT_BELOW > 0  # the paginator's own threshold is untouched


def test_oldest_ready_job_per_queue():
    now = timezone.now()
    Job.objects.create(task_path="tests.tasks.noop", available_at=now - timedelta(minutes=10))
    Job.objects.create(task_path="tests.tasks.noop", available_at=now - timedelta(minutes=2))
    # Not due yet: not waiting.
    Job.objects.create(
        task_path="tests.tasks.noop", queue_name="emails", available_at=now + timedelta(hours=1)
    )
    rows = dashboard.oldest_ready(Job.objects.all(), now)
    assert [(row["queue"], row["ready"]) for row in rows] == [("default", 2)]
    assert rows[0]["age"] == timedelta(minutes=10)


def test_per_minute_buckets_cover_the_last_hour():
    for _ in range(3):
        finished(JobStatus.SUCCESSFUL, 5)
    finished(JobStatus.FAILED, 5)
    finished(JobStatus.SUCCESSFUL, 90)  # older than the chart
    buckets = dashboard.per_minute(Job.objects.all(), timezone.now())
    assert len(buckets) == dashboard.CHART_MINUTES
    assert sum(b["done"] for b in buckets) == 3
    assert sum(b["failed"] for b in buckets) == 1
    busy = [b for b in buckets if b["done"]]
    assert len(busy) == 1 and busy[0]["failed"] == 1


def test_chart_bars_scale_to_the_busiest_minute():
    now = timezone.now().replace(second=0, microsecond=0)
    buckets = [{"minute": now, "done": 4, "failed": 0}, {"minute": now, "done": 1, "failed": 1}]
    chart = dashboard.chart(buckets)
    assert chart["top"] == 4
    heights = [bar.height for bar in chart["bars"]]
    assert heights[0] == pytest.approx(dashboard.CHART_HEIGHT - 20)
    assert heights[1] == pytest.approx(heights[0] / 4)
    assert [bar.css for bar in chart["bars"]] == ["done", "done", "failed"]


def test_dashboard_page_renders_everything(admin_client):
    finished(JobStatus.SUCCESSFUL, 3)
    failure = finished(
        JobStatus.FAILED,
        2,
        task_path="tests.tasks.failing",
        errors=[{"exception_class_path": SCRIPT, "traceback": SCRIPT}],
    )
    Job.objects.create(
        task_path="tests.tasks.noop", available_at=timezone.now() - timedelta(minutes=1)
    )
    response = admin_client.get(reverse("admin:djtasks_dashboard"))
    body = response.content.decode()
    assert '<svg id="djtasks-chart"' in body
    assert body.count('class="bar done"') == 1
    assert body.count('class="bar failed"') == 1
    assert 'id="djtasks-counts"' in body and 'id="djtasks-waiting"' in body
    assert reverse("admin:djtasks_job_change", args=[failure.pk]) in body
    assert SCRIPT not in body
    assert "&lt;script&gt;" in body


def test_dashboard_with_no_jobs(admin_client):
    body = admin_client.get(reverse("admin:djtasks_dashboard")).content.decode()
    assert "No failures." in body
    assert "Nothing is waiting." in body
    assert '<svg id="djtasks-chart"' in body


def test_app_index_links_the_dashboard(admin_client):
    body = admin_client.get(reverse("admin:app_list", args=["djtasks"])).content.decode()
    assert reverse("admin:djtasks_dashboard") in body
