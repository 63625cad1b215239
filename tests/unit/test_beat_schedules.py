"""Next-run computation: cron in a time zone (DST), interval, one-off, start/end, misfires.

Every function takes the time as an argument: the clock is the test's.
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from djtasks.beat.timing import (
    Timing,
    due_runs,
    next_cron_time,
    next_runs,
    parse_cron,
    validate_call,
    validate_timing,
)

BERLIN = ZoneInfo("Europe/Berlin")
GRACE = timedelta(seconds=10)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def berlin(*args, fold=0):
    # In UTC: an aware time in a repeated hour never equals one in another
    # zone (PEP 495), so compare instants.
    return datetime(*args, tzinfo=BERLIN, fold=fold).astimezone(UTC)


def walk(expression, start, count, zone="Europe/Berlin"):
    times, moment = [], start
    for _ in range(count):
        moment = next_cron_time(expression, zone, moment)
        times.append(moment)
    return times


def schedule(**fields):
    defaults = {
        "cron": "",
        "interval": None,
        "run_at": None,
        "time_zone": "UTC",
        "start_at": None,
        "end_at": None,
        "next_run_at": None,
        "misfire_policy": "latest",
        "misfire_cap": 100,
    }
    return SimpleNamespace(**{**defaults, **fields})


# --- cron -------------------------------------------------------------------------


def test_cron_runs_in_the_schedule_time_zone_and_returns_utc():
    run = next_cron_time("0 9 * * *", "Europe/Berlin", utc(2026, 6, 1, 12))
    assert run == utc(2026, 6, 2, 7)  # 09:00 CEST
    assert run.tzinfo == UTC


def test_cron_is_strictly_after():
    assert next_cron_time("*/5 * * * *", "UTC", utc(2026, 1, 1, 0, 5)) == utc(2026, 1, 1, 0, 10)


def test_daily_0230_on_spring_forward_runs_once_at_0300():
    runs = walk("30 2 * * *", utc(2026, 3, 27, 12), 3)
    assert runs == [
        berlin(2026, 3, 28, 2, 30),
        # 02:30 does not exist on 29 March: the run comes when clocks jump.
        berlin(2026, 3, 29, 3, 0),
        berlin(2026, 3, 30, 2, 30),
    ]


def test_daily_0230_on_fall_back_runs_once_at_the_first_0230():
    runs = walk("30 2 * * *", utc(2026, 10, 23, 12), 3)
    assert runs == [
        berlin(2026, 10, 24, 2, 30),
        berlin(2026, 10, 25, 2, 30, fold=0),  # CEST; the CET 02:30 is not a second run
        berlin(2026, 10, 26, 2, 30),
    ]
    assert [run.astimezone(BERLIN).isoformat() for run in runs] == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_hourly_keeps_real_time_through_the_repeated_hour():
    runs = walk("0 * * * *", utc(2026, 10, 24, 22, 10), 4)
    assert runs == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    ]


def test_every_30_minutes_across_the_spring_forward_gap_folds_skipped_times():
    runs = walk("*/30 * * * *", utc(2026, 3, 29, 0, 10), 3)
    # 02:00 and 02:30 do not exist; both are the 03:00 run.
    assert runs == [
        berlin(2026, 3, 29, 1, 30),
        berlin(2026, 3, 29, 3, 0),
        berlin(2026, 3, 29, 3, 30),
    ]


def test_starting_inside_the_first_pass_of_a_repeated_hour_sees_the_second():
    after = berlin(2026, 10, 25, 2, 40, fold=0)
    assert next_cron_time("*/30 * * * *", "Europe/Berlin", after) == berlin(
        2026, 10, 25, 2, 0, fold=1
    )
    # A fixed-hour expression already ran at 02:30 CEST: next is tomorrow.
    assert next_cron_time("30 2 * * *", "Europe/Berlin", after) == berlin(2026, 10, 26, 2, 30)


def test_cron_aliases_and_day_fields():
    assert next_cron_time("@daily", "UTC", utc(2026, 1, 1, 5)) == utc(2026, 1, 2)
    # 2026-01-05 is a Monday.
    assert next_cron_time("0 8 * * 1", "UTC", utc(2026, 1, 1)) == utc(2026, 1, 5, 8)


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "not cron", "", "* * * * * *"])
def test_invalid_cron_is_a_validation_error(expression):
    with pytest.raises(ValidationError):
        parse_cron(expression)


# --- interval, one-off, start / end --------------------------------------------------------


def test_interval_runs_on_a_grid_from_its_anchor():
    timing = Timing(interval=timedelta(minutes=10), anchor=utc(2026, 1, 1, 0, 0))
    assert timing.next_after(utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 1, 0, 10)
    assert timing.next_after(utc(2026, 1, 1, 0, 33)) == utc(2026, 1, 1, 0, 40)


def test_new_interval_runs_one_interval_from_now():
    timing = Timing(interval=timedelta(seconds=30))
    assert timing.first_run(utc(2026, 1, 1, 12)) == utc(2026, 1, 1, 12, 0, 30)


def test_interval_with_start_runs_at_start_then_on_its_grid():
    timing = Timing(interval=timedelta(hours=1), start_at=utc(2026, 2, 1, 9, 15))
    assert timing.first_run(utc(2026, 1, 1)) == utc(2026, 2, 1, 9, 15)
    assert timing.first_run(utc(2026, 2, 1, 11)) == utc(2026, 2, 1, 11, 15)


def test_one_off_runs_once():
    timing = Timing(run_at=utc(2026, 5, 1, 12))
    assert timing.first_run(utc(2026, 5, 1)) == utc(2026, 5, 1, 12)
    assert timing.next_after(utc(2026, 5, 1, 12)) is None


def test_cron_respects_start_and_end():
    timing = Timing(cron="0 0 * * *", start_at=utc(2026, 3, 10, 12), end_at=utc(2026, 3, 12))
    assert timing.first_run(utc(2026, 1, 1)) == utc(2026, 3, 11)
    assert timing.next_after(utc(2026, 3, 11)) == utc(2026, 3, 12)  # end is inclusive
    assert timing.next_after(utc(2026, 3, 12)) is None


def test_next_runs_preview_is_in_the_schedule_zone():
    preview = next_runs(
        schedule(cron="30 2 * * *", time_zone="Europe/Berlin"), 2, utc(2026, 3, 28, 12)
    )
    assert [run.isoformat() for run in preview] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


# --- misfires -------------------------------------------------------------------------------


def test_a_run_slightly_late_is_on_time_for_every_policy():
    for policy in ("latest", "all", "skip"):
        item = schedule(
            interval=timedelta(seconds=1),
            next_run_at=utc(2026, 1, 1, 0, 0, 0),
            misfire_policy=policy,
        )
        runs, next_run = due_runs(item, utc(2026, 1, 1, 0, 0, 2, 500_000), GRACE)
        # Three runs due (0 s, 1 s, 2 s), all within the grace: none lost.
        assert runs == [utc(2026, 1, 1, 0, 0, s) for s in (0, 1, 2)], policy
        assert next_run == utc(2026, 1, 1, 0, 0, 3)


def test_misfire_latest_runs_once_for_the_latest_missed_time():
    item = schedule(cron="0 * * * *", next_run_at=utc(2026, 1, 1, 0))
    runs, next_run = due_runs(item, utc(2026, 1, 1, 5, 30), GRACE)
    assert runs == [utc(2026, 1, 1, 5)]
    assert next_run == utc(2026, 1, 1, 6)


def test_misfire_all_runs_every_missed_time_up_to_the_cap():
    item = schedule(
        cron="0 * * * *", next_run_at=utc(2026, 1, 1, 0), misfire_policy="all", misfire_cap=3
    )
    runs, next_run = due_runs(item, utc(2026, 1, 1, 5, 30), GRACE)
    assert runs == [utc(2026, 1, 1, 3), utc(2026, 1, 1, 4), utc(2026, 1, 1, 5)]
    assert next_run == utc(2026, 1, 1, 6)
    item.misfire_cap = 100
    runs, _ = due_runs(item, utc(2026, 1, 1, 5, 30), GRACE)
    assert runs == [utc(2026, 1, 1, hour) for hour in range(6)]


def test_misfire_skip_drops_missed_runs():
    item = schedule(cron="0 * * * *", next_run_at=utc(2026, 1, 1, 0), misfire_policy="skip")
    runs, next_run = due_runs(item, utc(2026, 1, 1, 5, 30), GRACE)
    assert runs == []
    assert next_run == utc(2026, 1, 1, 6)


def test_a_long_outage_does_not_walk_every_missed_minute():
    item = schedule(
        cron="* * * * *", next_run_at=utc(2025, 1, 1), misfire_policy="all", misfire_cap=5
    )
    runs, _ = due_runs(item, utc(2026, 1, 1, 0, 0, 30), GRACE)
    # 00:00 is 30 s late (past the grace): the 5th of the latest missed runs.
    assert runs == [utc(2025, 12, 31, 23, 56 + m) for m in range(4)] + [utc(2026, 1, 1)]


def test_missed_one_off_follows_the_policy():
    late = {"run_at": utc(2026, 1, 1), "next_run_at": utc(2026, 1, 1)}
    assert due_runs(schedule(**late), utc(2026, 1, 2), GRACE) == ([utc(2026, 1, 1)], None)
    assert due_runs(schedule(**late, misfire_policy="skip"), utc(2026, 1, 2), GRACE) == ([], None)


def test_misfire_across_the_fall_back_night():
    item = schedule(
        cron="30 2 * * *",
        time_zone="Europe/Berlin",
        next_run_at=berlin(2026, 10, 24, 2, 30),
        misfire_policy="all",
    )
    runs, next_run = due_runs(item, berlin(2026, 10, 26, 12), GRACE)
    assert runs == [
        berlin(2026, 10, 24, 2, 30),
        berlin(2026, 10, 25, 2, 30),
        berlin(2026, 10, 26, 2, 30),
    ]
    assert next_run == berlin(2026, 10, 27, 2, 30)


# --- validation -----------------------------------------------------------------------------


def test_exactly_one_of_cron_interval_run_at():
    assert "__all__" in validate_timing("", None, None, "UTC", None, None)
    assert "__all__" in validate_timing("* * * * *", timedelta(1), None, "UTC", None, None)
    assert validate_timing("* * * * *", None, None, "UTC", None, None) == {}


def test_timing_errors_name_the_field():
    errors = validate_timing(
        "99 * * * *", None, None, "Mars/Olympus", utc(2026, 2, 1), utc(2026, 1, 1)
    )
    assert set(errors) == {"cron", "time_zone", "end_at"}
    assert "Mars/Olympus" in errors["time_zone"]
    assert validate_timing("", timedelta(0), None, "UTC", None, None) == {
        "interval": "The interval must be positive."
    }


def test_unregistered_task_is_an_error():
    errors = validate_call("os.system", [], {}, "default", 0)
    assert errors == {"task_path": "'os.system' is not a registered task."}


def test_call_errors():
    errors = validate_call("tests.tasks.noop", {"a": 1}, [], "no-such-queue", 0)
    assert set(errors) == {"args", "kwargs", "queue_name"}
    assert validate_call("tests.tasks.add", [1, 2], {}, "default", 0) == {}
    assert "priority" in validate_call("tests.tasks.noop", [], {}, "default", 500)
