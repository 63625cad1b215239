"""A claim thread: claim a batch, run it, record it, wait when idle.

This is the hot path: per job it does one executor call plus a few
attribute writes; the database sees one transaction per batch, which writes
the outcomes of the previous batch and claims the next (two statements),
never a query per job. While a batch of short jobs runs, that transaction
runs in helper threads (djtasks.worker.claim_ahead), two at a time, so the
thread finds the next batch ready when this one ends.
"""

import logging
import threading
import time

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from djtasks import controls, registry
from djtasks.conf import settings
from djtasks.errors import class_path, error_entry
from djtasks.exceptions import Cancelled
from djtasks.worker import claim_ahead, heartbeat, outages, rescue, unknown_tasks
from djtasks.worker.claim import claim
from djtasks.worker.claim_limited import LimitedGate
from djtasks.worker.executor import JOB_FORMAT, Executor, job_fields
from djtasks.worker.outcomes import Outcome, attempt_outcome, record

logger = logging.getLogger("djtasks")

# A thread claims as many jobs as it expects to finish within this many
# seconds (at least one, at most MAX_CLAIM_BATCH), judging by how long
# recent jobs took. Short jobs are claimed 100 at a time; slow ones one at a
# time. A batch that meets an unexpectedly slow job is not held behind it:
# the worker's main thread hands the jobs still waiting back to READY (see
# WorkerProcess._release_waiting).
BATCH_TARGET_SECONDS = 0.05

CANCELLED_PATH = class_path(Cancelled)


class BatchSizer:
    """Sizes the next claim from the mean duration of recent jobs."""

    def __init__(self, maximum: int):
        self.maximum = maximum
        self.mean_seconds = BATCH_TARGET_SECONDS  # start cautiously: 1 job

    def next_size(self) -> int:
        if self.mean_seconds <= 0:
            return self.maximum
        fit = int(BATCH_TARGET_SECONDS / self.mean_seconds)
        return max(1, min(self.maximum, fit))

    def observe(self, jobs: int, seconds: float) -> None:
        if jobs:
            # An exponential mean, so one odd batch does not swing the size.
            self.mean_seconds = 0.7 * self.mean_seconds + 0.3 * (seconds / jobs)


class TaskBudget:
    """How many more jobs a process may claim (--max-tasks-per-child)."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.claimed = 0
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` jobs; 0 once the budget is spent."""
        if self.limit is None:
            return wanted
        with self._lock:
            granted = max(0, min(wanted, self.limit - self.claimed))
            self.claimed += granted
        return granted

    def give_back(self, count: int) -> None:
        """Return reserved jobs the claim did not find."""
        if self.limit is not None and count:
            with self._lock:
                self.claimed -= count


