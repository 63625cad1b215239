"""Beat: enqueue the due runs of schedules, exactly once however many beats run.

The loop: stop requested? -> tick (claim due schedules, enqueue their runs,
move next_run_at forward, all in one short transaction) -> sleep until the
next due time, at most BEAT_MAX_SLEEP so admin edits are seen promptly.

Exactly once: a due schedule row is locked (SKIP LOCKED on PostgreSQL; on
SQLite the IMMEDIATE transaction serialises beats) while its runs are
inserted and its next_run_at moved past them, in the same transaction. A
beat that reads a stale next_run_at after that commit still cannot insert a
second job: (schedule, scheduled_at) is unique.
"""

import logging
import os
import signal
import socket
import threading
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from djtasks import registry
from djtasks.beat import declared
from djtasks.beat.timing import MISFIRE_POLICIES, Timing, due_runs, validate_timing
from djtasks.compat import signals_of, task_backends
from djtasks.conf import settings
from djtasks.enqueue.insert import insert_job
from djtasks.enqueue.rows import job_row
from djtasks.models import Job, JobStatus, Schedule, any_status
from djtasks.results import to_task_result
from djtasks.stop_request import StopRequest
from djtasks.worker import outages

logger = logging.getLogger("djtasks")

# Due schedules handled per transaction; more are left for the next tick.
TICK_BATCH = 50
# Shortest sleep: a due row another beat holds is retried this soon.
MIN_SLEEP = 0.05


class ScheduleError(Exception):
    """A schedule cannot be enqueued as it stands (shown as its last_error)."""


