"""The admin's rendering helpers: one time format, trimmed tracebacks, bars, paths."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from djtasks.admin.display import (
    breakable_path,
    error_message,
    format_time,
    progress_bar,
    short_time,
    trimmed_traceback,
)
from djtasks.admin.schedule_form import parse_interval

MOMENT = datetime(2026, 12, 2, 9, 10, 6, 123456, tzinfo=UTC)

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/djtasks/worker/executor.py", line 66, in _run\n'
    "    value = self._call(task, job, result)\n"
    '  File "/srv/app/djtasks/worker/executor.py", line 96, in _call\n'
    "    return func(*args, **job.kwargs)\n"
    "             ^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "/srv/app/shop/tasks.py", line 52, in charge\n'
    "    raise ValueError(message)\n"
    "ValueError: card declined\n"
    "second line of the message\n"
)


def test_one_time_format_to_the_second_with_the_zone():
    with timezone.override(ZoneInfo("Europe/Berlin")):
        assert format_time(MOMENT) == "2026-12-02 10:10:06 CET"
    assert format_time(MOMENT, ZoneInfo("UTC")) == "2026-12-02 09:10:06 UTC"
    assert format_time(None) == "-"


def test_short_time_may_wrap_between_date_and_time_only():
    with timezone.override(ZoneInfo("UTC")):
        html = str(short_time(MOMENT))
    assert html.count('class="djtasks-nowrap"') == 2
    assert ">2026-12-02</span> <span" in html and "09:10:06 UTC" in html


def test_the_worker_frames_are_trimmed_the_task_frames_kept():
    shown = trimmed_traceback(TRACEBACK)
    assert "djtasks/worker/executor.py" not in shown and "self._call" not in shown
    assert "^^^^" not in shown  # the marker line belonged to a trimmed frame
    assert '  File "/srv/app/shop/tasks.py", line 52, in charge\n' in shown
    assert shown.startswith("Traceback (most recent call last):\n")
    assert shown.endswith("ValueError: card declined\nsecond line of the message\n")


def test_the_message_is_the_first_line_after_the_class():
    entry = {"exception_class_path": "builtins.ValueError", "traceback": TRACEBACK}
    assert error_message(entry) == "card declined"
    qualified = {
        "exception_class_path": "shop.errors.Declined",
        "traceback": "Traceback ...\nshop.errors.Declined: no funds\n",
    }
    assert error_message(qualified) == "no funds"
    assert error_message({"exception_class_path": "builtins.KeyError", "traceback": "..."}) == ""


def test_task_paths_break_after_dots_and_underscores():
    html = str(breakable_path("shop.tasks.send_<b>invoice"))
    assert html == "shop.<wbr>tasks.<wbr>send_<wbr>&lt;b&gt;invoice"


@pytest.mark.parametrize(
    ("progress", "striped"),
    [
        ({"current": 40, "total": 40, "message": ""}, False),
        ({"current": 3, "total": 10, "message": ""}, False),
        ({"current": 3, "total": None, "message": ""}, True),
    ],
)
def test_only_an_unknown_total_is_striped(progress, striped):
    assert ("djtasks-progress-unknown" in str(progress_bar(progress))) is striped


def test_no_bar_for_a_job_that_never_reported_progress():
    assert progress_bar(None) == "-"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1 h 15 m", timedelta(hours=1, minutes=15)),
        ("00:05:00", timedelta(minutes=5)),
        ("1 day, 2:00:00", timedelta(days=1, hours=2)),
        ("5 minutes", None),
        ("m5", None),
    ],
)
def test_intervals_as_people_write_them(text, expected):
    assert parse_interval(text) == expected