class ClaimThread:
    """The loop of one claim thread of a worker process (``owner``)."""

    def __init__(self, owner, slot, index: int = 0):
        self.owner = owner
        self.slot = slot
        # Where to publish hard deadlines for the supervisor (see
        # WorkerProcess.status), if supervised.
        self.status = owner.status
        self.status_index = 1 + index
        # Where to show the supervisor which job this thread runs (see
        # djtasks.worker.inflight_board), if supervised.
        self.inflight = owner.inflight
        self.index = index
        self.processed = 0
        # Paces the look for jobs under a limit (djtasks.worker.claim_limited).
        self.limited_gate = LimitedGate(owner.poll_interval)
        # Decided once: building a start line per job costs when nobody reads it.
        self._log_starts = logger.isEnabledFor(logging.INFO)
        # Claimed jobs of tasks this process lacks, to hand back or fail
        # (djtasks.worker.unknown_tasks); kept until that is written, so a
        # database error leaves none of them RUNNING here for ever.
        self.unknown = []
        # The helper that claims the next batch while this one runs.
        self.ahead = claim_ahead.ClaimAhead(f"djtasks-claim-ahead-{index}", owner.database)
        self.claims_ahead = claim_ahead.enabled(owner.database)

    def run(self) -> None:
        owner = self.owner
        executor = Executor(owner.worker_id, type(owner.backend))
        sizer = BatchSizer(settings.MAX_CLAIM_BATCH)
        failures = 0
        try:
            while not owner.stopping.is_set():
                # Noted before the claim: a NOTIFY that lands while the claim
                # finds nothing makes the wait below return at once.
                rings = owner.doorbell.rings
                try:
                    if self.unknown:
                        self._settle_unknown()
                    claimed = self._next_batch(sizer)
                    if claimed:
                        self._run_batch(executor, sizer, claimed)
                except DatabaseError as error:
                    # Outcomes stay in slot.pending and are written once the
                    # database is back (the completion guard makes that safe).
                    failures += 1
                    owner.health.failed("claim/record", error)
                    outages.close_connection(owner.database)
                    owner.stopping.wait(outages.delay(failures))
                    continue
                failures = 0
                owner.health.ok()
                if claimed is None or (not claimed and owner.burst):
                    break
                if not claimed:
                    # Idle: the helper's connection is held only while busy.
                    self.ahead.close()
                    owner.doorbell.wait(rings, owner.poll_interval)
            # Stopped by a database error or the task budget with claims
            # ahead in flight: their jobs join the waiting ones, which the
            # main thread hands back at exit.
            self._take_all_ahead()
            if self.slot.pending:
                self._record()
        except DatabaseError as error:
            # Left in slot.pending: the main thread tries again at exit.
            owner.health.failed("record", error)
        except BaseException:  # noqa: BLE001 - the thread must not end unnoticed
            # Not from a job (their failures, BaseExceptions included, are
            # outcomes): a bug of the loop itself. The process is replaced
            # rather than left a thread short with that thread's jobs RUNNING.
            logger.exception("worker %s: claim thread failed; recycling", owner.worker_id)
            owner.stop(recycle=True)
        finally:
            self.ahead.close()
            executor.close()
            connections.close_all()

    def _next_batch(self, sizer):
        """How many jobs were claimed into slot.waiting; None once the task budget is spent.

        The oldest batch claimed ahead if there is one (the next ones if it
        found nothing), else one claimed now; then, if the queue looks full of
        short jobs, the next ones are claimed ahead (up to claim_ahead.DEPTH
        in flight).
        """
        claimed = 0
        while not claimed and self.ahead.busy:
            claimed, asked = self._take_ahead()
        # A claim ahead that found nothing ran while the last batch did: the
        # NOTIFY of a job enqueued since may have rung before the caller
        # noted the doorbell, so claim again rather than wait on it.
        if not claimed:
            claimed, asked = self._claim_now(sizer)
            if claimed is None:
                return None
        if claimed == asked and self.claims_ahead:
            self._start_ahead(sizer)
        return claimed

    def _claim_now(self, sizer):
        """(claimed, asked) of a claim in this thread; (None, 0) once the task budget is spent."""
        owner = self.owner
        asked = owner.budget.take(sizer.next_size())
        if asked == 0:
            if self.slot.pending:
                self._record()
            logger.info("worker %s reached its task limit: recycling", owner.worker_id)
            owner.stop(recycle=True)
            return None, 0
        jobs = []
        try:
            jobs = self._record_and_claim(self.slot.pending, asked)
        finally:
            owner.budget.give_back(asked - len(jobs))
        self.slot.waiting.extend(jobs)
        return len(jobs), asked

    def _start_ahead(self, sizer) -> None:
        """Claim the next batches in helper threads while this one runs."""
        size = sizer.next_size()
        # One job at a time means jobs of 25 ms or more: one claimed ahead
        # would wait behind a slow one while another worker could run it.
        if size < 2:
            return
        slot = self.slot
        while not self.ahead.full and not self.owner.stopping.is_set():
            granted = self.owner.budget.take(size)
            if granted == 0:
                return
            # The helper writes these outcomes (the first claim started takes
            # those of the last batch, the others none); the batch about to
            # run adds its own to a new list. They are on slot.writing before
            # they leave slot.pending, so the main thread's _settle always
            # finds them on one of the two.
            outcomes = slot.pending
            slot.writing.append(outcomes)
            slot.pending = []
            try:
                self.ahead.start(self._claim_ahead, outcomes, granted)
            except BaseException:
                # No helper took them (e.g. no thread could start).
                slot.pending = outcomes
                slot.writing.pop()
                self.owner.budget.give_back(granted)
                raise

    def _claim_ahead(self, outcomes, size):
        """In the helper thread: write ``outcomes``, claim up to ``size`` into slot.waiting."""
        owner = self.owner
        jobs = []
        try:
            jobs = self._record_and_claim(outcomes, size)
        except DatabaseError:
            # The helper's own connection (Django's are per thread).
            outages.close_connection(owner.database)
            raise
        finally:
            owner.budget.give_back(size - len(jobs))
        # The claim has committed: from here the main thread may hand them
        # back like any job that has not started.
        self.slot.waiting.extend(jobs)
        return len(jobs), size

    def _take_ahead(self):
        """(claimed, asked) of the oldest claim ahead; if it failed, its outcomes are pending."""
        slot = self.slot
        # Claims are taken in the order they started, as slot.writing holds
        # their outcomes.
        outcomes = slot.writing[0]
        try:
            return self.ahead.result()
        except BaseException:
            # Rolled back, so not written: they go with the next claim.
            slot.pending[:0] = outcomes
            raise
        finally:
            del slot.writing[0]

    def _take_all_ahead(self) -> None:
        """Wait for every claim ahead in flight; raise the first error after all are in."""
        error = None
        while self.ahead.busy:
            try:
                self._take_ahead()
            except BaseException as failed:  # noqa: BLE001 - raised once the rest are in
                error = error or failed
        if error is not None:
            raise error

    def _record_and_claim(self, outcomes, size):
        """Write ``outcomes`` (of the last batch) and claim the next, in one transaction.

        One commit per batch instead of two: a commit waits for the disk, and
        every BEGIN and COMMIT is a round trip. The outcomes become visible
        when the claim that follows them commits, a claim later than before.
        ``outcomes`` is emptied once they are written.
        """
        owner = self.owner
        if outcomes:
            try:
                with transaction.atomic(using=owner.database):
                    record(owner.database, owner.worker_id, outcomes)
                    jobs = self._claim(size)
                    if connections[owner.database].needs_rollback:
                        # Code inside caught a database error: the block would
                        # roll back quietly, outcomes and claim with it.
                        raise DatabaseError("the claim failed after the outcomes were written")
            except outages.REFUSED:
                # The database refused an outcome (e.g. a return value jsonb
                # rejects) and the transaction rolled back, claim included:
                # write them one by one, then claim alone.
                outages.record_outcomes(owner.database, owner.worker_id, outcomes)
                outcomes.clear()
            else:
                outcomes.clear()
                return jobs
        return self._claim(size)

    def _claim(self, size):
        owner = self.owner
        return claim(
            owner.backend.alias,
            owner.worker_id,
            owner.queues,
            size,
            timezone.now(),
            self.limited_gate,
            # The stored controls: read at most every controls.MAX_AGE
            # seconds per process (or at once after a NOTIFY of a change),
            # not per claim.
            controls.current(owner.database),
            # Tasks this process lacks that a live worker has: theirs.
            skip_tasks=owner.left_to_others.current(),
        )

    def _run_batch(self, executor, sizer, count) -> None:
        """Run the next ``count`` waiting jobs (fewer if stopped or handed back)."""
        owner = self.owner
        slot = self.slot
        pending = slot.pending
        stopping = owner.stopping
        started = time.monotonic()
        ran = 0
        # The main thread may take waiting jobs away (hand-back) meanwhile;
        # other jobs than these ``count`` are the next batches, claimed
        # ahead (which ones run first does not matter: each runs once).
        while ran < count and not stopping.is_set() and (job := slot.next_job()) is not None:
            requested = owner.cancel_watch.requested
            if requested and job.id in requested:
                # Cancelled after the claim, before it started: never run it.
                pending.append(attempt_outcome(job, "CANCELLED", timezone.now()))
            elif not registry.is_registered(job.task_path):
                # A task of a newer deploy (or a typo): not run here.
                self.unknown.append(job)
            else:
                pending.append(self._run_one(executor, job))
            ran += 1
        sizer.observe(ran, time.monotonic() - started)
        self.processed += ran
        if self.unknown:
            self._settle_unknown()
        if not stopping.is_set():
            return
        # Their jobs (once claimed) are to go back with the others.
        self._take_all_ahead()
        unstarted = slot.take_waiting()
        if unstarted:
            # Stopping: record what ran (the next claim will not), and the
            # claimed jobs that never started go back.
            self._record()
            owner.budget.give_back(len(unstarted))
            rescue.hand_back(owner.database, owner.worker_id, [job.id for job in unstarted])

    def _settle_unknown(self) -> None:
        """Hand back (or fail) the claimed jobs of tasks this process lacks."""
        owner = self.owner
        digest = heartbeat.task_digest(owner.tasks)
        failed = unknown_tasks.settle(
            owner.database, owner.worker_id, self.unknown, digest, owner.left_to_others
        )
        self.slot.pending.extend(failed)
        self.unknown.clear()

    def _run_one(self, executor, job) -> Outcome:
        if self._log_starts:
            logger.info(JOB_FORMAT + " started", *job_fields(job))
        slot = self.slot
        inflight = self.inflight
        if inflight is not None:
            # Before the task starts: a kill from here on counts its attempt.
            inflight.running(self.index, job.id)
        started = time.monotonic()
        # One tuple, so the watchdog never pairs a job with another's start.
        slot.current = (job, started)
        deadline = job.timeout is not None and self.status is not None
        if deadline:
            self.status[self.status_index] = started + job.timeout
        try:
            outcome = executor.run(job)
        except BaseException as error:  # noqa: BLE001 - e.g. a signal receiver raised
            # The executor records what the task raises; this is job code
            # around it (a receiver, a hook). SystemExit and KeyboardInterrupt
            # included: signals reach the main thread only, so in a claim
            # thread they too come from job code, and fail only this attempt.
            outcome = self._crashed(job, error)
        finally:
            slot.current = None
            if deadline:
                self.status[self.status_index] = 0.0
            if inflight is not None:
                # Finished but not yet recorded: a kill now hands it back
                # and it runs again (at least once, never lost).
                inflight.idle(self.index)
        if outcome.status != "SUCCESSFUL" and outcome.error is not None:
            outcome = self._cancelled_instead(job, outcome)
        return outcome

    def _cancelled_instead(self, job, outcome) -> Outcome:
        """A failed attempt of a cancelled job ends CANCELLED, never retried."""
        if (
            job.id in self.owner.cancel_watch.requested
            or outcome.error["exception_class_path"] == CANCELLED_PATH
        ):
            return attempt_outcome(job, "CANCELLED", timezone.now())
        return outcome

    def _crashed(self, job, error) -> Outcome:
        """The executor itself raised (outside the task): fail the attempt."""
        logger.exception(JOB_FORMAT + " outcome=FAILED (error outside the task)", *job_fields(job))
        now = timezone.now()
        entry = error_entry(
            error, job.attempts, self.owner.worker_id, now, started_at=job.last_attempted_at
        )
        return attempt_outcome(job, "FAILED", now, error=entry)

    def _record(self) -> None:
        """Write the pending outcomes; on a database error they stay pending."""
        outages.record_outcomes(self.owner.database, self.owner.worker_id, self.slot.pending)
        self.slot.pending.clear()
