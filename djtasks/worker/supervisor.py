"""The supervisor: starts worker processes, replaces dead ones, relays signals.

``runworker`` always runs one, even with ``--processes 1``: a job over its
timeout (or a cancelled job that will not stop) can only be stopped by
ending its process, and something must start the next one. The supervisor
itself holds no database connection while it waits and runs no job; it
costs one idle process.

Signals:

* SIGTERM or a first SIGINT: graceful stop. Children stop claiming, finish
  their running jobs within ``--shutdown-timeout`` and hand the rest back.
* a second SIGINT, or SIGQUIT: stop at once. Children hand back their
  running jobs (interrupted) and exit.
* children that outlive the shutdown by GRACE seconds are killed and their
  jobs rescued here.

Exit status: 0 after a graceful stop (or a drained ``--burst``), 1 if a
child had to be killed.
"""

import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import wait

from django.db import DatabaseError, connections

from djtasks import registry
from djtasks.compat import database_of
from djtasks.worker import heartbeat, rescue
from djtasks.worker.inflight_board import InFlightBoard
from djtasks.worker.process import EXIT_RECYCLE, EXIT_STOPPED, WorkerProcess, new_worker_id

logger = logging.getLogger("djtasks")

# Seconds children get beyond --shutdown-timeout to record and hand back.
GRACE = 10.0
# A child whose main thread has been silent this long while one of its jobs
# is this far past its timeout is killed here: a task holding the GIL (a
# runaway regex, a C extension) keeps the child's own watchdog from running.
WEDGED_AFTER = 3.0
# A child that dies sooner than this after its start is crash-looping:
# its restarts are spaced out, up to MAX_RESTART_DELAY seconds.
MIN_HEALTHY_SECONDS = 2.0
MAX_RESTART_DELAY = 10.0
# The slot of the beat process that ``runworker --beat`` adds.
BEAT_SLOT = "beat"


class Child:
    """One worker process and what the supervisor knows of it."""

    def __init__(self, process, worker_id: str, status, inflight=None):
        self.process = process
        self.worker_id = worker_id
        self.started = time.monotonic()
        # Shared with the child (see WorkerProcess.status): [0] when its main
        # thread last ticked, [1:] the hard deadline of each thread's job.
        self.status = status
        # Shared with the child: the job each of its threads runs.
        self.inflight = inflight
        self.kill_reason = None
        # The claim threads whose job was past its timeout when the
        # supervisor killed the child: those attempts ended through their
        # timeout and count.
        self.timed_out_threads = []

    def wedged(self, now: float) -> bool:
        """Whether the child is unresponsive with a job past its timeout."""
        last_tick = self.status[0]
        if last_tick == 0 or now - last_tick < WEDGED_AFTER:
            return False
        return bool(self.overdue_threads(now))

    def overdue_threads(self, now: float) -> list[int]:
        """The claim threads whose job is WEDGED_AFTER past its timeout."""
        return [
            index
            for index, deadline in enumerate(self.status[1:])
            if 0 < deadline < now - WEDGED_AFTER
        ]


