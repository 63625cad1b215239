"""The worker's small parts, without processes: doorbell, watchdog, sizing, parsing."""

import argparse
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from django.utils import timezone

from djtasks.management.arguments import positive_float, positive_int
from djtasks.management.commands.runworker import queue_list
from djtasks.worker.cancel_watch import CancelWatch
from djtasks.worker.claim_thread import BatchSizer, TaskBudget
from djtasks.worker.process import rss_kb
from djtasks.worker.supervisor import describe_exit
from djtasks.worker.wakeup import Doorbell, parse_payload
from djtasks.worker.watchdog import JobTimeout, Slot, inspect, timeout_outcome


def claimed(**fields):
    values = {
        "id": uuid.uuid4(),
        "task_path": "tests.tasks.noop",
        "queue_name": "default",
        "timeout": None,
        "attempts": 1,
        "max_attempts": 1,
        "retry_policy": {},
        "workflow_id": None,
        # As the claim sets it: when this attempt started.
        "last_attempted_at": timezone.now(),
    }
    values.update(fields)
    return SimpleNamespace(**values)


def watch(requested=None):
    cancel_watch = CancelWatch("default", "w")
    cancel_watch.requested = requested or {}
    return cancel_watch


# --- doorbell ------------------------------------------------------------------


def test_doorbell_ring_wakes_a_waiting_thread():
    bell = Doorbell()
    seen = bell.rings
    woke = threading.Event()

    def sleeper():
        bell.wait(seen, timeout=30)
        woke.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    bell.ring()
    thread.join(5)
    assert woke.is_set()


def test_doorbell_does_not_wait_after_a_ring_it_has_not_seen():
    bell = Doorbell()
    seen = bell.rings
    bell.ring()  # rang during the (empty) claim
    started = time.monotonic()
    bell.wait(seen, timeout=30)
    assert time.monotonic() - started < 5


def test_doorbell_wakes_when_a_deferred_job_is_due():
    bell = Doorbell()
    bell.due(time.time() + 0.2)
    started = time.monotonic()
    bell.wait(bell.rings, timeout=30)
    assert 0.1 < time.monotonic() - started < 5


def test_doorbell_waits_the_poll_interval_when_nothing_happens():
    bell = Doorbell()
    started = time.monotonic()
    bell.wait(bell.rings, timeout=0.2)
    assert time.monotonic() - started >= 0.19


# --- NOTIFY payloads --------------------------------------------------------------


def test_payload_of_our_queue_gives_its_due_time():
    assert parse_payload("emails 1700000000.25", {"emails"}) == 1700000000.25


def test_payload_of_another_queue_is_ignored():
    assert parse_payload("other 1700000000", {"default"}) is None


def test_ping_payload_is_ignored():
    assert parse_payload("ping abc", {"default"}) is None


def test_unknown_payload_means_look_now():
    assert parse_payload("", {"default"}) == 0.0
    assert parse_payload("default soon", {"default"}) == 0.0


# --- watchdog ----------------------------------------------------------------------


def test_watchdog_finds_a_job_over_its_timeout():
    slot = Slot()
    job = claimed(timeout=1.0)
    slot.current = (job, time.monotonic() - 2)
    verdict = inspect([Slot(), slot], watch(), cancel_grace=10)
    assert verdict.job is job and verdict.reason == "timeout"


def test_watchdog_leaves_jobs_within_their_timeout_or_without_one():
    within, without = Slot(), Slot()
    within.current = (claimed(timeout=60.0), time.monotonic() - 2)
    without.current = (claimed(), time.monotonic() - 3600)
    assert inspect([within, without], watch(), cancel_grace=10) is None


def test_watchdog_stops_a_cancelled_job_only_after_the_grace():
    job = claimed()
    slot = Slot()
    slot.current = (job, time.monotonic())
    assert inspect([slot], watch({job.id: time.time() - 1}), cancel_grace=5) is None
    verdict = inspect([slot], watch({job.id: time.time() - 6}), cancel_grace=5)
    assert verdict.reason == "cancelled"


def test_timeout_outcome_retries_while_attempts_remain():
    now = timezone.now()
    job = claimed(timeout=2.0, attempts=1, max_attempts=3, retry_policy={"backoff": 4})
    outcome = timeout_outcome(job, "w1", "stack\n", now)
    assert outcome.status == "READY"
    assert 2 <= (outcome.available_at - now).total_seconds() <= 4
    assert outcome.error["exception_class_path"] == "djtasks.exceptions.JobTimeout"
    assert outcome.error["traceback"].startswith("stack\n")
    assert "timeout of 2 s" in outcome.error["traceback"]
    assert outcome.error["worker_id"] == "w1"
    assert outcome.error["started_at"] == job.last_attempted_at.isoformat()


