"""Who may see and do what in djtasks' admin: every view, four kinds of user.

anonymous and logged-in non-staff users are sent to the admin login; staff
without the model permission get 403; staff with view permission see the
pages but cannot act; superusers do everything.
"""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from djtasks.models import Job, JobStatus, Schedule, Worker

pytestmark = pytest.mark.django_db

ANONYMOUS, NON_STAFF, STAFF, VIEWER, SUPERUSER = (
    "anonymous",
    "non-staff",
    "staff without permission",
    "staff with view permission",
    "superuser",
)


@pytest.fixture
def objects():
    job = Job.objects.create(task_path="tests.tasks.add", args=[1, 2], status=JobStatus.FAILED)
    schedule = Schedule.objects.create(
        name="every minute", task_path="tests.tasks.noop", cron="* * * * *"
    )
    worker = Worker.objects.create(id="w-perm", hostname="host", pid=1, queues=["default"])
    return {"job": job, "schedule": schedule, "worker": worker}


def login_as(client, django_user_model, kind):
    if kind == ANONYMOUS:
        return client
    user = django_user_model.objects.create_user(
        username=kind.replace(" ", "-"),
        password="pw",
        is_staff=kind != NON_STAFF,
        is_superuser=kind == SUPERUSER,
    )
    if kind == VIEWER:
        for codename in ("view_job", "view_schedule", "view_worker"):
            user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def admin_urls(objects):
    job, schedule, worker = objects["job"], objects["schedule"], objects["worker"]
    return {
        "jobs": reverse("admin:djtasks_job_changelist"),
        "job": reverse("admin:djtasks_job_change", args=[job.pk]),
        "dashboard": reverse("admin:djtasks_dashboard"),
        "schedules": reverse("admin:djtasks_schedule_changelist"),
        "schedule": reverse("admin:djtasks_schedule_change", args=[schedule.pk]),
        "workers": reverse("admin:djtasks_worker_changelist"),
        "worker": reverse("admin:djtasks_worker_change", args=[worker.pk]),
    }


VIEW_NAMES = ("jobs", "job", "dashboard", "schedules", "schedule", "workers", "worker")


@pytest.mark.parametrize("kind", [ANONYMOUS, NON_STAFF])
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_outsiders_are_sent_to_the_login(client, django_user_model, objects, kind, view):
    client = login_as(client, django_user_model, kind)
    response = client.get(admin_urls(objects)[view])
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_staff_without_permission_is_forbidden(client, django_user_model, objects, view):
    client = login_as(client, django_user_model, STAFF)
    assert client.get(admin_urls(objects)[view]).status_code == 403


@pytest.mark.parametrize("kind", [VIEWER, SUPERUSER])
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_permitted_users_see_every_page(client, django_user_model, objects, kind, view):
    client = login_as(client, django_user_model, kind)
    assert client.get(admin_urls(objects)[view]).status_code == 200


def test_the_admin_index_links_the_dashboard_only_for_users_who_may_see_jobs(
    client, django_user_model
):
    staff = login_as(client, django_user_model, STAFF)
    assert b"djtasks-dashboard-link" not in staff.get(reverse("admin:index")).content
    client.logout()
    viewer = login_as(client, django_user_model, VIEWER)
    body = viewer.get(reverse("admin:index")).content.decode()
    assert "djtasks-dashboard-link" in body
    assert reverse("admin:djtasks_dashboard") in body


def failed_job_action(client, job, action):
    return client.post(
        reverse("admin:djtasks_job_changelist"),
        {"action": action, "_selected_action": [str(job.pk)]},
    )


