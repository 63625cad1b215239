"""Real runbeat processes: several beats, a killed beat, an admin edit; exactly once."""

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.models import Job, Schedule
from tests.acceptance.beat_processes import BeatProcess, wait_for
from tests.integration.test_admin_schedules import form_data

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SECOND = timedelta(seconds=1)


@pytest.fixture
def beats():
    started = []

    def start(count=1):
        new = [BeatProcess() for _ in range(count)]
        started.extend(new)
        return new

    yield start
    for beat in started:
        beat.close()


def every_second(**fields):
    now = timezone.now().replace(microsecond=0)
    return Schedule.objects.create(
        name="every-second",
        task_path="tests.tasks.add",
        args=[1, 2],
        interval=SECOND,
        next_run_at=now + 2 * SECOND,
        **fields,
    )


def run_times(schedule):
    return list(
        Job.objects.filter(schedule=schedule)
        .order_by("scheduled_at")
        .values_list("scheduled_at", flat=True)
    )


def assert_one_job_per_tick(times, at_least):
    assert len(times) >= at_least, times
    assert len(set(times)) == len(times)
    gaps = {later - earlier for earlier, later in zip(times, times[1:])}
    assert gaps == {SECOND}, f"runs missing or doubled: {times}"


def test_three_beats_enqueue_each_tick_exactly_once(beats):
    schedule = every_second()
    processes = beats(3)
    wait_for(lambda: Job.objects.filter(schedule=schedule).exists(), timeout=20)
    time.sleep(10)
    assert [beat.terminate() for beat in processes] == [0, 0, 0]
    assert_one_job_per_tick(run_times(schedule), at_least=8)
    schedule.refresh_from_db()
    assert schedule.run_count == len(run_times(schedule))
    # Each beat ran its loop to the end and stopped cleanly; which beat
    # enqueues a given tick is up to the row lock, not a leader.
    outputs = [beat.output() for beat in processes]
    assert all("beat" in output and "stopped" in output for output in outputs), outputs


def test_a_beat_killed_mid_run_loses_and_doubles_nothing(beats):
    schedule = every_second()
    first, second, third = beats(3)
    wait_for(lambda: len(run_times(schedule)) >= 3, timeout=20)
    first.kill()
    time.sleep(2)
    replacement = BeatProcess()
    try:
        time.sleep(4)
        assert [beat.terminate() for beat in (second, third, replacement)] == [0, 0, 0]
    finally:
        replacement.close()
    assert first.process.returncode == -9
    assert_one_job_per_tick(run_times(schedule), at_least=8)


def save_in_admin(client, schedule, **changes):
    """Post the schedule's admin change form, as a person editing it would."""
    data = form_data(
        name=schedule.name,
        args="[1, 2]",
        cron="",
        interval="00:00:01",
        time_zone=schedule.time_zone,
    )
    enabled = changes.pop("enabled")
    data.update(changes)
    if not enabled:
        del data["enabled"]  # an unticked checkbox is not posted
    url = reverse("admin:djtasks_schedule_change", args=[schedule.pk])
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_an_admin_edit_is_picked_up_without_restart(beats, admin_client):
    schedule = every_second()
    (beat,) = beats(1)
    wait_for(lambda: len(run_times(schedule)) >= 2, timeout=20)

    save_in_admin(admin_client, schedule, args="[20, 22]", interval="00:00:02", enabled=True)
    edited_at = timezone.now()

    def new_runs():
        return list(Job.objects.filter(schedule=schedule, args=[20, 22]).order_by("scheduled_at"))

    runs = wait_for(lambda: len(new_runs()) >= 2 and new_runs(), timeout=10)
    assert runs[1].scheduled_at - runs[0].scheduled_at == 2 * SECOND
    assert runs[0].scheduled_at <= edited_at + 3 * SECOND

    save_in_admin(admin_client, schedule, args="[20, 22]", interval="00:00:02", enabled=False)
    time.sleep(1)  # a tick in flight may still commit one run
    count = Job.objects.filter(schedule=schedule).count()
    time.sleep(3)
    assert Job.objects.filter(schedule=schedule).count() == count
    assert beat.terminate() == 0
