"""Job rows seen through the standard TaskResult."""

import copy

from . import registry
from .compat import framework_of
from .models import STANDARD_STATUS


def task_as_enqueued(task, job):
    """Return ``task`` with the queue, priority and run_after of ``job``."""
    if (
        task.queue_name == job.queue_name
        and task.priority == job.priority
        and task.run_after == job.run_after
        and task.backend == job.backend
    ):
        return task
    # A shallow copy with the fields set directly: the row was validated when
    # it was enqueued, and must stay readable even if QUEUES changed since.
    enqueued = copy.copy(task)
    for field, value in (
        ("queue_name", job.queue_name),
        ("priority", job.priority),
        ("run_after", job.run_after),
        ("backend", job.backend),
    ):
        object.__setattr__(enqueued, field, value)
    return enqueued


def to_task_result(job, task=None):
    """Build the TaskResult (of the task's own framework) for a job.

    ``job`` is a Job row or a claim.ClaimedJob: both carry the same fields.
    """
    if task is None:
        task = registry.get(job.task_path)
    framework = framework_of(task)
    error_class = framework["TaskError"]
    result = framework["TaskResult"](
        task=task_as_enqueued(task, job),
        id=str(job.id),
        status=framework["TaskResultStatus"](STANDARD_STATUS[job.status]),
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.last_attempted_at,
        args=job.args,
        kwargs=job.kwargs,
        backend=job.backend,
        errors=[
            error_class(
                exception_class_path=error["exception_class_path"],
                traceback=error["traceback"],
            )
            for error in job.errors
        ],
        worker_ids=list(job.worker_ids),
    )
    # _return_value is init=False in the standard dataclass.
    object.__setattr__(result, "_return_value", job.return_value)
    return result
