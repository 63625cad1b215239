"""The executor: runs one claimed job and says how it ended.

It never writes to the database itself: it returns an Outcome, and the
worker writes a batch of them at once (djtasks.worker.outcomes).
"""

import asyncio
import json
import logging
import threading
import time
from datetime import timedelta
from inspect import iscoroutinefunction

from django.utils import timezone

from djtasks import registry
from djtasks.compat import framework_of, normalize_json, signals_of
from djtasks.errors import error_entry
from djtasks.exceptions import MalformedJob, Retry
from djtasks.results import standard_status, to_task_result
from djtasks.retry import backoff_delay, recorded_error, should_retry
from djtasks.worker.outcomes import Outcome, attempt_outcome

logger = logging.getLogger("djtasks")


class Executor:
    """Runs claimed jobs, one at a time, in the calling thread."""

    def __init__(self, worker_id: str, backend_class):
        self.worker_id = worker_id
        # Standard signals are sent with the backend class as sender.
        self.sender = backend_class
        self._loop = None
        # Whether each task function is a coroutine function, asked once.
        self._is_async = {}

    def run(self, job) -> Outcome:
        """Run one attempt of ``job`` (a claim.ClaimedJob)."""
        started = time.monotonic()
        # Expiry is about starting late: only a first attempt expires, never
        # the retry of a job that did start in time. Late means claimed late
        # or, claimed in time, started late after waiting in its batch.
        if (
            job.expires_at is not None
            and job.attempts == 1
            and job.expires_at <= max(job.last_attempted_at, timezone.now())
        ):
            return self._expired(job)
        try:
            task = registry.get(job.task_path)
        except registry.UnknownTask as error:
            return self._unrunnable(job, error)
        if not isinstance(job.args, list) or not isinstance(job.kwargs, dict):
            # Only a row edited by hand looks like this; unpacked anyway, a
            # string or an object would call the task with its characters or keys.
            return self._unrunnable(job, MalformedJob(job))
        result = to_task_result(job, task)
        signals_of(task).task_started.send(self.sender, task_result=result)
        try:
            value = self._call(task, job, result)
            value = _json_value(value)
        except BaseException as error:  # noqa: BLE001 - any failure is recorded
            if _is_users_interrupt(error):
                raise
            outcome = self._failed(job, task, result, error)
        else:
            outcome = self._succeeded(job, task, result, value)
        _log(job, outcome, time.monotonic() - started)
        return outcome

    def close(self):
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def _call(self, task, job, result):
        args = job.args
        if task.takes_context:
            context_class = framework_of(task)["TaskContext"]
            args = [context_class(task_result=result), *args]
        func = task.func
        is_async = self._is_async.get(func)
        if is_async is None:
            is_async = self._is_async[func] = iscoroutinefunction(func)
        if is_async:
            # One event loop per executor thread, reused across jobs.
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(func(*args, **job.kwargs))
        return func(*args, **job.kwargs)

    def _succeeded(self, job, task, result, value):
        finished_at = timezone.now()
        _set(result, task, status="SUCCESSFUL", finished_at=finished_at)
        object.__setattr__(result, "_return_value", value)
        signals_of(task).task_finished.send(self.sender, task_result=result)
        _hook(task, "on_success", result)
        return attempt_outcome(job, "SUCCESSFUL", finished_at, return_value=value)

    def _failed(self, job, task, result, error):
        """Record a failed attempt; called inside the except block."""
        now = timezone.now()
        retry_at = self._retry_at(job, error, now)
        recorded = recorded_error(error, retried=retry_at is not None)
        entry = error_entry(
            recorded, job.attempts, self.worker_id, now, started_at=job.last_attempted_at
        )
        if retry_at is None:
            outcome = attempt_outcome(job, "FAILED", now, error=entry)
        else:
            outcome = attempt_outcome(job, "READY", None, error=entry, available_at=retry_at)
        # Sent while the exception is being handled, so the standard logging
        # receiver records its traceback.
        _announce_failure(self.sender, task, result, outcome)
        return outcome

    def _retry_at(self, job, error, now):
        """When to run again after ``error``, or None for no retry."""
        if job.attempts >= job.max_attempts:
            return None
        if isinstance(error, Retry):
            delay = error.delay
        elif should_retry(job.retry_policy, error):
            delay = None
        else:
            return None
        if delay is None:
            delay = backoff_delay(job.retry_policy, job.attempts)
        return now + timedelta(seconds=delay)

    def _expired(self, job):
        now = timezone.now()
        logger.info(
            "job %s task=%s queue=%s expired at %s before it started",
            job.id,
            job.task_path,
            job.queue_name,
            job.expires_at.isoformat(),
        )
        return attempt_outcome(job, "EXPIRED", now)

    def _unrunnable(self, job, error):
        """A row naming no registered task, or a malformed call, fails at once, never retried."""
        now = timezone.now()
        logger.error("job %s task=%s cannot run: %s", job.id, job.task_path, error)
        entry = error_entry(error, job.attempts, self.worker_id, now, f"{error}\n")
        return attempt_outcome(job, "FAILED", now, error=entry)