class Beat:
    """The beat loop: ``run()`` until ``stop()``; safe to run in a thread."""

    def __init__(self, *, backend: str = "default", max_sleep: float | None = None, clock=None):
        self.database = task_backends[backend].database
        self.max_sleep = settings.BEAT_MAX_SLEEP if max_sleep is None else max_sleep
        self.clock = clock or timezone.now
        self.beat_id = f"{socket.gethostname()[:40]}-{os.getpid()}"
        # Set by the signal handlers: a StopRequest, which (unlike
        # threading.Event) cannot deadlock there.
        self.stopping = StopRequest()
        self.synced = False

    def run(self, *, once: bool = False) -> None:
        """Tick until stopped (or once), riding out database outages."""
        registry.autodiscover()
        logger.info("beat %s started (database %s)", self.beat_id, self.database)
        failures = 0  # ticks failed in a row
        last_error = None  # the type of the latest failure's exception
        try:
            while not self.stopping.is_set():
                try:
                    sleep = self.tick()
                    if failures:
                        logger.warning("beat %s: ticking again", self.beat_id)
                    failures, last_error = 0, None
                except Exception as error:  # noqa: BLE001 - logged; beat outlives outages
                    failures += 1
                    # The workers' backoff (at most 5 s between tries), so a
                    # beat is back as soon as they are after an outage.
                    sleep = outages.delay(failures)
                    if type(error) is not last_error:
                        # A new kind of failure gets its traceback.
                        logger.exception(
                            "beat %s: tick failed; retrying in %ss", self.beat_id, sleep
                        )
                    else:
                        logger.warning(
                            "beat %s: tick failed again (%s: %s); retrying in %ss",
                            self.beat_id,
                            type(error).__name__,
                            error,
                            sleep,
                        )
                    last_error = type(error)
                    # A database outage leaves a broken connection: drop it,
                    # the next tick reconnects.
                    connections[self.database].close()
                if once:
                    return
                self.stopping.wait(sleep)
        finally:
            connections[self.database].close()
            logger.info("beat %s stopped", self.beat_id)

    def stop(self, *_args) -> None:
        """Stop after the current tick; callable from a signal handler."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop (main thread only)."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def tick(self) -> float:
        """Enqueue every due run; return the seconds to sleep before the next tick."""
        connections[self.database].close_if_unusable_or_obsolete()
        if not self.synced:
            declared.sync(self.database, self.clock())
            self.synced = True
        handled = self.enqueue_due(self.clock())
        if handled >= TICK_BATCH:
            return 0.0
        return self._seconds_to_next_due()

    def enqueue_due(self, now) -> int:
        """Claim the due schedules, enqueue their runs; return how many were handled."""
        results = []
        with transaction.atomic(using=self.database):
            due = list(
                Schedule.objects.using(self.database)
                # SKIP LOCKED: a schedule another beat is handling is left
                # to it, not waited for. (No-op on SQLite, where the
                # IMMEDIATE transaction already holds the write lock.)
                .select_for_update(skip_locked=True)
                .filter(Q(next_run_at__lte=now) | Q(next_run_at__isnull=True), enabled=True)
                .order_by(F("next_run_at").asc(nulls_first=True))[:TICK_BATCH]
            )
            for schedule in due:
                results += self._handle(schedule, now)
            # Listeners hear about jobs that exist: after the commit.
            transaction.on_commit(lambda: self._announce(results), using=self.database)
        return len(due)

    def _handle(self, schedule, now) -> list:
        """Enqueue the due runs of one locked schedule and move it forward."""
        problem = row_problem(schedule)
        if problem:
            # Saved without clean() (a script, a database shell): an
            # impossible timing or call is never guessed at, nor run.
            logger.error("beat: schedule %r is invalid; disabled: %s", schedule.name, problem)
            self._move(schedule, None, [], f"Disabled: {problem}")
            return []
        try:
            if schedule.next_run_at is None:
                # Created without clean() (e.g. through the ORM): compute its
                # first run; it is enqueued on a later tick.
                self._move(schedule, Timing.of(schedule).first_run(now), [], "")
                return []
            runs, next_run_at = due_runs(
                schedule, now, timedelta(seconds=settings.BEAT_MISFIRE_GRACE)
            )
        except DatabaseError:
            raise
        except Exception as error:  # noqa: BLE001 - a bad row must never stop beat
            logger.exception("beat: schedule %r cannot be computed; disabled", schedule.name)
            self._move(schedule, None, [], f"Disabled: cannot compute the next run: {error}")
            return []
        if len(runs) > 1 or (runs and runs[0] != schedule.next_run_at):
            logger.info(
                "beat: schedule %r was due at %s; misfire policy %r enqueues %d run(s)",
                schedule.name,
                schedule.next_run_at.isoformat(),
                schedule.misfire_policy,
                len(runs),
            )
        results, error = self._enqueue_runs(schedule, runs, now)
        self._move(schedule, next_run_at, results, error)
        return results

    def _enqueue_runs(self, schedule, runs, now):
        if not runs:
            return [], ""
        try:
            task, backend = self._task_of(schedule)
        except ScheduleError as error:
            logger.error("beat: schedule %r skipped a run: %s", schedule.name, error)
            return [], str(error)
        if schedule.skip_if_running and self._previous_run_live(schedule):
            logger.info(
                "beat: schedule %r skipped a run: the previous run is not finished", schedule.name
            )
            return [], ""
        results = []
        for scheduled_at in runs:
            try:
                values = job_row(backend, task, schedule.args, schedule.kwargs, now)
            except Exception as error:  # noqa: BLE001 - bad args are the schedule's error
                logger.exception("beat: schedule %r skipped a run: bad arguments", schedule.name)
                return results, f"Cannot enqueue: {error}"
            values.update(schedule_id=schedule.pk, scheduled_at=scheduled_at)
            if self._insert(values):
                logger.info(
                    "beat: enqueued job %s (%s) for schedule %r at %s",
                    values["id"],
                    values["task_path"],
                    schedule.name,
                    scheduled_at.isoformat(),
                )
                results.append((task, values))
        return results, ""

    def _task_of(self, schedule):
        """The registered task of ``schedule``, with its queue and priority."""
        try:
            task = registry.get(schedule.task_path)
            task = task.using(queue_name=schedule.queue_name, priority=schedule.priority)
        except registry.UnknownTask:
            raise ScheduleError(f"{schedule.task_path!r} is not a registered task.") from None
        except Exception as error:  # noqa: BLE001 - an invalid queue or priority
            raise ScheduleError(f"Cannot enqueue {schedule.task_path!r}: {error}") from None
        backend = task.get_backend()
        if getattr(backend, "database", None) != self.database:
            raise ScheduleError(
                f"{schedule.task_path!r} uses the task backend {task.backend!r}, which does "
                f"not store jobs in the database {self.database!r} that this beat serves."
            )
        return task, backend

    def _previous_run_live(self, schedule) -> bool:
        return (
            Job.objects.using(self.database)
            # The live rows (any_status: read from the status and running
            # indexes), then those of the schedule: a busy schedule's past
            # runs are many, its live ones one or two. Counted, not
            # .exists(): under a LIMIT 1 PostgreSQL expects a scan of the
            # whole table to meet a match early, and it meets none.
            .filter(any_status(JobStatus.READY, JobStatus.RUNNING), schedule=schedule)
            .count()
            > 0
        )

    def _insert(self, values) -> bool:
        try:
            # A savepoint, so a duplicate leaves the tick's transaction usable.
            with transaction.atomic(using=self.database):
                insert_job(self.database, values)
        except IntegrityError:
            # Another beat enqueued this run already (the unique
            # (schedule, scheduled_at)), or a unique task's key is taken.
            logger.info(
                "beat: run of schedule %s at %s not enqueued: already enqueued or unique key taken",
                values["schedule_id"],
                values["scheduled_at"].isoformat(),
            )
            return False
        return True

    def _move(self, schedule, next_run_at, results, error) -> None:
        """Store the schedule's next run and bookkeeping (row still locked)."""
        changes = {"next_run_at": next_run_at, "last_error": error}
        if next_run_at is None:
            # No run left (a one-off that ran, or past end_at).
            changes["enabled"] = False
        if results:
            last = results[-1][1]
            changes.update(
                last_run_at=last["scheduled_at"],
                last_job_id=last["id"],
                run_count=F("run_count") + len(results),
            )
        # update(), not save(): only beat's own columns; updated_at keeps the
        # time of the last human edit.
        Schedule.objects.using(self.database).filter(pk=schedule.pk).update(**changes)

    def _announce(self, results) -> None:
        for task, values in results:
            result = to_task_result(Job(**values), task)
            sender = type(task.get_backend())
            signals_of(result.task).task_enqueued.send(sender, task_result=result)

    def _seconds_to_next_due(self) -> float:
        due = (
            Schedule.objects.using(self.database)
            .filter(enabled=True)
            .aggregate(first=Min("next_run_at"))["first"]
        )
        if due is None:
            return self.max_sleep
        wait = (due - self.clock()).total_seconds()
        return min(self.max_sleep, max(MIN_SLEEP, wait))


