"""The jobs admin as a superuser: list, filters, search, detail, actions."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.admin.paging import EstimatedCountPaginator
from djtasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:djtasks_job_changelist"
SCRIPT = "<script>alert('x')</script>"


def make_job(**fields):
    fields.setdefault("task_path", "tests.tasks.add")
    fields.setdefault("args", [1, 2])
    return Job.objects.create(**fields)


def failed_job(**fields):
    now = timezone.now()
    return make_job(
        status=JobStatus.FAILED,
        attempts=3,
        max_attempts=3,
        started_at=now - timedelta(seconds=5),
        finished_at=now,
        worker_ids=["w1", "w1", "w2"],
        errors=[
            {
                "exception_class_path": "builtins.ValueError",
                "traceback": f"Traceback ...\nValueError: {SCRIPT}\n",
                "attempt": n,
                "worker_id": "w1",
                "failed_at": (now - timedelta(seconds=3 - n)).isoformat(),
            }
            for n in (1, 2, 3)
        ],
        **fields,
    )


def ids_listed(response):
    return {str(job.pk) for job in response.context["cl"].result_list}


def act(client, action, *jobs):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(job.pk) for job in jobs]},
        follow=True,
    )


# --- the list ----------------------------------------------------------------


def test_changelist_shows_badges_and_columns(admin_client):
    job = failed_job()
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert 'class="djtasks-badge djtasks-FAILED"' in body
    assert "tests.tasks.add" in body
    assert "3/3" in body  # attempts
    assert "5.00 s" in body  # duration
    assert f">{str(job.pk)[-8:]}</a>" in body  # the short id: the id's last 8 digits


def test_changelist_does_not_count_the_whole_table(admin_client):
    make_job()
    response = admin_client.get(reverse(CHANGELIST), {"status__exact": "READY"})
    cl = response.context["cl"]
    assert cl.full_result_count is None
    assert cl.paginator.__class__ is EstimatedCountPaginator


@pytest.mark.postgresql
def test_large_results_use_the_planner_estimate(admin_client, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from djtasks.admin import paging

    monkeypatch.setattr(paging, "EXACT_COUNT_BELOW", 0)
    for _ in range(3):
        make_job()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    sql = [q["sql"].upper() for q in queries]
    assert not any("COUNT(" in statement for statement in sql)
    assert any(statement.startswith("EXPLAIN") for statement in sql)
    assert len(response.context["cl"].result_list) == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "FAILED"}, {"failed"}),
        ({"queue": "emails"}, {"email"}),
        ({"task": "tests.tasks.send_email"}, {"email"}),
        (
            {
                "enqueued_at__gte": "2000-01-01 00:00:00+00:00",
                "enqueued_at__lt": "2000-01-02 00:00:00+00:00",
            },
            {"old"},
        ),
    ],
)
def test_filters(admin_client, params, expected):
    jobs = {
        "failed": failed_job(),
        "email": make_job(task_path="tests.tasks.send_email", queue_name="emails"),
        "old": make_job(enqueued_at=timezone.now().replace(year=2000, month=1, day=1, hour=12)),
    }
    response = admin_client.get(reverse(CHANGELIST), params)
    assert ids_listed(response) == {str(jobs[name].pk) for name in expected}


def test_filter_choices_come_from_settings_and_registry(admin_client):
    make_job()
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "?queue=emails" in body
    assert "task=tests.tasks.send_email" in body


def test_search_by_full_id_and_by_task(admin_client):
    first = make_job(task_path="tests.tasks.noop")
    second = make_job(task_path="tests.tasks.send_email", queue_name="emails")
    by_id = admin_client.get(reverse(CHANGELIST), {"q": str(first.pk)})
    assert ids_listed(by_id) == {str(first.pk)}
    by_task = admin_client.get(reverse(CHANGELIST), {"q": "SEND_em"})
    assert ids_listed(by_task) == {str(second.pk)}


def test_search_by_the_short_id_shown_in_the_list(admin_client):
    wanted = make_job(id=uuid.UUID("abcdef01-0000-4000-8000-000000000001"))
    make_job(id=uuid.UUID("abcdef02-0000-4000-8000-000000000002"))
    make_job(id=uuid.UUID("0bcdef01-0000-4000-8000-000000000003"))
    response = admin_client.get(reverse(CHANGELIST), {"q": "ABCDEF01"})
    assert ids_listed(response) == {str(wanted.pk)}
    both = admin_client.get(reverse(CHANGELIST), {"q": "abcdef0"})
    assert len(ids_listed(both)) == 2
    # Hex letters only: read as part of a task path, not an id.
    assert ids_listed(admin_client.get(reverse(CHANGELIST), {"q": "abcdef"})) == set()


def test_search_by_the_short_id_of_a_time_ordered_id(admin_client):
    # New ids start with their enqueue's time (djtasks.ids), alike for a
    # minute's jobs: the list shows their last 8 digits, and finds them by it.
    wanted = make_job()
    other = make_job()
    assert str(wanted.pk)[:8] == str(other.pk)[:8]
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f">{str(wanted.pk)[-8:]}</a>" in body
    found = admin_client.get(reverse(CHANGELIST), {"q": str(wanted.pk)[-8:].upper()})
    assert ids_listed(found) == {str(wanted.pk)}
    # A longer part of the start is still a range of the key.
    by_start = admin_client.get(reverse(CHANGELIST), {"q": str(wanted.pk)[:23]})
    assert ids_listed(by_start) == {str(wanted.pk)}


def test_search_finds_rows_of_tasks_no_longer_registered(admin_client):
    gone = make_job(task_path="tests.tasks.renamed_since")
    make_job(task_path="tests.tasks.noop")
    response = admin_client.get(reverse(CHANGELIST), {"q": "renamed_since"})
    assert ids_listed(response) == {str(gone.pk)}


def test_changelist_links_the_dashboard(admin_client):
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:djtasks_dashboard") in body


# --- the detail page ------------------------------------------------------------


def test_detail_pretty_prints_and_escapes_user_data(admin_client):
    job = failed_job(
        args=[SCRIPT, {"nested": [1, 2]}],
        kwargs={"title": SCRIPT},
        return_value={"html": SCRIPT},
        progress={"current": 3, "total": 4, "message": SCRIPT},
    )
    body = admin_client.get(reverse("admin:djtasks_job_change", args=[job.pk])).content.decode()
    assert SCRIPT not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert '<pre class="djtasks-json">' in body
    assert "&quot;nested&quot;: [\n" in body  # indented JSON
    # Each attempt's error with its traceback.
    assert body.count('class="djtasks-error"') == 3
    assert "Attempt 2" in body and "builtins.ValueError" in body
    # The progress bar and the timeline.
    assert 'aria-valuenow="75.0"' in body
    assert "attempt 3 failed: builtins.ValueError" in body
    assert "finished: failed" in body
    # Nothing on the page is editable.
    assert 'name="_save"' not in body


def test_detail_offers_the_operations_the_status_allows(admin_client):
    failed = failed_job()
    ready = make_job()
    url = "admin:djtasks_job_operate"
    failed_page = admin_client.get(reverse("admin:djtasks_job_change", args=[failed.pk]))
    ready_page = admin_client.get(reverse("admin:djtasks_job_change", args=[ready.pk]))
    assert reverse(url, args=[failed.pk, "retry"]) in failed_page.content.decode()
    assert reverse(url, args=[failed.pk, "cancel"]) not in failed_page.content.decode()
    assert reverse(url, args=[ready.pk, "cancel"]) in ready_page.content.decode()
    assert reverse(url, args=[ready.pk, "run-now"]) in ready_page.content.decode()


def test_posting_the_change_form_does_not_overwrite_the_row(admin_client):
    job = make_job(status=JobStatus.RUNNING)
    # A worker finishes the job after the page was loaded...
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCESSFUL)
    # ...then someone presses Enter on the stale page.
    admin_client.post(reverse("admin:djtasks_job_change", args=[job.pk]), {})
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESSFUL


def test_unknown_job_page_is_handled(admin_client):
    response = admin_client.get(reverse("admin:djtasks_job_change", args=[uuid.uuid4()]))
    assert response.status_code == 302  # the admin's "doesn't exist" redirect


# --- actions ------------------------------------------------------------------


def test_retry_gives_failed_and_cancelled_jobs_a_fresh_budget(admin_client):
    failed = failed_job(task_path="tests.tasks.always_failing")  # max_attempts=3
    cancelled = make_job(status=JobStatus.CANCELLED, finished_at=timezone.now())
    succeeded = make_job(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    response = act(admin_client, "retry_jobs", failed, cancelled, succeeded)
    assert "2 jobs put back to ready." in response.content.decode()
    for job in (failed, cancelled, succeeded):
        job.refresh_from_db()
    assert failed.status == JobStatus.READY
    assert (failed.attempts, failed.max_attempts) == (3, 6)
    assert failed.finished_at is None and failed.available_at <= timezone.now()
    assert len(failed.errors) == 3  # the history stays
    assert cancelled.status == JobStatus.READY
    assert cancelled.max_attempts == 1
    assert succeeded.status == JobStatus.SUCCESSFUL


def test_retry_skips_a_job_whose_unique_key_is_taken(admin_client):
    old = failed_job(unique_key="k1")
    free = failed_job(unique_key="k2")
    plain = failed_job()
    live = make_job(unique_key="k1")
    response = act(admin_client, "retry_jobs", old, free, plain)
    assert "2 jobs put back to ready." in response.content.decode()
    for job in (old, free, plain, live):
        job.refresh_from_db()
    assert old.status == JobStatus.FAILED
    assert free.status == JobStatus.READY and plain.status == JobStatus.READY
    assert live.status == JobStatus.READY


def test_cancel_ready_and_running_jobs(admin_client):
    ready = make_job()
    running = make_job(status=JobStatus.RUNNING, attempts=1, started_at=timezone.now())
    done = make_job(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    response = act(admin_client, "cancel_jobs", ready, running, done)
    assert "1 job was cancelled. 1 running job was asked to stop" in (response.content.decode())
    for job in (ready, running, done):
        job.refresh_from_db()
    assert ready.status == JobStatus.CANCELLED and ready.finished_at is not None
    assert running.status == JobStatus.RUNNING and running.cancel_requested_at is not None
    assert done.status == JobStatus.SUCCESSFUL and done.cancel_requested_at is None


def test_run_now_makes_deferred_jobs_due(admin_client):
    later = timezone.now() + timedelta(hours=2)
    deferred = make_job(run_after=later, available_at=later)
    response = act(admin_client, "run_jobs_now", deferred)
    assert "1 ready job will run now." in response.content.decode()
    deferred.refresh_from_db()
    assert deferred.available_at <= timezone.now()
    assert deferred.run_after == later  # what the caller asked for stays on record


def test_delete_action(admin_client):
    job = failed_job()
    admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [str(job.pk)], "post": "yes"},
    )
    assert not Job.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize(
    ("status", "operation", "expected_status"),
    [
        (JobStatus.FAILED, "retry", JobStatus.READY),
        (JobStatus.READY, "cancel", JobStatus.CANCELLED),
        (JobStatus.READY, "run-now", JobStatus.READY),
    ],
)
def test_job_page_buttons(admin_client, status, operation, expected_status):
    job = make_job(status=status, available_at=timezone.now() + timedelta(hours=1))
    response = admin_client.post(reverse("admin:djtasks_job_operate", args=[job.pk, operation]))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:djtasks_job_change", args=[job.pk])
    job.refresh_from_db()
    assert job.status == expected_status
    if operation == "run-now":
        assert job.available_at <= timezone.now()


def test_job_page_buttons_only_accept_post_and_known_operations(admin_client):
    job = make_job()
    assert (
        admin_client.get(reverse("admin:djtasks_job_operate", args=[job.pk, "cancel"])).status_code
        == 405
    )
    assert (
        admin_client.post(
            reverse("admin:djtasks_job_operate", args=[job.pk, "explode"])
        ).status_code
        == 404
    )
    job.refresh_from_db()
    assert job.status == JobStatus.READY
