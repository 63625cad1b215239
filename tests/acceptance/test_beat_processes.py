"""Real runbeat processes: several beats, a killed beat, an admin edit; exactly once."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from djtasks.models import Job, Schedule
from tests.acceptance.beat_processes import BeatProcess, wait_for

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
    # Every beat took part (the lock decides who, not a leader).
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


def test_an_admin_edit_is_picked_up_without_restart(beats):
    schedule = every_second()
    (beat,) = beats(1)
    wait_for(lambda: len(run_times(schedule)) >= 2, timeout=20)

    # What the admin does on save: validate the form (Schedule.clean
    # recomputes next_run_at for the new timing), then save the row.
    schedule.refresh_from_db()
    schedule.args = [20, 22]
    schedule.interval = 2 * SECOND
    schedule.full_clean()
    schedule.save()
    edited_at = timezone.now()

    def new_runs():
        return list(Job.objects.filter(schedule=schedule, args=[20, 22]).order_by("scheduled_at"))

    runs = wait_for(lambda: len(new_runs()) >= 2 and new_runs(), timeout=10)
    assert runs[1].scheduled_at - runs[0].scheduled_at == 2 * SECOND
    assert runs[0].scheduled_at <= edited_at + 3 * SECOND

    schedule.refresh_from_db()
    schedule.enabled = False
    schedule.full_clean()
    schedule.save()
    time.sleep(1)  # a tick in flight may still commit one run
    count = Job.objects.filter(schedule=schedule).count()
    time.sleep(3)
    assert Job.objects.filter(schedule=schedule).count() == count
    assert beat.terminate() == 0
