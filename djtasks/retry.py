"""When a failed attempt runs again: the policy kept on the row, and backoff."""

import random
import sys

from djtasks.conf import settings
from djtasks.errors import class_path
from djtasks.exceptions import Retry


def policy_of(task) -> dict:
    """The retry policy of ``task`` as JSON for the job row."""
    policy = {}
    for name in ("backoff", "backoff_max"):
        value = getattr(task, name, None)
        if value is not None:
            policy[name] = value
    if not getattr(task, "jitter", True):
        policy["jitter"] = False
    retry_on = getattr(task, "retry_on", ())
    if retry_on:
        policy["retry_on"] = [class_path(cls) for cls in retry_on]
    return policy


def backoff_delay(policy: dict, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential (base, 2 base, 4 base, ...) capped at backoff_max; with
    jitter, a random point between half and all of it.
    """
    base = policy.get("backoff", settings.BACKOFF_BASE)
    cap = policy.get("backoff_max", settings.BACKOFF_MAX)
    # The exponent is capped so a huge attempt count cannot overflow a float.
    delay = min(cap, base * 2 ** min(attempt - 1, 60))
    if policy.get("jitter", True):
        delay = random.uniform(delay / 2, delay)
    return delay


def should_retry(policy: dict, error: BaseException) -> bool:
    """Whether ``error`` is one the policy retries (all, when none listed)."""
    paths = policy.get("retry_on")
    if not paths:
        return True
    return isinstance(error, tuple(filter(None, map(_loaded_exception_class, paths))))


def _loaded_exception_class(path: str):
    """The exception class at ``path`` if its module is already imported.

    The path comes from a job row, so it is never a reason to import a
    module: a class the task can raise lives in a module that is loaded.
    """
    module_name, _, name = path.rpartition(".")
    value = getattr(sys.modules.get(module_name), name, None)
    if isinstance(value, type) and issubclass(value, BaseException):
        return value
    return None


def recorded_error(error: BaseException, retried: bool) -> BaseException:
    """The exception an attempt's error entry names.

    A Retry that uses up the last attempt is recorded as the exception it
    was for, so the job ends FAILED with the real cause (class, message and
    traceback); a retried attempt, and a Retry naming no exception, keep
    the Retry itself.
    """
    if not retried and isinstance(error, Retry) and error.original is not None:
        return error.original
    return error
