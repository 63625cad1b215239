"""Pruning settings, the built-in schedule declaration and the command's argument types."""

import argparse
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from djtasks.beat import declared
from djtasks.management.arguments import duration
from djtasks.management.commands.prunejobs import _span
from djtasks.prune import SCHEDULE_NAME, TASK_PATH, builtin_schedules, job_retention


def test_default_retention_per_status(settings):
    settings.DJTASKS = {}
    assert job_retention() == {
        "SUCCESSFUL": timedelta(days=7),
        "FAILED": timedelta(days=30),
        "CANCELLED": timedelta(days=7),
        "EXPIRED": timedelta(days=7),
    }


def test_a_partial_setting_keeps_the_other_defaults_and_takes_seconds(settings):
    settings.DJTASKS = {"RETENTION": {"SUCCESSFUL": 3600, "FAILED": None}}
    retention = job_retention()
    assert retention["SUCCESSFUL"] == timedelta(hours=1)
    assert retention["FAILED"] is None
    assert retention["EXPIRED"] == timedelta(days=7)


def test_older_than_replaces_the_retention_of_the_chosen_statuses(settings):
    settings.DJTASKS = {"RETENTION": {"FAILED": None}}
    assert job_retention(["failed", "EXPIRED"], timedelta(hours=2)) == {
        "FAILED": timedelta(hours=2),
        "EXPIRED": timedelta(hours=2),
    }


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ({"SUCCESS": timedelta(days=1)}, "names SUCCESS"),
        ({"FAILED": "30 days"}, "RETENTION'\\]\\['FAILED'\\] must be a timedelta"),
        ({"FAILED": timedelta(days=-1)}, "at least zero"),
    ],
)
def test_bad_retention_settings_are_named(settings, retention, message):
    settings.DJTASKS = {"RETENTION": retention}
    with pytest.raises(ImproperlyConfigured, match=message):
        job_retention()


def test_only_finished_statuses_can_be_pruned():
    with pytest.raises(ValueError, match="RUNNING is not one of"):
        job_retention(["RUNNING"])


def test_the_builtin_schedule_follows_prune_schedule(settings):
    settings.DJTASKS = {}
    assert builtin_schedules() == {
        SCHEDULE_NAME: {"task": TASK_PATH, "cron": "17 * * * *", "skip_if_running": True}
    }
    settings.DJTASKS = {"PRUNE_SCHEDULE": "0 4 * * *"}
    assert builtin_schedules()[SCHEDULE_NAME]["cron"] == "0 4 * * *"
    settings.DJTASKS = {"PRUNE_SCHEDULE": None}
    assert builtin_schedules() == {}


def test_declarations_include_the_builtin_and_a_setting_overrides_it(settings, monkeypatch):
    monkeypatch.setattr(declared, "_declared", {})
    settings.DJTASKS = {}
    assert declared.declarations()[SCHEDULE_NAME]["task"] == TASK_PATH
    mine = {"task": TASK_PATH, "cron": "0 3 * * *", "queue_name": "other"}
    settings.DJTASKS = {"SCHEDULES": {SCHEDULE_NAME: mine}}
    assert declared.declarations()[SCHEDULE_NAME] == mine


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12H", timedelta(hours=12)),
        ("1.5d", timedelta(hours=36)),
        ("2w", timedelta(days=14)),
        ("0s", timedelta(0)),
    ],
)
def test_duration_argument(text, expected):
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "-1d", "nand", "infh", "7 days", ""])
def test_bad_duration_arguments_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration(text)


def test_spans_are_shown_in_their_largest_whole_unit():
    assert _span(timedelta(days=7)) == "7 days"
    assert _span(timedelta(hours=36)) == "36 hours"
    assert _span(timedelta(minutes=1)) == "1 minute"
    assert _span(timedelta(seconds=90)) == "90 seconds"
    assert _span(timedelta(0)) == "0 seconds"
