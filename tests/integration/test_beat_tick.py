"""Beat ticks against the real database: claim, enqueue, move forward, exactly once."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import OperationalError, connections
from django.utils import timezone

from djtasks.beat import declared as periodic_module
from djtasks.beat import scheduler
from djtasks.beat.scheduler import Beat
from djtasks.beat.timing import Timing
from djtasks.models import Job, JobStatus, Schedule
from djtasks.worker import outages

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def beat_at(now):
    beat = Beat(clock=lambda: now)
    beat.synced = True  # these tests declare nothing in code
    return beat


def make(name="every-minute", **fields):
    fields = {"task_path": "tests.tasks.add", "args": [1, 2], "cron": "* * * * *", **fields}
    return Schedule.objects.create(name=name, next_run_at=fields.pop("next_run_at", NOW), **fields)


@pytest.mark.django_db
def test_tick_enqueues_the_due_run_and_moves_next_run_forward():
    schedule = make(queue_name="emails", priority=7)
    assert beat_at(NOW + timedelta(seconds=1)).enqueue_due(NOW + timedelta(seconds=1)) == 1
    job = Job.objects.get()
    assert (job.task_path, job.args, job.queue_name, job.priority) == (
        "tests.tasks.add",
        [1, 2],
        "emails",
        7,
    )
    assert (job.schedule_id, job.scheduled_at, job.status) == (schedule.pk, NOW, JobStatus.READY)
    schedule.refresh_from_db()
    assert schedule.next_run_at == NOW + timedelta(minutes=1)
    assert (schedule.run_count, schedule.last_run_at, schedule.last_job_id) == (1, NOW, job.id)
    # Nothing more is due until the next minute.
    assert beat_at(NOW + timedelta(seconds=2)).enqueue_due(NOW + timedelta(seconds=2)) == 0
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_a_run_already_enqueued_is_not_enqueued_again():
    schedule = make()
    beat_at(NOW).enqueue_due(NOW)
    # A stale write (e.g. an admin form loaded before the tick) puts the
    # old next_run_at back: the unique (schedule, scheduled_at) holds.
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=NOW)
    beat_at(NOW).enqueue_due(NOW)
    assert list(Job.objects.values_list("scheduled_at", flat=True)) == [NOW]
    schedule.refresh_from_db()
    assert schedule.next_run_at == NOW + timedelta(minutes=1)
    assert schedule.run_count == 1


@pytest.mark.django_db
def test_disabled_and_future_schedules_are_left_alone():
    make("off", enabled=False)
    make("later", next_run_at=NOW + timedelta(hours=1))
    assert beat_at(NOW).enqueue_due(NOW) == 0
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_skip_if_running_waits_for_the_previous_run():
    schedule = make(skip_if_running=True)
    beat_at(NOW).enqueue_due(NOW)
    later = NOW + timedelta(minutes=1)
    beat_at(later).enqueue_due(later)
    assert Job.objects.count() == 1  # the first is still READY
    Job.objects.update(status=JobStatus.SUCCESSFUL)
    even_later = NOW + timedelta(minutes=2)
    beat_at(even_later).enqueue_due(even_later)
    assert sorted(Job.objects.values_list("scheduled_at", flat=True)) == [NOW, even_later]
    schedule.refresh_from_db()
    assert schedule.next_run_at == NOW + timedelta(minutes=3)


@pytest.mark.django_db
def test_a_task_that_disappeared_is_flagged_not_fatal():
    broken = make("gone", task_path="tests.tasks.no_such_task")
    fine = make("fine")
    assert beat_at(NOW).enqueue_due(NOW) == 2
    broken.refresh_from_db()
    assert "'tests.tasks.no_such_task' is not a registered task." in broken.last_error
    assert broken.enabled and broken.next_run_at == NOW + timedelta(minutes=1)
    assert list(Job.objects.values_list("schedule_id", flat=True)) == [fine.pk]


@pytest.mark.django_db
def test_a_plain_function_never_runs_from_a_schedule():
    schedule = make("forbidden", task_path="tests.tasks.not_a_task")
    beat_at(NOW).enqueue_due(NOW)
    schedule.refresh_from_db()
    assert "not a registered task" in schedule.last_error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_an_invalid_cron_saved_without_clean_disables_the_schedule():
    schedule = make("bad", cron="99 99 * * *")
    beat_at(NOW).enqueue_due(NOW)
    schedule.refresh_from_db()
    assert not schedule.enabled
    assert schedule.last_error.startswith("Disabled: cron: '99 99 * * *' is not a valid cron")


@pytest.mark.django_db
def test_a_schedule_created_without_a_next_run_gets_one():
    schedule = make("new", next_run_at=None, cron="0 0 * * *")
    beat_at(NOW).enqueue_due(NOW)
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 6, 2, tzinfo=UTC)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_one_off_runs_once_then_is_disabled():
    schedule = make("once", cron="", run_at=NOW)
    beat_at(NOW).enqueue_due(NOW)
    beat_at(NOW + timedelta(hours=1)).enqueue_due(NOW + timedelta(hours=1))
    assert Job.objects.count() == 1
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at, schedule.run_count) == (False, None, 1)


@pytest.mark.django_db
def test_a_queue_removed_from_settings_is_the_schedule_error():
    schedule = make("old-queue", queue_name="retired")
    beat_at(NOW).enqueue_due(NOW)
    schedule.refresh_from_db()
    assert "retired" in schedule.last_error
    assert not Job.objects.exists()
    # Fixed in the admin: the next run is enqueued and the flag cleared.
    Schedule.objects.filter(pk=schedule.pk).update(queue_name="default")
    later = NOW + timedelta(minutes=1)
    beat_at(later).enqueue_due(later)
    schedule.refresh_from_db()
    assert schedule.last_error == "" and Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_runbeat_once_syncs_and_enqueues(monkeypatch):
    import signal

    from django.core.management import call_command

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(periodic_module, "_declared", {})
    # A one-off run: an every-minute cron due a second ago is due twice when
    # a minute starts within the misfire grace.
    run_at = timezone.now() - timedelta(seconds=1)
    due = make("due", cron="", run_at=run_at, next_run_at=run_at)
    try:
        call_command("runbeat", "--once")
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert list(Job.objects.values_list("schedule_id", flat=True)) == [due.pk]


# --- the model form path (Schedule.clean) -----------------------------------------------------


@pytest.mark.django_db
def test_clean_reports_every_bad_field():
    schedule = Schedule(
        name="x", task_path="os.system", cron="61 * * * *", time_zone="Nowhere/City"
    )
    with pytest.raises(ValidationError) as raised:
        schedule.full_clean()
    assert {"task_path", "cron", "time_zone"} <= set(raised.value.message_dict)


@pytest.mark.django_db
def test_clean_computes_next_run_and_an_edit_recomputes_it():
    schedule = Schedule(
        name="daily", task_path="tests.tasks.noop", cron="0 3 * * *", time_zone="Europe/Berlin"
    )
    schedule.full_clean()
    assert schedule.next_run_at is not None
    assert schedule.next_run_at.astimezone(
        datetime.now().astimezone().tzinfo
    ) > timezone.now() - timedelta(days=1)
    schedule.save()
    schedule.cron = "0 4 * * *"
    schedule.full_clean()
    assert schedule.next_run_at.astimezone(UTC).hour in (2, 3)  # 04:00 Berlin


# --- several beats at once ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_beats_enqueue_each_run_once():
    make("every-second", cron="", interval=timedelta(seconds=1), next_run_at=NOW)
    start = threading.Barrier(3)
    errors = []

    def run_beat(offset):
        try:
            start.wait()
            for step in range(10):
                now = NOW + timedelta(seconds=step, milliseconds=offset)
                beat_at(now).enqueue_due(now)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_beat, args=(ms,)) for ms in (0, 3, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    times = sorted(Job.objects.values_list("scheduled_at", flat=True))
    assert times == [NOW + timedelta(seconds=s) for s in range(10)]


@pytest.mark.django_db(transaction=True)
def test_beat_survives_a_database_error(monkeypatch, caplog):
    monkeypatch.setattr(outages, "DELAYS", (0.01,))
    beat = beat_at(NOW)
    calls = []
    real_tick = beat.tick

    def flaky_tick():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        beat.stop()
        return real_tick()

    beat.tick = flaky_tick
    make("fine")
    beat.run()
    assert len(calls) == 2
    assert "tick failed" in caplog.text
    assert Job.objects.count() == 1


def test_beat_backs_off_like_the_workers_and_logs_each_kind_of_failure_once(monkeypatch, caplog):
    beat = beat_at(NOW)
    waits = []
    failures = 7

    def failing_tick():
        if len(waits) == failures:
            beat.stopping.set()
            return 1.0
        if len(waits) == failures - 1:
            raise ValueError("a new kind of failure")
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(beat.stopping, "wait", waits.append)
    beat.tick = failing_tick
    beat.run()

    # 0.25, 0.5, 1, 2, then 5 s: back within 5 s of the database, however
    # long it was away, as the workers are.
    assert waits == [outages.delay(n) for n in range(1, failures + 1)] + [1.0]
    assert max(waits) == 5
    # A traceback for the outage, and one for the new kind of failure.
    assert caplog.text.count("Traceback") == 2
    assert caplog.text.count("tick failed again (OperationalError") == failures - 2
    assert "ticking again" in caplog.text


# --- schedules declared in code -----------------------------------------------------------


@pytest.fixture
def declared(monkeypatch, settings):
    monkeypatch.setattr(periodic_module, "_declared", {})
    settings.DJTASKS = {"SCHEDULES": {}}
    return settings


@pytest.mark.django_db
def test_sync_creates_updates_and_disables_code_schedules(declared):
    from djtasks import periodic
    from tests import tasks

    periodic(cron="*/5 * * * *", name="five", args=[2, 3])(tasks.add)
    declared.DJTASKS = {
        "SCHEDULES": {"nightly": {"task": "tests.tasks.send_email", "cron": "0 3 * * *"}}
    }
    admin_made = make("admin-made", next_run_at=NOW)
    periodic_module.sync("default", NOW + timedelta(seconds=1))
    five = Schedule.objects.get(name="five")
    assert (five.declared_in_code, five.task_path, five.args) == (True, "tests.tasks.add", [2, 3])
    assert five.next_run_at == NOW + timedelta(minutes=5)
    nightly = Schedule.objects.get(name="nightly")
    # Queue and priority default to the task's (send_email: emails, 10).
    assert (nightly.declared_in_code, nightly.queue_name, nightly.priority) == (True, "emails", 10)

    # The code changes: "five" runs every 10 minutes, "nightly" is gone.
    periodic_module._declared.clear()
    periodic(cron="*/10 * * * *", name="five", args=[2, 3])(tasks.add)
    declared.DJTASKS = {"SCHEDULES": {}}
    periodic_module.sync("default", NOW + timedelta(seconds=1))
    five.refresh_from_db()
    assert (five.cron, five.next_run_at) == ("*/10 * * * *", NOW + timedelta(minutes=10))
    nightly = Schedule.objects.get(name="nightly")
    assert not nightly.enabled and nightly.last_error == periodic_module.REMOVED_NOTE
    admin_made.refresh_from_db()
    assert admin_made.enabled and not admin_made.declared_in_code


@pytest.mark.django_db
def test_sync_leaves_an_admin_row_of_the_same_name_alone(declared):
    make("clash", cron="0 0 * * *")
    declared.DJTASKS = {"SCHEDULES": {"clash": {"task": "tests.tasks.noop", "cron": "* * * * *"}}}
    periodic_module.sync("default", NOW + timedelta(seconds=1))
    clash = Schedule.objects.get(name="clash")
    assert (clash.cron, clash.declared_in_code) == ("0 0 * * *", False)


@pytest.mark.django_db
def test_sync_writes_a_declaration_only_into_its_tasks_database(declared):
    # "default" keeps its jobs elsewhere now (as a backend on a second
    # database would): tests.tasks.* and djtasks' own prune task are not
    # this database's to schedule; "second" stays here.
    normal = declared.TASKS
    elsewhere = {**normal["default"], "OPTIONS": {"DATABASE": "elsewhere"}}
    declared.TASKS = {**normal, "default": elsewhere}
    declared.DJTASKS = {
        "SCHEDULES": {
            "moved": {"task": "tests.tasks.noop", "cron": "* * * * *"},
            "unknown": {"task": "tests.tasks.no_such_task", "cron": "* * * * *"},
        }
    }
    # Written here by a beat from before the rule.
    make("moved", task_path="tests.tasks.noop", declared_in_code=True)

    periodic_module.sync("default", NOW + timedelta(seconds=1))

    moved = Schedule.objects.get(name="moved")
    assert (moved.enabled, moved.last_error) == (False, periodic_module.ELSEWHERE_NOTE)
    # An unknown task is written anyway: the beat flags it when it is due.
    assert set(Schedule.objects.values_list("name", flat=True)) == {"moved", "unknown"}

    # Back on this database: the declaration takes its row up again.
    declared.TASKS = normal
    periodic_module.sync("default", NOW + timedelta(seconds=1))

    moved.refresh_from_db()
    assert (moved.enabled, moved.last_error) == (True, "")
    assert Schedule.objects.filter(name="djtasks.prune").exists()


def test_bad_declarations_fail_at_import(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from djtasks import periodic
    from tests import tasks

    monkeypatch.setattr(periodic_module, "_declared", {})
    with pytest.raises(ImproperlyConfigured, match="not a cron expression"):
        periodic(cron="every day")(tasks.noop)
    with pytest.raises(ImproperlyConfigured, match="exactly one"):
        periodic(cron="* * * * *", interval=5)(tasks.noop)
    with pytest.raises(TypeError, match="on top of @task"):
        periodic(interval=5)(lambda: None)


@pytest.mark.django_db(transaction=True)
def test_beat_embedded_in_a_thread_stops_on_request(monkeypatch):
    monkeypatch.setattr(periodic_module, "_declared", {})
    # A one-off run: an every-minute cron would run twice when the test
    # crosses a minute boundary.
    run_at = timezone.now() - timedelta(seconds=1)
    due = make("due", cron="", run_at=run_at, next_run_at=run_at)
    beat, thread = scheduler.start_thread(max_sleep=0.05)
    try:
        deadline = timezone.now() + timedelta(seconds=10)
        while not Job.objects.exists() and timezone.now() < deadline:
            thread.join(0.05)
    finally:
        beat.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert list(Job.objects.values_list("schedule_id", flat=True)) == [due.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("day", [(2026, 3, 28), (2026, 10, 24)], ids=["spring", "fall"])
def test_a_0230_berlin_schedule_runs_once_per_day_over_a_dst_night(day):
    """A beat ticking every 5 minutes (controlled clock) across the DST change."""
    schedule = Schedule(
        name="night", task_path="tests.tasks.noop", cron="30 2 * * *", time_zone="Europe/Berlin"
    )
    start = datetime(*day, 12, tzinfo=UTC)
    schedule.next_run_at = Timing.of(schedule).first_run(start)
    schedule.save()
    now = start
    while now < start + timedelta(days=3):
        beat_at(now).enqueue_due(now)
        now += timedelta(minutes=5)
    local = [
        run.astimezone(ZoneInfo("Europe/Berlin")).strftime("%d %H:%M %Z")
        for run in Job.objects.order_by("scheduled_at").values_list("scheduled_at", flat=True)
    ]
    if day[1] == 3:
        assert local == ["29 03:00 CEST", "30 02:30 CEST", "31 02:30 CEST"]
    else:
        assert local == ["25 02:30 CEST", "26 02:30 CET", "27 02:30 CET"]
