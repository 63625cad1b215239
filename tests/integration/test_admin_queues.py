"""The admin's Queues page: its figures, its buttons, and who may press them."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

import djtasks
from djtasks.models import Control, ControlKind, Job, JobStatus
from tests import tasks

pytestmark = pytest.mark.django_db

PAGE = "admin:djtasks_control_changelist"
ACT = "admin:djtasks_queues_act"


def staff(django_user_model, *codenames, name="staff"):
    user = django_user_model.objects.create_user(username=name, password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_the_page_shows_every_queue_with_its_figures(admin_client, settings):
    settings.DJTASKS = {"QUEUE_RATE_LIMITS": {"other": "5/s"}}
    djtasks.bulk_enqueue(tasks.noop.using(queue_name="emails"), [((), {})] * 3)
    Job.objects.create(task_path="tests.tasks.noop", queue_name="emails", status=JobStatus.RUNNING)
    Control.objects.create(kind=ControlKind.QUEUE, name="other", paused=True, rate_limit="1/m")

    response = admin_client.get(reverse(PAGE))

    assert response.status_code == 200
    rows = {row.name: row for row in response.context["queues"]}
    assert set(rows) >= {"default", "emails", "other"}
    assert (rows["emails"].ready, rows["emails"].running, rows["emails"].paused) == (3, 1, False)
    assert rows["other"].paused
    assert (rows["other"].rate_override, rows["other"].default_rate) == ("1/m", "5/s")
    html = response.content.decode()
    assert "paused" in html and "1/m" in html and "(default 5/s)" in html


def test_a_superuser_pauses_and_limits_a_queue_and_the_change_is_logged(admin_client):
    response = admin_client.post(reverse(ACT), {"action": "pause-queue", "name": "emails"})
    assert response.status_code == 302
    admin_client.post(
        reverse(ACT),
        {"action": "limit-queue", "name": "emails", "rate": "10/m", "concurrency": "2"},
    )

    control = Control.objects.get(kind=ControlKind.QUEUE, name="emails")
    assert (control.paused, control.rate_limit, control.concurrency_limit) == (True, "10/m", 2)
    assert control.changed_by == "admin:admin"
    messages = list(LogEntry.objects.values_list("change_message", flat=True))
    assert "queue emails: paused" in messages
    assert "queue emails: rate limit 10/m, concurrency limit 2" in messages


def test_a_task_is_paused_and_resumed_from_the_page(admin_client):
    job = tasks.noop.enqueue()
    admin_client.post(reverse(ACT), {"action": "pause-task", "name": "tests.tasks.noop"})
    assert Job.objects.get(pk=job.id).paused
    page = admin_client.get(reverse(PAGE))
    assert [c.name for c, _ in page.context["tasks"]] == ["tests.tasks.noop"]

    admin_client.post(reverse(ACT), {"action": "resume-task", "name": "tests.tasks.noop"})
    assert not Job.objects.get(pk=job.id).paused


def test_bad_input_shows_an_error_and_changes_nothing(admin_client):
    response = admin_client.post(
        reverse(ACT), {"action": "limit-queue", "name": "emails", "rate": "lots"}, follow=True
    )
    assert "&#x27;lots&#x27; is not a rate limit" in response.content.decode()
    response = admin_client.post(
        reverse(ACT), {"action": "pause-queue", "name": "nope"}, follow=True
    )
    assert "Unknown queue" in response.content.decode()
    assert not Control.objects.exists()


def test_view_only_staff_see_the_page_without_buttons_and_cannot_act(client, django_user_model):
    client.force_login(staff(django_user_model, "view_control"))

    page = client.get(reverse(PAGE))
    assert page.status_code == 200
    assert 'value="pause-queue"' not in page.content.decode()
    for action in ("pause-queue", "resume-queue", "limit-queue", "pause-task", "limit-task"):
        response = client.post(reverse(ACT), {"action": action, "name": "emails", "rate": "1/s"})
        assert response.status_code == 403, action
    assert not Control.objects.exists()


@pytest.mark.parametrize(
    ("codename", "allowed", "refused"),
    [
        ("pause_queue", "pause-queue", "limit-queue"),
        ("limit_queue", "limit-queue", "pause-queue"),
        ("pause_task", "pause-task", "limit-task"),
        ("limit_task", "limit-task", "pause-task"),
    ],
)
def test_each_control_is_its_own_permission(client, django_user_model, codename, allowed, refused):
    client.force_login(staff(django_user_model, "view_control", codename))
    name = "emails" if allowed.endswith("queue") else "tests.tasks.noop"
    form = {"name": name, "rate": "1/s"}

    page = client.get(reverse(PAGE)).content.decode()
    assert f'value="{allowed}"' in page and f'value="{refused}"' not in page
    assert client.post(reverse(ACT), {**form, "action": refused}).status_code == 403
    assert client.post(reverse(ACT), {**form, "action": allowed}).status_code == 302
    assert Control.objects.filter(name=name).exists()


def test_staff_without_view_permission_are_forbidden(client, django_user_model):
    client.force_login(staff(django_user_model, "pause_queue"))
    assert client.get(reverse(PAGE)).status_code == 403


def test_outsiders_are_sent_to_the_login(client):
    for response in (client.get(reverse(PAGE)), client.post(reverse(ACT), {})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_the_act_url_takes_only_post(admin_client):
    assert admin_client.get(reverse(ACT)).status_code == 405
