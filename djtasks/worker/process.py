"""A worker process: threads that claim, run and record jobs in batches.

Each claim thread loops: stop requested? -> claim as many jobs as it expects
to finish soon -> run them -> record the outcomes in one write -> wait for
the doorbell (a NOTIFY) or the poll interval when there was nothing to do.

The main thread never runs jobs. Every TICK it checks the running attempts
against their timeout and cancel requests (djtasks.worker.watchdog), and does the
chores: heartbeat, rescue of jobs left by dead workers, cancel requests,
memory. A job that must be stopped by force is stopped by ending this
process, which the supervisor replaces.
"""

import faulthandler
import functools
import logging
import os
import signal
import socket
import threading
import time

from django.db import DatabaseError, connections
from django.utils.crypto import get_random_string

from djtasks import registry
from djtasks.compat import task_backends
from djtasks.conf import settings
from djtasks.stop_request import StopRequest
from djtasks.worker import framework_logs, heartbeat, outages, rescue, unknown_tasks, watchdog
from djtasks.worker.cancel_watch import CancelWatch
from djtasks.worker.claim_thread import ClaimThread, TaskBudget
from djtasks.worker.executor import JOB_FORMAT, announce_stopped, job_fields
from djtasks.worker.outages import DatabaseHealth
from djtasks.worker.wakeup import Doorbell, Listener, listen_enabled

logger = logging.getLogger("djtasks")

# Exit codes the supervisor understands.
EXIT_STOPPED = 0  # asked to stop, or --burst found nothing more to do
EXIT_RECYCLE = 3  # replace me: max tasks or memory reached, a job stopped by force

# Seconds between two checks of the main thread (timeouts, signals, chores).
TICK = 0.1
# Seconds between two reads of the cancel requests for our running jobs.
CANCEL_POLL_INTERVAL = 1.0
# Seconds between two memory checks (with --max-memory-per-child).
MEMORY_CHECK_INTERVAL = 1.0
# A job running this long makes the rest of its batch go back to READY, so
# other workers (or this process's next batch) run them: claimed jobs never
# wait long behind a slow one.
HAND_BACK_AFTER = 0.5
# At most this many seconds in all, at exit, for claims ahead in flight to end.
SETTLE_CLAIMS_WAIT = 5.0


def new_worker_id() -> str:
    """A worker id unique across hosts and restarts."""
    return f"{socket.gethostname()[:40]}-{get_random_string(12)}"


