"""DatabaseTask: the standard Task plus djtasks' options, and its decorator."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from djtasks.compat import InvalidTask, Task
from djtasks.enqueue.celery_habits import missing_method_message, unknown_options_message
from djtasks.limits import parse_rate

# Options DatabaseTask adds to the standard Task, accepted by @task and by
# Task.using().
OPTION_NAMES = (
    "max_attempts",
    "backoff",
    "backoff_max",
    "jitter",
    "retry_on",
    "timeout",
    "expires",
    "unique",
    "unique_key",
    "rate_limit",
    "concurrency_key",
    "concurrency_limit",
    "on_success",
    "on_failure",
    "on_retry",
    "about",
)

# Hooks are read from the registered task when the worker runs the job (the
# row stores the task's path, not the callables), so they belong on the
# definition and .using() refuses them rather than dropping them silently.
HOOK_NAMES = ("on_success", "on_failure", "on_retry")


def absolute_run_after(run_after):
    """Turn a timedelta run_after into an aware datetime from now."""
    if isinstance(run_after, timedelta):
        return timezone.now() + run_after
    return run_after


@dataclass(frozen=True)
class Step:
    """One call in a workflow: a task with the arguments it is given.

    The previous stage's result comes first, before ``args``.
    """

    task: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseTask(Task):
    # How many times the job may run in all (1: no retry).
    max_attempts: int = 1
    # Seconds before the first retry; doubled each attempt (None: the
    # BACKOFF_BASE setting).
    backoff: float | None = None
    # The longest wait between two attempts, in seconds.
    backoff_max: float | None = None
    # Randomise each wait between half and all of it, so retries of many
    # jobs that failed together do not arrive together.
    jitter: bool = True
    # Retry only for these exception classes (empty: any exception).
    retry_on: tuple[type[BaseException], ...] = ()
    # Hard limit of one attempt, in seconds.
    timeout: float | None = None
    # Not started this long after enqueue: never run, end EXPIRED.
    expires: timedelta | float | None = None
    # At most one READY or RUNNING job per key: derived from the task and its
    # arguments (unique=True) or given (unique_key="...").
    unique: bool = False
    unique_key: str | None = None
    # At most this many jobs of the task start in any span of the period,
    # across all workers: "100/m" (per s, m or h). See docs/limits.md.
    rate_limit: str | None = None
    # At most concurrency_limit RUNNING jobs per key, across all workers. The
    # key is a string or a callable of the job's arguments that returns one;
    # a limit alone keys on the task. See djtasks.limits.concurrency_of.
    concurrency_key: str | Callable[..., str] | None = None
    concurrency_limit: int | None = None
    # Called in the worker with the TaskResult after each outcome.
    on_success: Callable[[Any], None] | None = None
    on_failure: Callable[[Any], None] | None = None
    on_retry: Callable[[Any], None] | None = None
    # The saved model instance the job is about (recorded on the row, see
    # djtasks.admin.JobsAboutMixin); meant for .using(about=instance).
    about: Any = None

    def __post_init__(self):
        if isinstance(self.retry_on, (type, list)):
            object.__setattr__(self, "retry_on", _as_tuple(self.retry_on))
        validate_options(self)
        Task.__post_init__(self)

    def using(self, *, run_after=None, **changes):
        """Create a new Task with modified defaults, djtasks options included."""
        unknown = (
            set(changes)
            - set(OPTION_NAMES)
            - {
                "priority",
                "queue_name",
                "backend",
            }
        )
        if unknown:
            raise TypeError(unknown_options_message(unknown))
        hooks = [name for name in HOOK_NAMES if name in changes]
        if hooks:
            raise TypeError(
                f"{', '.join(hooks)} cannot be set with .using(): the worker calls the hooks "
                "of the task as defined, so set them on the task definition (@task(...))."
            )
        if run_after is not None:
            changes["run_after"] = absolute_run_after(run_after)
        # dataclasses.replace re-runs __post_init__, so the result is
        # validated like a freshly decorated task.
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def step(self, *args, **kwargs):
        """Describe a call of this task as a workflow step (see djtasks.workflows)."""
        return Step(self, args, kwargs)

    def __getattr__(self, name):
        # Only reached when normal lookup fails. Celery's methods (delay,
        # apply_async, ...) stay absent, hasattr() included; the error says
        # what to write instead. Reads no field, so it cannot recurse.
        raise AttributeError(missing_method_message(type(self).__name__, name), name=name, obj=self)


def _as_tuple(value):
    return (value,) if isinstance(value, type) else tuple(value)


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def validate_options(task: DatabaseTask) -> None:
    """Raise InvalidTask if one of djtasks' options is out of range."""
    if not isinstance(task.max_attempts, int) or task.max_attempts < 1:
        raise InvalidTask("max_attempts must be a whole number of at least 1.")
    for name in ("backoff", "backoff_max", "timeout"):
        value = getattr(task, name)
        if value is not None and not _positive_number(value):
            raise InvalidTask(f"{name} must be a positive number of seconds.")
    expires = task.expires
    if expires is not None and not (
        _positive_number(expires)
        or (isinstance(expires, timedelta) and expires.total_seconds() > 0)
    ):
        raise InvalidTask("expires must be a positive timedelta or number of seconds.")
    if not all(isinstance(cls, type) and issubclass(cls, BaseException) for cls in task.retry_on):
        raise InvalidTask("retry_on must list exception classes.")
    if task.unique_key is not None and not (
        isinstance(task.unique_key, str) and 0 < len(task.unique_key) <= 255
    ):
        raise InvalidTask("unique_key must be a string of 1 to 255 characters.")
    _validate_limits(task)
    for name in ("on_success", "on_failure", "on_retry"):
        hook = getattr(task, name)
        if hook is not None and not callable(hook):
            raise InvalidTask(f"{name} must be callable.")


def _validate_limits(task: DatabaseTask) -> None:
    if task.rate_limit is not None:
        try:
            parse_rate(task.rate_limit)
        except ValueError as error:
            raise InvalidTask(f"rate_limit: {error}") from None
    key, limit = task.concurrency_key, task.concurrency_limit
    if key is not None and not (callable(key) or (isinstance(key, str) and 0 < len(key) <= 255)):
        raise InvalidTask("concurrency_key must be a string of 1 to 255 characters or a callable.")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InvalidTask("concurrency_limit must be a whole number of at least 1.")


def task(
    function=None,
    *,
    priority: int = 0,
    queue_name: str = "default",
    backend: str = "default",
    takes_context: bool = False,
    **options,
):
    """Make a DatabaseTask of a module-level function, with djtasks' options.

    Works bare (``@task``) or with options (``@task(max_attempts=3)``), on
    Django 6.x and on Django 5.2 with the backport, whatever backend the
    alias names: another backend simply ignores djtasks' options.
    """
    if "run_after" in options:
        raise TypeError(
            "run_after cannot be set on the @task decorator; "
            "use .using(run_after=...) when enqueueing."
        )
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(unknown_options_message(unknown))

    def wrapper(func):
        return DatabaseTask(
            func=func,
            priority=priority,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            # Required by Django 6.0's Task (a default since 6.1).
            run_after=None,
            **options,
        )

    if function is not None:
        return wrapper(function)
    return wrapper


def expires_at(task, enqueued_at: datetime):
    """The time after which a job of ``task`` enqueued now must not start."""
    expires = getattr(task, "expires", None)
    if expires is None:
        return None
    if not isinstance(expires, timedelta):
        expires = timedelta(seconds=expires)
    return enqueued_at + expires
