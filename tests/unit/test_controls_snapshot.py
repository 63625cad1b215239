"""The pieces of the stored controls that need no database."""

import threading
from datetime import timedelta

from djtasks import controls
from djtasks.admin.queue_rows import age_text
from djtasks.limits import Rate
from djtasks.worker.wakeup import Doorbell, Listener


def test_a_controls_notify_drops_the_cached_snapshot_and_rings():
    controls._cache._snapshots["default"] = (float("inf"), controls.NONE)
    doorbell = Doorbell()
    listener = Listener("default", ["emails"], doorbell, threading.Event())

    listener._on_notify(controls.CHANGED_PAYLOAD)

    assert controls._cache._snapshots == {}
    assert doorbell.rings == 1


def test_stored_overrides_win_over_the_setting(settings):
    settings.DJTASKS = {"QUEUE_RATE_LIMITS": {"emails": "10/s", "other": "1/m"}}
    stored = controls.Controls(queue_rate_overrides={"emails": Rate(2, 60)})

    assert stored.queue_rates() == {"emails": Rate(2, 60), "other": Rate(1, 60)}


def test_paused_and_rate_limited_tasks_are_diverted_from_the_plain_claim():
    stored = controls.Controls(paused_tasks=frozenset({"a"}), task_rates={"b": Rate(1, 1)})
    assert stored.diverted_tasks() == {"a", "b"}
    assert controls.NONE.diverted_tasks() == frozenset()


def test_ages_read_like_people_say_them():
    assert age_text(timedelta(seconds=6.5)) == "6 s"
    assert age_text(timedelta(minutes=3, seconds=5)) == "3 min 5 s"
    assert age_text(timedelta(hours=2, minutes=10)) == "2 h 10 min"
    assert age_text(timedelta(days=3, hours=4)) == "3 d 4 h"