@pytest.mark.parametrize("kind", [ANONYMOUS, NON_STAFF, STAFF, VIEWER])
@pytest.mark.parametrize("action", ["retry_jobs", "cancel_jobs", "run_jobs_now", "delete_selected"])
def test_bulk_job_actions_need_change_permission(client, django_user_model, objects, action, kind):
    client = login_as(client, django_user_model, kind)
    job = objects["job"]
    ready = Job.objects.create(task_path="tests.tasks.add", available_at=timezone.now())
    for target in (job, ready):
        response = failed_job_action(client, target, action)
        assert response.status_code in (200, 302, 403)
        if kind in (ANONYMOUS, NON_STAFF):  # outsiders: to the login page
            assert response["Location"].startswith(reverse("admin:login"))
    if kind == VIEWER:
        offered = client.get(reverse("admin:djtasks_job_changelist")).context["action_form"]
        # No action at all is offered (the admin then drops the action form).
        assert offered is None
    assert Job.objects.filter(pk__in=[job.pk, ready.pk]).count() == 2
    job.refresh_from_db()
    ready.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert ready.status == JobStatus.READY


@pytest.mark.parametrize("operation", ["retry", "cancel", "run-now"])
@pytest.mark.parametrize("kind", [ANONYMOUS, NON_STAFF, STAFF, VIEWER])
def test_job_page_buttons_need_change_permission(
    client, django_user_model, objects, kind, operation
):
    client = login_as(client, django_user_model, kind)
    job = objects["job"]
    response = client.post(reverse("admin:djtasks_job_operate", args=[job.pk, operation]))
    assert response.status_code in (302, 403)
    if response.status_code == 302:  # outsiders: to the login page
        assert response["Location"].startswith(reverse("admin:login"))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_viewer_sees_no_action_buttons_on_a_job_page(client, django_user_model, objects):
    client = login_as(client, django_user_model, VIEWER)
    body = client.get(admin_urls(objects)["job"]).content.decode()
    assert "djtasks-operation" not in body


@pytest.mark.parametrize("kind", [ANONYMOUS, NON_STAFF, STAFF, VIEWER])
@pytest.mark.parametrize("action", ["enable", "disable", "run_now"])
def test_schedule_actions_need_change_permission(client, django_user_model, objects, action, kind):
    client = login_as(client, django_user_model, kind)
    schedule = objects["schedule"]
    client.post(
        reverse("admin:djtasks_schedule_changelist"),
        {"action": action, "_selected_action": [str(schedule.pk)]},
    )
    schedule.refresh_from_db()
    assert schedule.enabled is True
    assert not Job.objects.filter(task_path="tests.tasks.noop").exists()


def test_viewer_cannot_delete_jobs(client, django_user_model, objects):
    client = login_as(client, django_user_model, VIEWER)
    job = objects["job"]
    client.post(
        reverse("admin:djtasks_job_changelist"),
        {"action": "delete_selected", "_selected_action": [str(job.pk)], "post": "yes"},
    )
    assert Job.objects.filter(pk=job.pk).exists()


def test_superuser_is_offered_every_action(admin_client, objects):
    form = admin_client.get(reverse("admin:djtasks_job_changelist")).context["action_form"]
    offered = set(dict(form.fields["action"].choices))
    assert {"retry_jobs", "cancel_jobs", "run_jobs_now", "delete_selected"} <= offered


def test_nobody_adds_jobs_or_workers_by_hand(admin_client):
    assert admin_client.get(reverse("admin:djtasks_job_add")).status_code == 403
    assert admin_client.get(reverse("admin:djtasks_worker_add")).status_code == 403


@pytest.mark.parametrize("kind", [STAFF, VIEWER])
def test_without_change_permission_schedules_cannot_be_added_or_edited(
    client, django_user_model, objects, kind
):
    client = login_as(client, django_user_model, kind)
    schedule = objects["schedule"]
    form = {
        "name": "hijacked",
        "task_path": "tests.tasks.add",
        "args": "[1, 2]",
        "kwargs": "{}",
        "queue_name": "default",
        "priority": "0",
        "cron": "* * * * *",
        "time_zone": "UTC",
        "enabled": "on",
        "misfire_policy": "latest",
        "misfire_cap": "100",
    }

    added = client.post(reverse("admin:djtasks_schedule_add"), form)
    edited = client.post(reverse("admin:djtasks_schedule_change", args=[schedule.pk]), form)

    assert (added.status_code, edited.status_code) == (403, 403)
    assert list(Schedule.objects.values_list("name", flat=True)) == ["every minute"]