def _is_users_interrupt(error: BaseException) -> bool:
    """Whether ``error`` may be a Ctrl-C to pass on rather than the task's failure.

    Python delivers signals to the main thread only, so in a worker's claim
    thread a KeyboardInterrupt can only come from the task's own code (a
    ``raise KeyboardInterrupt``): it fails the attempt like any exception,
    and the thread goes on. In the main thread (run_jobs() in a test) it may
    be the person at the keyboard, and goes up as it does with the standard
    ImmediateBackend. SystemExit and other BaseExceptions are always the
    task's: nothing outside the task raises them here.
    """
    return (
        isinstance(error, KeyboardInterrupt)
        and threading.current_thread() is threading.main_thread()
    )


# Return values that are JSON as they are (most tasks return one of these).
_PLAIN_TYPES = (type(None), bool, int, str)


def _json_value(value):
    """The return value as JSON data, or a TypeError saying why not."""
    if type(value) in _PLAIN_TYPES:
        return value
    try:
        value = normalize_json(value)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"The task returned a value that is not JSON-serialisable: {error}"
        ) from error
    return value


def announce_stopped(job, outcome: Outcome, backend_class) -> None:
    """Send ``task_finished`` and run the hook for an attempt stopped over its timeout.

    The attempt's own thread cannot: it is still inside the task while its
    process is replaced. The worker's main thread calls this once the
    outcome is written; ``outcome`` is FAILED (``on_failure``) or READY for
    a retry (``on_retry``).
    """
    try:
        task = registry.get(job.task_path)
    except registry.UnknownTask:
        return
    _announce_failure(backend_class, task, to_task_result(job, task), outcome)


def _announce_failure(sender, task, result, outcome: Outcome) -> None:
    """Give ``result`` the failed attempt's error and status, send task_finished, run the hook.

    ``outcome`` is FAILED (``on_failure``) or READY for a retry (``on_retry``).
    """
    entry = outcome.error
    result.errors.append(
        framework_of(task)["TaskError"](
            exception_class_path=entry["exception_class_path"],
            traceback=entry["traceback"],
        )
    )
    if outcome.status == "FAILED":
        _set(result, task, status="FAILED", finished_at=outcome.finished_at)
        hook = "on_failure"
    else:
        _set(result, task, status="READY")
        hook = "on_retry"
    signals_of(task).task_finished.send(sender, task_result=result)
    _hook(task, hook, result)


def _set(result, task, status, finished_at=None):
    # TaskResult is a frozen dataclass; the executor owns this copy.
    object.__setattr__(result, "status", standard_status(task, status))
    object.__setattr__(result, "finished_at", finished_at)


def _hook(task, name, result):
    hook = getattr(task, name, None)
    if hook is None:
        return
    try:
        hook(result)
    except Exception:
        logger.exception("%s hook of %s failed for job %s", name, task.module_path, result.id)


# Every per-job log line starts the same way (see job_fields).
JOB_FORMAT = "job %s task=%s queue=%s attempt=%d/%d"


def job_fields(job) -> tuple:
    """The arguments of JOB_FORMAT for ``job``."""
    return (job.id, job.task_path, job.queue_name, job.attempts, job.max_attempts)


def _log(job, outcome, duration):
    # Checked first so that, with INFO off, no arguments are even gathered
    # (the answer is cached by the logging module until its config changes).
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        JOB_FORMAT + " outcome=%s duration=%.3fs", *job_fields(job), outcome.status, duration
    )
