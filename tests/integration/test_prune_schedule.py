"""The built-in schedule "djtasks.prune": synced by beat, enqueues prune_jobs, which prunes."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from djtasks.beat import declared as code_schedules
from djtasks.beat.scheduler import Beat
from djtasks.models import Job, JobStatus, Schedule, Worker
from djtasks.prune import SCHEDULE_NAME, TASK_PATH
from djtasks.tasks import prune_jobs

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def only_builtin(monkeypatch, settings):
    """No other schedule declared in code, the default PRUNE_SCHEDULE."""
    monkeypatch.setattr(code_schedules, "_declared", {})
    settings.DJTASKS = {"SCHEDULES": {}}
    return settings


def beat_at(now):
    # tick() closes a connection that is inside a transaction: these tests
    # use transaction=True, as a real beat runs in autocommit.
    return Beat(clock=lambda: now)


def old_finished_job(status=JobStatus.SUCCESSFUL, age=timedelta(days=8)):
    finished = timezone.now() - age
    return Job.objects.create(
        task_path="tests.tasks.noop", status=status, enqueued_at=finished, finished_at=finished
    )


@pytest.mark.django_db(transaction=True)
def test_beat_syncs_the_builtin_schedule_and_enqueues_prune_jobs_when_due(run_jobs):
    beat_at(NOW).tick()
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert (schedule.task_path, schedule.cron, schedule.declared_in_code) == (
        TASK_PATH,
        "17 * * * *",
        True,
    )
    assert schedule.skip_if_running and schedule.enabled
    assert schedule.next_run_at == NOW.replace(minute=17)
    assert not Job.objects.exists()

    due = NOW.replace(minute=17, second=1)
    beat_at(due).tick()
    job = Job.objects.get()
    assert (job.task_path, job.schedule_id, job.queue_name) == (TASK_PATH, schedule.pk, "default")

    # The worker runs it: old finished rows go, the rest stay.
    old = old_finished_job()
    recent = old_finished_job(age=timedelta(days=1))
    [outcome] = run_jobs()
    assert outcome.status == "SUCCESSFUL", outcome.error
    assert outcome.return_value["jobs"]["SUCCESSFUL"] == 1
    remaining = set(Job.objects.values_list("id", flat=True))
    assert old.id not in remaining
    assert {recent.id, job.id} <= remaining


@pytest.mark.django_db(transaction=True)
def test_prune_schedule_none_declares_nothing_and_disables_an_earlier_row(only_builtin):
    beat_at(NOW).tick()
    assert Schedule.objects.get(name=SCHEDULE_NAME).enabled
    only_builtin.DJTASKS = {"SCHEDULES": {}, "PRUNE_SCHEDULE": None}
    beat_at(NOW).tick()  # a new beat syncs again
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert not schedule.enabled
    assert schedule.last_error == code_schedules.REMOVED_NOTE


@pytest.mark.django_db(transaction=True)
def test_a_custom_cron_and_an_admin_switch_off_are_respected(only_builtin):
    only_builtin.DJTASKS = {"SCHEDULES": {}, "PRUNE_SCHEDULE": "0 4 * * *"}
    beat_at(NOW).tick()
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert schedule.next_run_at == datetime(2026, 6, 2, 4, 0, tzinfo=UTC)
    # Switched off in the admin: a later beat start leaves it off.
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
    beat_at(NOW + timedelta(days=2)).tick()
    schedule.refresh_from_db()
    assert not schedule.enabled
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_beat_run_once_creates_the_schedule():
    # What runbeat and runworker --beat do: Beat.run, with autodiscover.
    beat_at(NOW).run(once=True)
    assert Schedule.objects.filter(name=SCHEDULE_NAME, enabled=True).exists()


@pytest.mark.django_db
def test_prune_jobs_prunes_the_database_of_its_backend_and_returns_counts(run_jobs):
    old_finished_job()
    old_finished_job(JobStatus.FAILED, age=timedelta(days=40))
    kept = old_finished_job(JobStatus.FAILED, age=timedelta(days=10))
    Worker.objects.create(
        id="long-gone", hostname="h", pid=1, last_heartbeat_at=timezone.now() - timedelta(days=9)
    )
    result = prune_jobs.enqueue()
    [outcome] = run_jobs()
    assert outcome.return_value == {
        "jobs": {"SUCCESSFUL": 1, "FAILED": 1, "CANCELLED": 0, "EXPIRED": 0},
        "workers": 1,
        "dry_run": False,
    }
    left = set(Job.objects.values_list("id", flat=True))
    # Its own job (just finished) and the FAILED one within 30 days remain.
    assert left == {kept.id, uuid.UUID(result.id)}
    assert not Worker.objects.exists()
