"""Claiming ahead: the next batch is claimed while this one runs.

A claim thread alternates between waiting for the database (write the
outcomes of the last batch, claim the next) and running jobs. With short
jobs the two take about as long, and done one after the other each leaves
the other idle: the worker waits while the database works, and the
database waits while the worker runs the batch. So while a batch of short
jobs runs, a helper thread with a connection of its own writes the
outcomes of the batch before it and claims the next batch, in one
transaction as the claim thread would. When the batch ends, the next one
is already there.

The helper claims one batch ahead at most, and only when the last claim
was full (the queue has more) of jobs short enough to claim several at a
time (djtasks.worker.claim_thread.BatchSizer) yet long enough to be worth
it (MIN_JOB_SECONDS): a job claimed ahead waits about one batch (some
50 ms), never behind a slow job. Its jobs join the
slot's waiting jobs, which the main thread hands back if the job running
now overstays (see WorkerProcess._release_waiting) or at exit.

The helper and its connection are there only while the thread is busy:
they go when a claim finds nothing, so an idle worker holds no more
connections than one that never claims ahead.

Not on SQLite, which has one writer at a time: the helper's claim would
queue behind the jobs' own writes and theirs behind it.
"""

from concurrent.futures import ThreadPoolExecutor

from django.db import connections

from djtasks.conf import settings
from djtasks.worker import outages

# Jobs shorter than this on average are not claimed ahead. A batch of them
# runs in less time than its claim takes, so there is little to overlap,
# and the helper's Python competes with theirs for the GIL: measured with
# no-op jobs (some 15 us each), runworker drained about 10% slower with it
# (docs/benchmarks.md, "Claiming ahead").
MIN_JOB_SECONDS = 0.0001


def enabled(database: str) -> bool:
    """Whether claim threads on this database claim ahead."""
    return connections[database].vendor != "sqlite" and bool(settings.CLAIM_AHEAD)


class ClaimAhead:
    """One helper thread that runs one claim at a time for a claim thread."""

    def __init__(self, name: str, database: str):
        self._name = name
        self._database = database
        self._pool = None  # started on the first claim ahead
        self._future = None

    @property
    def busy(self) -> bool:
        """A claim was started and its result not taken yet."""
        return self._future is not None

    def start(self, claim_batch, *args) -> None:
        """Run ``claim_batch(*args)`` in the helper thread."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._future = self._pool.submit(claim_batch, *args)

    def result(self):
        """Wait for the claim started last; return what it returned or raise what it raised."""
        future, self._future = self._future, None
        return future.result()

    def close(self) -> None:
        """Wait for a claim in flight, close the helper's connections, end its thread."""
        if self._pool is None:
            return
        if self._future is not None:
            # Its outcomes and jobs are still on the slot (writing, waiting)
            # whatever it raised: the main thread writes and hands them back.
            self._future.exception()
            self._future = None
        # Django's connections are per thread: only the helper can close its
        # own (a broken one fails quietly: the claim thread must not end over it).
        self._pool.submit(outages.close_connection, self._database).result()
        self._pool.shutdown()
        self._pool = None