def test_timeout_outcome_fails_on_the_last_attempt():
    job = claimed(timeout=2.0, attempts=2, max_attempts=2)
    outcome = timeout_outcome(job, "w1", "", timezone.now())
    assert outcome.status == "FAILED" and outcome.finished_at is not None


def test_timeout_is_retried_only_if_retry_on_allows_it():
    listed = claimed(timeout=1.0, max_attempts=2, retry_policy={"retry_on": ["builtins.OSError"]})
    other = claimed(timeout=1.0, max_attempts=2, retry_policy={"retry_on": ["builtins.KeyError"]})
    assert issubclass(JobTimeout, TimeoutError)
    assert timeout_outcome(listed, "w", "", timezone.now()).status == "READY"
    assert timeout_outcome(other, "w", "", timezone.now()).status == "FAILED"


# --- batch size, memory, exit codes -----------------------------------------------------


def test_batch_size_grows_for_short_jobs_and_shrinks_for_slow_ones():
    sizer = BatchSizer(100)
    assert sizer.next_size() == 1
    for _ in range(30):
        sizer.observe(10, 0.0001)
    assert sizer.next_size() == 100
    for _ in range(30):
        sizer.observe(1, 2.0)
    assert sizer.next_size() == 1


def test_rss_is_measured_in_kilobytes():
    assert 1_000 < rss_kb() < 10_000_000


def test_exit_codes_are_described():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"


# --- runworker argument types ---------------------------------------------------------


def test_positive_int_accepts_whole_numbers_from_one():
    assert positive_int("4") == 4
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_positive_float_rejects_zero_nan_and_inf():
    assert positive_float("0.5") == 0.5
    for bad in ("0", "-3", "nan", "inf", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(bad)


def test_queue_list_splits_and_trims():
    assert queue_list(" default, emails ,") == ["default", "emails"]
    with pytest.raises(argparse.ArgumentTypeError):
        queue_list(" , ")


def test_task_budget_hands_out_no_more_than_its_limit():
    budget = TaskBudget(5)
    assert budget.take(3) == 3
    assert budget.take(3) == 2
    assert budget.take(1) == 0
    budget.give_back(2)  # the claim found fewer jobs than reserved
    assert budget.take(10) == 2


def test_unlimited_task_budget():
    assert TaskBudget(None).take(100) == 100


def test_supervisor_sees_a_wedged_child_only_with_an_overdue_job():
    from djtasks.worker.supervisor import WEDGED_AFTER, Child

    now = time.monotonic()
    silent = now - WEDGED_AFTER - 1
    overdue = now - WEDGED_AFTER - 1

    def child(status):
        return Child(process=None, worker_id="w", status=status)

    assert child([silent, 0.0, overdue]).wedged(now) is True
    # Silent but no job past its timeout (e.g. a long job without one).
    assert child([silent, 0.0, now + 60]).wedged(now) is False
    # A job past its timeout but the main thread still ticks: it handles it.
    assert child([now, overdue]).wedged(now) is False
    # Not started yet.
    assert child([0.0, overdue]).wedged(now) is False
    # Which threads' jobs made it wedged: their attempts count.
    assert child([silent, 0.0, overdue, now + 60, overdue]).overdue_threads(now) == [1, 3]


def test_the_in_flight_board_shows_only_running_jobs():
    import multiprocessing

    from djtasks.worker.inflight_board import InFlightBoard

    board = InFlightBoard(multiprocessing.get_context("fork"), threads=3)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert board.job_ids() == []

    board.running(0, first)
    board.running(2, second)
    assert board.job_ids() == [first, second]

    board.idle(0)
    assert board.job_ids() == [second]


def test_slot_hands_each_waiting_job_to_exactly_one_taker():
    from djtasks.worker.watchdog import Slot

    slot = Slot()
    slot.waiting.extend(range(10_000))
    popped = []

    def claim_thread():
        while (job := slot.next_job()) is not None:
            popped.append(job)

    thread = threading.Thread(target=claim_thread)
    thread.start()
    taken = slot.take_waiting()
    thread.join()
    assert sorted(popped + taken) == list(range(10_000))