class WorkerProcess:
    """One worker process with ``threads`` claiming threads."""

    def __init__(
        self,
        *,
        backend: str = "default",
        queues=None,
        threads: int = 1,
        burst: bool = False,
        poll_interval: float | None = None,
        worker_id: str | None = None,
        shutdown_timeout: float = 25.0,
        max_tasks: int | None = None,
        max_memory_kb: int | None = None,
        supervised: bool = False,
        status=None,
        inflight=None,
    ):
        self.backend = task_backends[backend]
        self.database = self.backend.database
        self.queues = list(queues or sorted(self.backend.queues) or ["default"])
        self.threads = threads
        self.burst = burst
        self.poll_interval = settings.POLL_INTERVAL if poll_interval is None else poll_interval
        self.worker_id = worker_id or new_worker_id()
        self.shutdown_timeout = shutdown_timeout
        self.budget = TaskBudget(max_tasks)
        self.max_memory_kb = max_memory_kb
        # Supervised: the supervisor handles SIGINT and replaces this process
        # when it ends itself to stop a job by force.
        self.supervised = supervised
        # Shared with the supervisor (a ctypes double array, or None):
        # [0] the main thread's last tick, [1 + i] the hard deadline of the
        # job claim thread i runs (0: none), both time.monotonic().
        self.status = status
        # Shared with the supervisor: which job each thread runs (see
        # djtasks.worker.inflight_board), or None.
        self.inflight = inflight
        # The task paths this process can run, as its Worker row lists them.
        self.tasks = []
        # Tasks this process lacks and a live worker has: left out of its
        # claims for a while (djtasks.worker.unknown_tasks).
        self.left_to_others = unknown_tasks.LeftToOthers()
        # Jobs taken from behind a slow job, still to be handed back.
        self.handing_back = []
        self.parent_pid = os.getppid()
        # Set by the signal handlers: a StopRequest, which (unlike
        # threading.Event) cannot deadlock there.
        self.stopping = StopRequest()
        self.immediate = False
        self.exit_code = EXIT_STOPPED
        self._ended = False
        self._shutdown_deadline = None
        self.doorbell = Doorbell()
        self.health = DatabaseHealth()
        self.cancel_watch = CancelWatch(self.database, self.worker_id)
        self.slots = [watchdog.Slot() for _ in range(threads)]
        self.claimers = [ClaimThread(self, slot, index) for index, slot in enumerate(self.slots)]
        self.listener = None

    @property
    def processed(self) -> int:
        """Jobs run so far by this process."""
        return sum(claimer.processed for claimer in self.claimers)

    # --- the main thread ---------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, in burst mode, until the queues are empty)."""
        registry.autodiscover()
        self._install_signal_handlers()
        CancelWatch.active = self.cancel_watch
        try:
            # Django's per-job INFO lines, if no handler would emit them, are
            # not built (djtasks.worker.framework_logs).
            with framework_logs.info_lines_skipped_if_unseen():
                if not self._start():
                    return self.exit_code
                self._watch()
                return self._finish()
        finally:
            CancelWatch.active = None

    def stop(self, *_args, recycle: bool = False) -> None:
        """Stop claiming; threads finish the job in hand, the rest goes back."""
        if recycle:
            self.exit_code = EXIT_RECYCLE
        if not self.stopping.is_set():
            self._shutdown_deadline = time.monotonic() + self.shutdown_timeout
            self.stopping.set()
            self.doorbell.ring()

    def stop_now(self, *_args) -> None:
        """Stop at once: running jobs are interrupted and handed back."""
        self.immediate = True
        self.stop()

    def _start(self) -> bool:
        """Register, rescue what dead workers left, start the threads."""
        while not self._call_database("register", self._register):
            if self.stopping.wait(2):
                return False
        self._call_database("rescue", self._rescue)
        logger.info(
            "worker %s started: pid=%d queues=%s threads=%d wake-up=%s",
            self.worker_id,
            os.getpid(),
            ",".join(self.queues),
            self.threads,
            "listen" if listen_enabled(self.database) else "poll",
        )
        if listen_enabled(self.database) and not self.burst:
            self.listener = Listener(self.database, self.queues, self.doorbell, self.stopping)
            self.listener.start()
        if self.status is not None:
            # A first tick before any job can start: a job that takes the GIL
            # at once would otherwise keep the main thread from ever ticking,
            # and the supervisor reads "never ticked" as "still starting".
            self.status[0] = time.monotonic()
        for index, claimer in enumerate(self.claimers):
            claimer.slot.thread = threading.Thread(
                target=claimer.run, name=f"djtasks-{index}", daemon=True
            )
            claimer.slot.thread.start()
        return True

    def _watch(self) -> None:
        """Until every claim thread has ended: timeouts, signals and chores."""
        chores = [
            [settings.HEARTBEAT_INTERVAL, self._heartbeat, "heartbeat"],
            [settings.RESCUE_INTERVAL, self._rescue, "rescue"],
            [CANCEL_POLL_INTERVAL, self.cancel_watch.refresh, "cancel check"],
        ]
        if self.max_memory_kb:
            chores.append([MEMORY_CHECK_INTERVAL, self._check_memory, "memory check"])
        next_due = {name: time.monotonic() + interval for interval, _, name in chores}
        while any(slot.thread.is_alive() for slot in self.slots):
            if self.immediate:
                self._end_now("stop requested at once")
                return
            if self._shutdown_deadline and time.monotonic() > self._shutdown_deadline:
                self._end_now(f"jobs still running after the {self.shutdown_timeout:g}s timeout")
                return
            verdict = watchdog.inspect(self.slots, self.cancel_watch, settings.CANCEL_GRACE)
            if verdict is not None:
                self._end_by_force(verdict)
                return
            self._release_waiting()
            now = time.monotonic()
            for interval, chore, name in chores:
                if now >= next_due[name]:
                    next_due[name] = now + interval
                    self._call_database(name, chore)
            if self.status is not None:
                self.status[0] = time.monotonic()
            if self.supervised and os.getppid() != self.parent_pid:
                logger.warning("worker %s: supervisor gone, stopping", self.worker_id)
                self.stop()
            time.sleep(TICK)

    def _finish(self) -> int:
        """After the threads ended: record and hand back what is left, unregister."""
        if self._ended:  # already ended by force or at once
            return self.exit_code
        self._settle()
        logger.info("worker %s stopped after %d jobs", self.worker_id, self.processed)
        connections.close_all()
        return self.exit_code

    def _end_now(self, reason: str) -> None:
        """Leave with jobs still running: hand them back, then exit."""
        logger.warning("worker %s stopping now (%s)", self.worker_id, reason)
        self.stopping.set()
        self._settle()
        self._exit(self.exit_code)

    def _end_by_force(self, verdict) -> None:
        """Stop one job by ending this process; record it, hand back the rest."""
        self.stopping.set()
        job = verdict.job
        outcome = watchdog.outcome_of(verdict, self.worker_id)
        duration = time.monotonic() - verdict.slot.current[1] if verdict.slot.current else 0.0
        logger.error(
            JOB_FORMAT + " outcome=%s duration=%.3fs "
            "(stopped by force: %s; replacing worker process %s)",
            *job_fields(job),
            outcome.status,
            duration,
            "over its timeout" if verdict.reason == "timeout" else "cancelled",
            self.worker_id,
        )
        self._settle(first=[outcome])
        if verdict.reason == "timeout":
            # After the outcome is written: a receiver or hook that fails or
            # hangs (the supervisor kills a silent process) cannot undo it.
            self._announce_stopped(job, outcome)
        self._exit(EXIT_RECYCLE)

    def _announce_stopped(self, job, outcome) -> None:
        """task_finished and on_failure / on_retry for an attempt over its timeout."""
        try:
            announce_stopped(job, outcome, type(self.backend))
        except Exception:
            # A receiver raised: the outcome is recorded all the same.
            logger.exception(
                "worker %s: a task_finished receiver failed for job %s", self.worker_id, job.id
            )

    def _settle(self, first=()) -> None:
        """Record every pending outcome, hand back the other RUNNING jobs, unregister."""
        outcomes = list(first)
        # A claim ahead that commits after the hand-back below would leave
        # its jobs RUNNING here until the rescue (the process may end by
        # force, its claim threads still running): let those in flight end
        # first. A claim takes milliseconds; the wait is bounded for a
        # database that does not answer.
        claims_deadline = time.monotonic() + SETTLE_CLAIMS_WAIT
        for claimer in self.claimers:
            claimer.ahead.wait(timeout=max(0.0, claims_deadline - time.monotonic()))
        for slot in self.slots:
            # Outcomes a claim ahead was writing too: if it did write them,
            # writing them again changes nothing (the attempt guard).
            for writing in slot.writing:
                outcomes.extend(writing)
            outcomes.extend(slot.pending)
        deadline = time.monotonic() + max(5.0, min(self.shutdown_timeout, 30.0))
        failures = 0
        while True:
            try:
                outages.record_outcomes(self.database, self.worker_id, outcomes)
                rescue.hand_back(self.database, self.worker_id)
                heartbeat.unregister(self.database, self.worker_id)
                self.health.ok()
                return
            except DatabaseError as error:
                self.health.failed("shutdown", error)
                outages.close_connection(self.database)
            failures += 1
            if time.monotonic() + outages.delay(failures) > deadline:
                break
            time.sleep(outages.delay(failures))
        logger.error(
            "worker %s could not reach the database to hand back its jobs: they "
            "will be rescued once its heartbeat is %gs old",
            self.worker_id,
            settings.STALE_AFTER,
        )

    def _exit(self, code: int) -> None:
        self.exit_code = code
        self._ended = True
        if self.supervised:
            # Claim threads may be stuck in task code: end the process now.
            logging.shutdown()
            os._exit(code)

    def _release_waiting(self) -> None:
        """Hand back the claimed jobs that wait behind a job running too long."""
        now = time.monotonic()
        for slot in self.slots:
            current = slot.current
            if current is not None and slot.waiting and now - current[1] > HAND_BACK_AFTER:
                taken = slot.take_waiting()
                self.budget.give_back(len(taken))
                self.handing_back.extend(taken)
        if not self.handing_back:
            return
        # The taken jobs are RUNNING rows of this worker that no thread will
        # start; until the UPDATE succeeds they stay in handing_back and the
        # next tick tries again (and _settle hands back whatever is left).
        job_ids = [job.id for job in self.handing_back]
        hand_back = functools.partial(rescue.hand_back, self.database, self.worker_id, job_ids)
        if self._call_database("hand back", hand_back):
            self.handing_back.clear()

    # --- chores --------------------------------------------------------------

    def _register(self) -> None:
        self.tasks = registry.registered_paths()
        heartbeat.register(
            self.database,
            self.worker_id,
            backend=self.backend.alias,
            queues=self.queues,
            concurrency=self.threads,
            tasks=self.tasks,
        )

    def _heartbeat(self) -> None:
        if not heartbeat.beat(self.database, self.worker_id):
            logger.warning("worker %s: its row was gone or stopped; re-registering", self.worker_id)
            self._register()
            return
        # A task module imported after the start (by a job naming one of its
        # tasks) adds tasks: other workers read the list to decide whether a
        # job of a task they lack has a worker (djtasks.worker.unknown_tasks).
        tasks = registry.registered_paths()
        if tasks != self.tasks:
            heartbeat.update_tasks(self.database, self.worker_id, tasks)
            self.tasks = tasks

    def _rescue(self) -> None:
        last_fault = self.health.last_fault
        # Right after an outage every heartbeat looks old, ours and the
        # others': wait a full STALE_AFTER so live workers can beat again.
        if last_fault is not None and time.monotonic() - last_fault < settings.STALE_AFTER:
            return
        rescue.rescue_stale(self.database, settings.STALE_AFTER, exclude=self.worker_id)

    def _check_memory(self) -> None:
        rss = rss_kb()
        if rss > self.max_memory_kb and not self.stopping.is_set():
            logger.warning(
                "worker %s uses %d KB (limit %d KB): recycling",
                self.worker_id,
                rss,
                self.max_memory_kb,
            )
            self.stop(recycle=True)

    def _call_database(self, what: str, function) -> bool:
        """Run a chore; on a database error log once, reconnect later."""
        try:
            function()
        except DatabaseError as error:
            self.health.failed(what, error)
            outages.close_connection(self.database)
            return False
        self.health.ok()
        return True

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self.stop)
        if self.supervised:
            # kill -USR1 <pid> prints every thread's stack to stderr: where is
            # a stuck worker stuck?
            faulthandler.register(signal.SIGUSR1, all_threads=True)
            # The supervisor turns Ctrl-C (sent to the whole process group)
            # into SIGTERM, then SIGQUIT for a second one.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGQUIT, self.stop_now)
        else:
            signal.signal(signal.SIGINT, self._interrupt)

    def _interrupt(self, *_args) -> None:
        if self.stopping.is_set():
            self.stop_now()
        else:
            self.stop()


def rss_kb() -> int:
    """Resident memory of this process in KB."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        import resource

        # Peak, not current, where /proc is missing (KB on Linux).
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
