"""The schedule form helps: arguments checked on save, readable intervals, choices, live preview."""

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.beat import timing
from djtasks.models import Job, JobStatus, Schedule
from tests import tasks
from tests.integration.test_admin_schedules import ADD, form_data

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("task", "args", "kwargs"),
    [
        (tasks.add, [1], {}),
        (tasks.add, [1, 2, 3], {}),
        (tasks.add, [1], {"c": 2}),
        (tasks.noop, [1], {}),
    ],
)
def test_arguments_the_function_cannot_take_are_an_args_error(task, args, kwargs):
    errors = timing.call_errors(task, args, kwargs)
    assert set(errors) == {"args"}
    assert errors["args"].startswith(f"{task.module_path}(")
    assert "cannot take these arguments" in errors["args"]


@pytest.mark.parametrize(
    ("task", "args", "kwargs"),
    [
        (tasks.add, [1, 2], {}),
        (tasks.add, [1], {"b": 2}),
        (tasks.echo, [1, 2, 3], {"anything": True}),
        # The context is passed by the worker, not stored in the schedule.
        (tasks.takes_context, [1, 2], {}),
    ],
)
def test_arguments_that_fit_the_signature_pass(task, args, kwargs):
    assert timing.call_errors(task, args, kwargs) == {}


def test_a_schedule_with_wrong_arguments_is_not_saved(admin_client):
    response = admin_client.post(reverse(ADD), form_data(args="[1]"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "missing a required argument: 'b'" in errors["args"][0]
    assert not Schedule.objects.exists()


def test_an_interval_written_5m_is_saved(admin_client):
    response = admin_client.post(reverse(ADD), form_data(cron="", interval="5m"))
    assert response.status_code == 302
    assert Schedule.objects.get().interval.total_seconds() == 300


def test_an_unreadable_interval_gives_one_clear_error(admin_client):
    response = admin_client.post(reverse(ADD), form_data(cron="", interval="5 minutes"))
    form = response.context["adminform"].form
    assert form.errors["interval"] == [
        "Enter an interval such as 30s, 5m, 2h, 1d, 1h30m or 00:05:00."
    ]
    assert not form.non_field_errors()  # no "give exactly one of" beside it


def test_queue_and_time_zone_are_choices_with_help(admin_client):
    page = admin_client.get(reverse(ADD))
    form = page.context["adminform"].form
    queues = dict(form.fields["queue_name"].choices)
    zones = dict(form.fields["time_zone"].choices)
    assert "default" in queues and "emails" in queues
    assert "Europe/Berlin" in zones and "UTC" in zones and "Mars/Olympus" not in zones
    body = page.content.decode()
    assert "<code>5m</code>" in body and "<code>30 2 * * *</code>" in body


def test_the_preview_follows_the_typed_timing_without_saving(admin_client):
    url = reverse("admin:djtasks_schedule_preview")
    answer = admin_client.get(url, form_data(cron="0 9 * * 1-5", time_zone="UTC")).json()
    assert len(answer["runs"]) == 5 and answer["error"] == ""
    assert all(run.endswith("09:00:00 UTC") for run in answer["runs"])
    bad = admin_client.get(url, form_data(cron="", interval="5 minutes")).json()
    assert bad["runs"] == [] and bad["error"].startswith("interval: Enter an interval")
    assert not Schedule.objects.exists()


def test_the_preview_needs_view_permission(client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:djtasks_schedule_preview")).status_code == 403


def test_the_list_shows_the_last_run_and_its_failure(admin_client):
    job = Job.objects.create(
        task_path="tests.tasks.add",
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        errors=[
            {
                "exception_class_path": "builtins.TypeError",
                "traceback": "Traceback ...\nTypeError: add() missing 1 required argument\n",
            }
        ],
    )
    Schedule.objects.create(
        name="broken",
        task_path="tests.tasks.add",
        cron="* * * * *",
        last_run_at=timezone.now(),
        last_job=job,
    )
    listing = admin_client.get(reverse("admin:djtasks_schedule_changelist")).content.decode()
    assert "djtasks-badge djtasks-FAILED" in listing
    assert "last run failed: builtins.TypeError: add() missing 1 required argument" in listing
