"""djtasks' own exceptions (the standard ones come from djtasks.compat)."""

from .compat import InvalidTask


class ArgumentNotSerializable(InvalidTask, TypeError):  # noqa: N818 - like InvalidTask
    """An argument of an enqueued call cannot be stored as JSON."""


class PayloadTooLarge(InvalidTask, ValueError):  # noqa: N818 - like InvalidTask
    """The JSON arguments of an enqueued call exceed MAX_PAYLOAD_BYTES."""


class Retry(Exception):  # noqa: N818 - raised by users like Celery's Retry
    """Raise from inside a task to run it again after ``delay`` seconds.

    The retry counts as an attempt; once max_attempts is used up the job
    ends FAILED with this exception in its errors.
    """

    def __init__(self, delay: float | None = None, reason: str = ""):
        self.delay = delay
        self.reason = reason
        super().__init__(reason or f"retry requested (delay={delay})")


class WorkflowStepFailed(Exception):  # noqa: N818 - names the event, like JobTimeout
    """A workflow step did not run because an earlier step failed.

    Recorded (never raised) in the errors of the steps cancelled that way;
    its message names the step that failed and how it ended.
    """