class Supervisor:
    """Keeps ``processes`` worker processes running until told to stop."""

    def __init__(
        self,
        *,
        processes: int = 1,
        shutdown_timeout: float = 25.0,
        beat: bool = False,
        **worker_options,
    ):
        self.processes = processes
        self.beat = beat
        self.shutdown_timeout = shutdown_timeout
        self.worker_options = {"shutdown_timeout": shutdown_timeout, **worker_options}
        self.burst = worker_options.get("burst", False)
        self.database = database_of(worker_options.get("backend", "default"))
        self.children: dict[int, Child] = {}
        # Slot -> time.monotonic() at which to start its next process.
        self.restarts: dict[int, float] = {}
        self.restart_delay: dict[int, float] = {}
        self.stopping = False
        self.immediate = False
        self.killed = False
        self._stop_deadline = None
        # fork: children inherit the imported project (no second django.setup())
        # and start in milliseconds. Database connections are closed before
        # each fork so no socket is shared.
        self.context = multiprocessing.get_context("fork")

    def run(self) -> int:
        """Supervise until stopped (or the burst is drained); return the exit status."""
        registry.autodiscover()
        wakeup = self._install_signal_handlers()
        logger.info("supervisor pid=%d starting %d worker process(es)", os.getpid(), self.processes)
        for slot in range(self.processes):
            self._spawn(slot)
        if self.beat:
            # A process of its own, supervised like the workers: the beat
            # holds a database connection, which must never cross a fork.
            self._spawn(BEAT_SLOT)
        while self.children or self.restarts:
            wait([child.process.sentinel for child in self.children.values()] + [wakeup], 0.5)
            _drain(wakeup)
            self._kill_wedged()
            self._reap()
            self._start_due()
            self._enforce_stop_deadline()
        logger.info("supervisor pid=%d stopped", os.getpid())
        return 1 if self.killed else 0

    # --- signals -------------------------------------------------------------

    def _install_signal_handlers(self) -> int:
        """Handle signals; return a file descriptor that a signal makes readable."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        # A signal writes a byte here, so the wait() in run() returns at once.
        signal.set_wakeup_fd(write_end)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_interrupt)
        signal.signal(signal.SIGQUIT, self._on_quit)
        return read_end

    def _on_term(self, *_args) -> None:
        self.stop()

    def _on_interrupt(self, *_args) -> None:
        if self.stopping:
            self.stop_now()
        else:
            self.stop()

    def _on_quit(self, *_args) -> None:
        self.stop_now()

    def stop(self) -> None:
        """Graceful: children finish their running jobs, then exit."""
        if self.stopping:
            return
        logger.info("supervisor: stopping gracefully (timeout %gs)", self.shutdown_timeout)
        self.stopping = True
        self.restarts.clear()
        self._stop_deadline = time.monotonic() + self.shutdown_timeout + GRACE
        self._signal_children(signal.SIGTERM)

    def stop_now(self) -> None:
        """At once: children hand back their running jobs and exit."""
        self.stop()
        if not self.immediate:
            logger.warning("supervisor: stopping at once")
            self.immediate = True
            self._stop_deadline = min(self._stop_deadline, time.monotonic() + GRACE)
            self._signal_children(signal.SIGQUIT)

    def _signal_children(self, signum) -> None:
        for child in self.children.values():
            if child.process.pid is not None and child.process.is_alive():
                os.kill(child.process.pid, signum)

    # --- children ------------------------------------------------------------

    def _spawn(self, slot) -> None:
        worker_id = new_worker_id()
        # Never fork with an open connection: parent and child would talk
        # over the same socket.
        connections.close_all()
        # Shared memory without a lock: one writer per cell (the child), and
        # a torn read only delays a decision by one loop.
        threads = self.worker_options.get("threads", 1)
        status = self.context.RawArray("d", 1 + threads)
        inflight = None
        if slot == BEAT_SLOT:
            # The beat never writes its status: all zeros, never "wedged".
            target, args = _beat_main, (self.worker_options.get("backend", "default"),)
        else:
            inflight = InFlightBoard(self.context, threads)
            target, args = _child_main, (worker_id, self.worker_options, status, inflight)
        process = self.context.Process(target=target, args=args, name=f"djtasks-worker-{slot}")
        process.start()
        self.children[slot] = Child(process, worker_id, status, inflight)

    def _reap(self) -> None:
        for slot, child in list(self.children.items()):
            if child.process.exitcode is None:
                continue
            del self.children[slot]
            child.process.join()
            self._after_exit(slot, child)

    def _after_exit(self, slot: int, child: Child) -> None:
        code = child.process.exitcode
        pid = child.process.pid
        if code not in (EXIT_STOPPED, EXIT_RECYCLE):
            reason = child.kill_reason or describe_exit(code)
            logger.error("worker process %s (pid %d) died: %s", child.worker_id, pid, reason)
            if slot != BEAT_SLOT:  # the beat holds no jobs
                self._release(child, f"worker process {pid} died ({reason})")
        elif code == EXIT_RECYCLE:
            logger.info("worker process %s (pid %d) recycled", child.worker_id, pid)
        elif not (self.stopping or self.burst):
            logger.warning("worker process %s (pid %d) stopped by itself", child.worker_id, pid)
        if self.stopping or (self.burst and code == EXIT_STOPPED):
            return
        lived = time.monotonic() - child.started
        delay = 0.0
        if code not in (EXIT_STOPPED, EXIT_RECYCLE) and lived < MIN_HEALTHY_SECONDS:
            delay = min(MAX_RESTART_DELAY, max(0.5, 2 * self.restart_delay.get(slot, 0.25)))
        self.restart_delay[slot] = delay
        if delay:
            logger.warning("restarting worker process %s in %.1fs", slot, delay)
        self.restarts[slot] = time.monotonic() + delay

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot, at in list(self.restarts.items()):
            if at <= now and not self.stopping:
                del self.restarts[slot]
                self._spawn(slot)

    def _kill_wedged(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.kill_reason is None and child.wedged(now) and child.process.is_alive():
                child.kill_reason = (
                    "killed by the supervisor: a job was past its timeout and the "
                    "process did not respond (a task holding the GIL?)"
                )
                child.timed_out_threads = child.overdue_threads(now)
                logger.error(
                    "worker process %s (pid %d) %s",
                    child.worker_id,
                    child.process.pid,
                    child.kill_reason,
                )
                child.process.kill()

    def _enforce_stop_deadline(self) -> None:
        if self._stop_deadline is None or time.monotonic() < self._stop_deadline:
            return
        for child in self.children.values():
            if child.process.is_alive():
                logger.error(
                    "worker process %s (pid %d) did not stop in time: killing it",
                    child.worker_id,
                    child.process.pid,
                )
                child.process.kill()
                self.killed = True
        self._stop_deadline = None

    def _release(self, child: Child, reason: str) -> None:
        """Rescue a dead child's RUNNING jobs now rather than after STALE_AFTER.

        Only the jobs it was running lose their attempt, which does not count
        against max_attempts, except for a job past its timeout that made the
        supervisor kill the child; the rest of its claimed batch never started
        (or finished, unrecorded) and goes back to READY uncounted.
        """
        worker_id = child.worker_id
        # Without a board nobody knows what ran: every RUNNING job is lost.
        running, timed_out = None, []
        if child.inflight is not None:
            # Read once the child is dead (see djtasks.worker.inflight_board).
            timed_out = [child.inflight.job_id(index) for index in child.timed_out_threads]
            timed_out = [job_id for job_id in timed_out if job_id is not None]
            running = [job_id for job_id in child.inflight.job_ids() if job_id not in timed_out]
        try:
            rescue.release_lost(self.database, worker_id, reason, job_ids=timed_out, counted=True)
            rescue.release_lost(self.database, worker_id, reason, job_ids=running)
            rescue.hand_back(self.database, worker_id)
            heartbeat.unregister(self.database, worker_id)
        except DatabaseError as error:
            logger.error(
                "could not release the jobs of %s (%s): they will be rescued once "
                "its heartbeat is stale",
                worker_id,
                error,
            )
        finally:
            connections.close_all()


def describe_exit(code: int) -> str:
    """A process exit code in words ("killed by SIGKILL", "exit code 1")."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _child_main(worker_id: str, options: dict, status, inflight) -> None:
    # Drop the supervisor's handlers and wake-up pipe inherited by fork;
    # WorkerProcess installs its own.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    code = WorkerProcess(
        worker_id=worker_id, supervised=True, status=status, inflight=inflight, **options
    ).run()
    sys.exit(code)


def _beat_main(backend: str) -> None:
    from djtasks.beat.scheduler import Beat

    signal.set_wakeup_fd(-1)
    # The supervisor relays stops as SIGTERM (graceful) or SIGQUIT (at once);
    # both end the beat after its current tick, which is short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    beat = Beat(backend=backend)
    signal.signal(signal.SIGTERM, beat.stop)
    signal.signal(signal.SIGQUIT, beat.stop)
    beat.run()
    sys.exit(EXIT_STOPPED)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
