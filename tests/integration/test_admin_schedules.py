"""The schedules admin: validated form, preview of the next runs, actions."""

import pytest
from django.urls import reverse

from djtasks.models import Job, Schedule

pytestmark = pytest.mark.django_db

ADD = "admin:djtasks_schedule_add"


def form_data(**changes):
    data = {
        "name": "nightly",
        "task_path": "tests.tasks.add",
        "args": "[1, 2]",
        "kwargs": "{}",
        "queue_name": "default",
        "priority": "0",
        "cron": "30 2 * * *",
        "interval": "",
        "run_at_0": "",
        "run_at_1": "",
        "time_zone": "Europe/Berlin",
        "start_at_0": "",
        "start_at_1": "",
        "end_at_0": "",
        "end_at_1": "",
        "enabled": "on",
        "misfire_policy": "latest",
        "misfire_cap": "100",
    }
    data.update(changes)
    return data


def test_add_form_offers_registered_tasks_only(admin_client):
    form = admin_client.get(reverse(ADD)).context["adminform"].form
    choices = dict(form.fields["task_path"].choices)
    assert "tests.tasks.add" in choices
    assert "example_project.demo.tasks.slow_count" in choices
    assert "tests.tasks.not_a_task" not in choices
    assert "os.system" not in choices


def test_a_valid_schedule_is_saved_with_its_next_run(admin_client):
    response = admin_client.post(reverse(ADD), form_data())
    assert response.status_code == 302
    schedule = Schedule.objects.get(name="nightly")
    assert schedule.next_run_at is not None
    assert schedule.args == [1, 2]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "not cron"}, "cron"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"task_path": "os.system"}, "task_path"),
        ({"task_path": "tests.tasks.not_a_task"}, "task_path"),
        ({"args": '{"a": 1}'}, "args"),
    ],
)
def test_invalid_input_is_a_form_error(admin_client, changes, field):
    response = admin_client.post(reverse(ADD), form_data(**changes))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert field in form.errors
    assert not Schedule.objects.exists()


def test_exactly_one_timing_is_required(admin_client):
    response = admin_client.post(reverse(ADD), form_data(cron="", interval=""))
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()
    assert not Schedule.objects.exists()


def test_preview_shows_five_runs_in_the_schedule_time_zone(admin_client):
    schedule = Schedule.objects.create(
        name="berlin", task_path="tests.tasks.noop", cron="30 2 * * *", time_zone="Europe/Berlin"
    )
    page = admin_client.get(reverse("admin:djtasks_schedule_change", args=[schedule.pk]))
    body = page.content.decode()
    preview = body[body.index("Next five runs") :]
    runs = preview[: preview.index("</ol>")].count("<li>")
    assert runs == 5
    assert "02:30:00 CE" in preview  # CET or CEST, Berlin wall time


def test_a_stored_task_that_disappeared_is_flagged(admin_client):
    schedule = Schedule.objects.create(
        name="gone",
        task_path="tests.tasks.removed_long_ago",
        cron="* * * * *",
        last_error="task not registered",
    )
    listing = admin_client.get(reverse("admin:djtasks_schedule_changelist")).content.decode()
    assert "task not registered" in listing
    page = admin_client.get(reverse("admin:djtasks_schedule_change", args=[schedule.pk]))
    assert "tests.tasks.removed_long_ago (not registered)" in page.content.decode()


def run_action(client, action, *schedules):
    return client.post(
        reverse("admin:djtasks_schedule_changelist"),
        {"action": action, "_selected_action": [str(s.pk) for s in schedules]},
        follow=True,
    )


def test_enable_and_disable(admin_client):
    schedule = Schedule.objects.create(
        name="s", task_path="tests.tasks.noop", cron="* * * * *", enabled=False
    )
    run_action(admin_client, "enable", schedule)
    schedule.refresh_from_db()
    assert schedule.enabled is True
    assert schedule.next_run_at is not None
    run_action(admin_client, "disable", schedule)
    schedule.refresh_from_db()
    assert schedule.enabled is False


def test_run_now_enqueues_one_job_with_the_schedule_call(admin_client):
    schedule = Schedule.objects.create(
        name="mail",
        task_path="tests.tasks.send_email",
        args=["a@example.org"],
        queue_name="emails",
        priority=7,
        cron="0 * * * *",
    )
    response = run_action(admin_client, "run_now", schedule)
    job = Job.objects.get(task_path="tests.tasks.send_email")
    assert (job.args, job.queue_name, job.priority) == (["a@example.org"], "emails", 7)
    assert str(job.pk) in response.content.decode()


def test_run_now_reports_an_unregistered_task(admin_client):
    schedule = Schedule.objects.create(
        name="gone", task_path="tests.tasks.removed_long_ago", cron="* * * * *"
    )
    response = run_action(admin_client, "run_now", schedule)
    assert "Gone: not enqueued" in response.content.decode()
    assert not Job.objects.exists()
