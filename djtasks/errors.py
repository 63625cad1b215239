"""The entries of Job.errors: one per failed attempt, the same shape everywhere.

An entry names the exception by its dotted class path, so the path is stored
data: the standard ``TaskError.exception_class`` imports it when a result is
read. djtasks' own recorded errors live in djtasks.exceptions for that
reason; the paths that older versions stored are mapped to them on reading.
"""

import traceback

# Class paths that older versions of djtasks wrote, and their class today.
RENAMED_CLASS_PATHS = {
    "djtasks.rescue.WorkerLost": "djtasks.exceptions.WorkerLost",
    "djtasks.watchdog.JobTimeout": "djtasks.exceptions.JobTimeout",
    "djtasks.registry.UnknownTask": "djtasks.exceptions.UnknownTask",
    "djtasks.control.Cancelled": "djtasks.exceptions.Cancelled",
    "djtasks.executor.MalformedJob": "djtasks.exceptions.MalformedJob",
}


def class_path(value) -> str:
    """The dotted path of an exception (or its class), as Job.errors stores it."""
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def error_entry(
    error, attempt, worker_id: str, failed_at, traceback_text=None, started_at=None
) -> dict:
    """One entry of Job.errors: what failed, where, and its traceback.

    ``error`` is the exception (or its class); the traceback defaults to the
    exception's own. ``started_at``, when known, is when the attempt began:
    the admin's timeline shows it as "attempt N started".
    """
    if traceback_text is None:
        traceback_text = "".join(traceback.format_exception(error))
    entry = {
        "exception_class_path": class_path(error),
        "traceback": traceback_text,
        "attempt": attempt,
        "worker_id": worker_id,
        "failed_at": failed_at.isoformat(),
    }
    if started_at is not None:
        entry["started_at"] = started_at.isoformat()
    return entry


def current_class_path(path: str) -> str:
    """The class path of a stored entry, as this version of djtasks names it."""
    return RENAMED_CLASS_PATHS.get(path, path)
