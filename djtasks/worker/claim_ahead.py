"""Claiming ahead: the next batches are claimed while this one runs.

A claim thread alternates between waiting for the database (write the
outcomes of the last batch, claim the next) and running jobs. Done one
after the other, each leaves the other idle: the worker waits while the
database works, and the database waits while the worker runs the batch.
So while a batch of short jobs runs, helper threads with connections of
their own write the outcomes of the batch before it and claim the next
batches, each in one transaction as the claim thread would. When the batch
ends, the next one is already there.

Up to DEPTH claims are in flight at once, on as many helpers; they are
taken in the order they started. Claims ahead start only when the last
claim was full (the queue has more) of jobs short enough to claim several
at a time (djtasks.worker.claim_thread.BatchSizer), so never behind jobs
known to be slow: a job claimed ahead waits about DEPTH batches (some 50 ms
each). Its jobs join the slot's waiting jobs, which the main thread hands
back if the job running now turns out slow (see
WorkerProcess._release_waiting) or at exit.

The helpers and their connections are there only while the thread is
busy: they go when a claim finds nothing, so an idle worker holds no more
connections than one that never claims ahead.

Not on SQLite, which has one writer at a time: the helpers' claims would
queue behind the jobs' own writes and theirs behind it.
"""

import concurrent.futures
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from django.db import connections

from djtasks.conf import settings
from djtasks.worker import outages

# Claims in flight at once per claim thread, each on a helper thread and
# connection of its own. With one, the database runs one statement of the
# worker's at a time and sits idle while a batch runs; with two, while one
# helper's transaction waits for its commit or for the worker's Python, the
# other's runs, on another core of the server. Measured with no-op jobs on
# 2 cores, one runworker process drained 1.2x as fast with two as with one
# (docs/benchmarks.md, "Fifth round").
DEPTH = 2


def enabled(database: str) -> bool:
    """Whether claim threads on this database claim ahead."""
    return connections[database].vendor != "sqlite" and bool(settings.CLAIM_AHEAD)


class ClaimAhead:
    """Up to DEPTH helper threads that run claims for a claim thread, oldest first."""

    def __init__(self, name: str, database: str):
        self._name = name
        self._database = database
        self._helpers = []  # single-thread pools, started on first use
        # (helper, future) of each claim started and not taken, oldest first.
        self._in_flight = deque()

    @property
    def busy(self) -> bool:
        """A claim was started and its result not taken yet."""
        return bool(self._in_flight)

    @property
    def full(self) -> bool:
        """As many claims are in flight as there may be."""
        return len(self._in_flight) >= DEPTH

    def start(self, claim_batch, *args) -> None:
        """Run ``claim_batch(*args)`` in a helper thread that has no claim in flight."""
        helper = self._idle_helper()
        self._in_flight.append((helper, helper.submit(claim_batch, *args)))

    def result(self):
        """Wait for the oldest claim in flight; return what it returned or raise what it raised."""
        _, future = self._in_flight.popleft()
        return future.result()

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the claims in flight to end (any thread may)."""
        # list() copies the deque in one step under the GIL, while the claim
        # thread may be adding to it.
        futures = [future for _, future in list(self._in_flight)]
        if futures:
            concurrent.futures.wait(futures, timeout=timeout)

    def close(self) -> None:
        """Wait for the claims in flight, close the helpers' connections, end their threads."""
        while self._in_flight:
            # Their outcomes and jobs are still on the slot (writing, waiting)
            # whatever they raised: the main thread writes and hands them back.
            self._in_flight.popleft()[1].exception()
        for helper in self._helpers:
            # Django's connections are per thread: only a helper can close its
            # own (a broken one fails quietly: the claim thread must not end over it).
            helper.submit(outages.close_connection, self._database).result()
            helper.shutdown()
        self._helpers = []

    def _idle_helper(self) -> ThreadPoolExecutor:
        busy = {id(helper) for helper, _ in self._in_flight}
        for helper in self._helpers:
            if id(helper) not in busy:
                return helper
        helper = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{self._name}-{len(self._helpers)}"
        )
        self._helpers.append(helper)
        return helper
