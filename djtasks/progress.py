"""Progress reports from inside a running task, stored on its job row.

A task that takes its context calls::

    djtasks.set_progress(context, 40, total=100, message="resizing images")

Each call is at most one small UPDATE of Job.progress. Calls that come
faster than MIN_INTERVAL seconds apart for the same job are dropped (a tight
loop must not turn into a write per iteration); the first report and the
one that reaches ``total`` are always written.
"""

import threading
import time

from djtasks.compat import database_of

# Seconds between two progress writes of one job.
MIN_INTERVAL = 0.5
# The longest message kept; longer ones are cut.
MAX_MESSAGE = 200
# Throttle entries kept before the oldest are forgotten.
MAX_TRACKED = 10_000

_last_write: dict[str, float] = {}
_lock = threading.Lock()


def set_progress(context, current, total=None, message: str = "", *, force: bool = False) -> bool:
    """Record how far the running job has got; return whether it was written.

    ``context`` is the task's TaskContext (``takes_context=True``) or a
    TaskResult. ``current`` and ``total`` are non-negative numbers (``total``
    may be None when unknown).
    """
    result = getattr(context, "task_result", context)
    value = progress_value(current, total, message)
    job_id = str(result.id)
    done = total is not None and current >= total
    if not (force or done or _due(job_id)):
        return False
    # Imported here: djtasks/__init__.py exports this function and loads
    # before the app registry is ready.
    from djtasks.models import Job, JobStatus

    database = database_of(result.backend)
    # One UPDATE, in the task's own autocommit. The guards (still RUNNING,
    # still this attempt, still this claim, as the completion's guard in
    # djtasks.worker.outcomes) keep a late report from touching a job that
    # was rescued, finished or claimed again meanwhile.
    this_run = {"status": JobStatus.RUNNING, "attempts": len(result.worker_ids)}
    claimed_at = getattr(result, "last_attempted_at", None)
    if claimed_at is not None:
        this_run["last_attempted_at"] = claimed_at
    Job.objects.using(database).filter(pk=job_id, **this_run).update(progress=value)
    if done:
        with _lock:
            _last_write.pop(job_id, None)
    return True


def progress_value(current, total=None, message: str = "") -> dict:
    """Validate a progress report and return it as stored on the row."""
    if not _number(current) or current < 0:
        raise ValueError("current must be a non-negative number.")
    if total is not None and (not _number(total) or total <= 0):
        raise ValueError("total must be a positive number or None.")
    return {"current": current, "total": total, "message": str(message)[:MAX_MESSAGE]}


def percent(progress) -> float | None:
    """The share done (0-100) of a stored progress value, None if unknown."""
    if not isinstance(progress, dict):
        return None
    current, total = progress.get("current"), progress.get("total")
    if not (_number(current) and _number(total)) or total <= 0:
        return None
    return round(max(0.0, min(100.0, 100.0 * current / total)), 1)


def _due(job_id: str) -> bool:
    """Whether enough time has passed since this job's last write."""
    now = time.monotonic()
    # Worker threads share this dict; the lock keeps the check-and-set whole.
    with _lock:
        last = _last_write.get(job_id)
        if last is not None and now - last < MIN_INTERVAL:
            return False
        if len(_last_write) >= MAX_TRACKED:
            _last_write.clear()
        _last_write[job_id] = now
        return True


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