def row_problem(schedule) -> str:
    """What makes a stored schedule unrunnable as it stands ("" if nothing).

    The timing and the shape of the call only: a task that is not registered
    (yet) skips runs but keeps the schedule enabled (see _task_of).
    """
    errors = validate_timing(
        schedule.cron,
        schedule.interval,
        schedule.run_at,
        schedule.time_zone,
        schedule.start_at,
        schedule.end_at,
    )
    if schedule.misfire_policy not in MISFIRE_POLICIES:
        errors["misfire_policy"] = f"unknown policy {schedule.misfire_policy!r}."
    if not isinstance(schedule.args, list):
        errors["args"] = "args must be a JSON list."
    if not isinstance(schedule.kwargs, dict):
        errors["kwargs"] = "kwargs must be a JSON object."
    # "__all__" (no single field) is the form's key for "exactly one timing".
    return " ".join(
        message if field == "__all__" else f"{field}: {message}"
        for field, message in errors.items()
    )


def start_thread(**options) -> tuple[Beat, threading.Thread]:
    """Run a Beat in a daemon thread (``runworker --beat``).

    Stop it with ``beat.stop()`` then ``thread.join()``; signals stay with
    the caller. ``options`` are Beat's (backend, max_sleep).
    """
    beat = Beat(**options)
    thread = threading.Thread(target=beat.run, name="djtasks-beat", daemon=True)
    thread.start()
    return beat, thread
