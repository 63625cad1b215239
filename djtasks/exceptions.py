"""djtasks' own exceptions (the standard ones come from djtasks.compat).

The classes below the line are recorded in Job.errors by their dotted path
(``djtasks.exceptions.JobTimeout``), so that path is part of the stored data:
they live here, where moving a module cannot change it (djtasks.errors maps
the paths older versions stored).
"""

from djtasks.compat import InvalidTask


class ArgumentNotSerializable(InvalidTask, TypeError):  # noqa: N818 - like InvalidTask
    """An argument of an enqueued call cannot be stored as JSON."""


class PayloadTooLarge(InvalidTask, ValueError):  # noqa: N818 - like InvalidTask
    """The JSON arguments of an enqueued call exceed MAX_PAYLOAD_BYTES."""


class Retry(Exception):  # noqa: N818 - raised by users like Celery's Retry
    """Raise from inside a task to run it again after ``delay`` seconds.

    The retry counts as an attempt. Once max_attempts is used up the job
    ends FAILED with the exception the retry was for, as Celery re-raises
    ``self.retry(exc=...)``'s ``exc``: ``Retry(exc=error)`` or ``raise
    Retry() from error`` names it; a Retry naming none is recorded itself.
    """

    def __init__(
        self, delay: float | None = None, reason: str = "", exc: BaseException | None = None
    ):
        if exc is not None and not isinstance(exc, BaseException):
            raise TypeError(f"Retry(exc=...) takes an exception, not {type(exc).__name__}.")
        self.delay = delay
        self.reason = reason
        self.exc = exc
        super().__init__(reason or f"retry requested (delay={delay})")

    @property
    def original(self) -> BaseException | None:
        """The exception this retry is for: ``exc``, else the one raised ``from``."""
        return self.exc if self.exc is not None else self.__cause__


class WorkflowStepFailed(Exception):  # noqa: N818 - names the event, like JobTimeout
    """A workflow step did not run because an earlier step failed.

    Recorded (never raised) in the errors of the steps cancelled that way;
    its message names the step that failed and how it ended.
    """


# --- recorded in Job.errors ---------------------------------------------------


class WorkerLost(Exception):  # noqa: N818 - names the event, like JobTimeout
    """The attempt's worker died or stopped heartbeating before it finished.

    Recorded (never raised) by the rescue of a lost worker's jobs.
    """


class JobTimeout(TimeoutError):  # noqa: N818 - named like the outcome it records
    """The attempt ran longer than its task's ``timeout``.

    A TimeoutError, so ``retry_on=[TimeoutError]`` retries it.
    """


class UnknownTask(LookupError):  # noqa: N818 - reads better at call sites
    """The path does not name a registered task."""


class Cancelled(Exception):  # noqa: N818 - reads like the status it leads to
    """Raised inside a task to stop it after its job was cancelled."""


class MalformedJob(ValueError):  # noqa: N818 - like UnknownTask
    """A job row whose args are not a JSON list or whose kwargs are not an object."""

    def __init__(self, job):
        super().__init__(
            f"The job's args must be a JSON list and its kwargs a JSON object; the row "
            f"holds {type(job.args).__name__} args and {type(job.kwargs).__name__} kwargs."
        )
