"""Hard limits on running attempts: timeouts and forced cancellation.

A thread running Python code cannot be stopped from outside, so a job over
its ``timeout`` (or cancelled and still running CANCEL_GRACE seconds later)
is stopped by replacing its whole worker process. Before the process exits,
its main thread records the victim's outcome and hands the other jobs of
the process back to READY (djtasks.worker.process does that part).

The watchdog only reads what claim threads publish in their Slot: one
attribute write per job, so the hot path stays cheap.
"""

import sys
import time
import traceback
from collections import deque
from datetime import timedelta

from django.utils import timezone

from djtasks.errors import error_entry
from djtasks.exceptions import JobTimeout
from djtasks.retry import backoff_delay, should_retry
from djtasks.worker.outcomes import Outcome, attempt_outcome


class Slot:
    """What one claim thread is doing, as the watchdog sees it."""

    __slots__ = ("current", "pending", "thread", "waiting", "writing")

    def __init__(self):
        # (claimed job, time.monotonic() at its start) or None. One tuple,
        # assigned at once, so the watchdog never pairs a job with another
        # job's start time.
        self.current = None
        # Outcomes not yet written to the database.
        self.pending = []
        # The outcomes each claim ahead in flight is writing, a list per
        # claim, oldest first (djtasks.worker.claim_ahead); back in pending
        # if that claim fails.
        self.writing = []
        self.thread = None
        # Claimed jobs of the current batch that have not started. The claim
        # thread pops the next job from the left; the main thread may take
        # them all to hand them back (see WorkerProcess). deque.popleft() is
        # atomic, so each job goes to exactly one of the two threads.
        self.waiting = deque()

    def next_job(self):
        """The next waiting job, or None."""
        try:
            return self.waiting.popleft()
        except IndexError:
            return None

    def take_waiting(self) -> list:
        """Remove and return every waiting job (they will not start here)."""
        taken = []
        while (job := self.next_job()) is not None:
            taken.append(job)
        return taken


class Verdict:
    """A job that must be stopped by force, and why."""

    def __init__(self, slot: Slot, job, reason: str):
        self.slot = slot
        self.job = job
        self.reason = reason  # "timeout" or "cancelled"


def inspect(slots, cancel_watch, cancel_grace: float) -> Verdict | None:
    """Return the first running job that must be stopped by force, if any."""
    now = time.monotonic()
    requested = cancel_watch.requested
    for slot in slots:
        current = slot.current
        if current is None:
            continue
        job, started = current
        if job.timeout is not None and now - started > job.timeout:
            return Verdict(slot, job, "timeout")
        if requested and cancel_watch.overdue(job.id, cancel_grace):
            return Verdict(slot, job, "cancelled")
    return None


def outcome_of(verdict: Verdict, worker_id: str) -> Outcome:
    """The outcome to record for a job stopped by force."""
    now = timezone.now()
    if verdict.reason == "cancelled":
        job = verdict.job
        return attempt_outcome(job, "CANCELLED", now)
    return timeout_outcome(verdict.job, worker_id, _stack_of(verdict.slot), now)


def timeout_outcome(job, worker_id: str, stack: str, now) -> Outcome:
    """FAILED with a JobTimeout error, or READY again if a retry is due."""
    error = JobTimeout(f"job {job.id} ran longer than its timeout of {job.timeout:g} s")
    entry = error_entry(
        error,
        job.attempts,
        worker_id,
        now,
        f"{stack}{entry_line(error)}",
        started_at=job.last_attempted_at,
    )
    if job.attempts < job.max_attempts and should_retry(job.retry_policy, error):
        delay = backoff_delay(job.retry_policy, job.attempts)
        retry_at = now + timedelta(seconds=delay)
        return attempt_outcome(job, "READY", None, error=entry, available_at=retry_at)
    return attempt_outcome(job, "FAILED", now, error=entry)


def entry_line(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(error))


def _stack_of(slot: Slot) -> str:
    """Where the overrunning thread was when it was stopped, for the error entry."""
    thread = slot.thread
    frame = sys._current_frames().get(getattr(thread, "ident", None))
    if frame is None:
        return ""
    lines = traceback.format_stack(frame)
    return "Stack of the attempt when it was stopped:\n" + "".join(lines)
