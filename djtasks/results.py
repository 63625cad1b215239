"""Job rows seen through the standard TaskResult."""

import copy
import dataclasses

from djtasks import registry
from djtasks.compat import framework_of
from djtasks.errors import current_class_path
from djtasks.models import STANDARD_STATUS


def task_as_enqueued(task, job):
    """Return ``task`` with the queue, priority and run_after of ``job``."""
    return _task_with(task, job.queue_name, job.priority, job.run_after, job.backend)


def _task_with(task, queue_name, priority, run_after, backend):
    if (
        task.queue_name == queue_name
        and task.priority == priority
        and task.run_after == run_after
        and task.backend == backend
    ):
        return task
    # A shallow copy with the fields set directly: the row was validated when
    # it was enqueued, and must stay readable even if QUEUES changed since.
    enqueued = copy.copy(task)
    for field, value in (
        ("queue_name", queue_name),
        ("priority", priority),
        ("run_after", run_after),
        ("backend", backend),
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
    statuses = _statuses(framework)
    error_class = framework["TaskError"]
    return _builder(framework)(
        task_as_enqueued(task, job),
        str(job.id),
        statuses[job.status],
        job.enqueued_at,
        job.started_at,
        job.finished_at,
        job.last_attempted_at,
        job.args,
        job.kwargs,
        job.backend,
        [
            error_class(
                exception_class_path=current_class_path(error["exception_class_path"]),
                traceback=error["traceback"],
            )
            for error in job.errors
        ],
        list(job.worker_ids),
        job.return_value,
    )


def enqueued_result(task, row: dict):
    """The TaskResult of a job row just inserted (see djtasks.enqueue.rows).

    The same as to_task_result() of the row, for the enqueue paths: nothing
    has run yet, so there are no errors, workers or return value to read.
    """
    framework = framework_of(task)
    return _builder(framework)(
        _task_with(task, row["queue_name"], row["priority"], row["run_after"], row["backend"]),
        str(row["id"]),
        _statuses(framework)[row["status"]],
        row["enqueued_at"],
        None,
        None,
        None,
        row["args"],
        row["kwargs"],
        row["backend"],
        [],
        [],
        None,
    )


def standard_status(task, status: str):
    """The TaskResultStatus member (of the task's framework) for a job status."""
    return _statuses(framework_of(task))[status]


# The fields of the standard TaskResult, in the order _builder takes them.
_FIELDS = (
    "task",
    "id",
    "status",
    "enqueued_at",
    "started_at",
    "finished_at",
    "last_attempted_at",
    "args",
    "kwargs",
    "backend",
    "errors",
    "worker_ids",
    "_return_value",
)

# Per framework (keyed by its package name): the builder and the status map.
_BUILDERS = {}
_STATUSES = {}


def _statuses(framework) -> dict:
    """Job status -> the framework's TaskResultStatus member, looked up once."""
    statuses = _STATUSES.get(framework["package"])
    if statuses is None:
        status_class = framework["TaskResultStatus"]
        statuses = {job: status_class(standard) for job, standard in STANDARD_STATUS.items()}
        _STATUSES[framework["package"]] = statuses
    return statuses


def _builder(framework):
    """A function making the framework's TaskResult from the _FIELDS values.

    The worker builds one TaskResult per attempt and the enqueue one per job,
    so this is on both hot paths. The standard constructor sets each field of
    the frozen dataclass through object.__setattr__ and then normalises args
    and kwargs to JSON data; ours already are JSON data (read back from the
    row, or normalised by djtasks.enqueue.payload before the insert), so the fields
    are set directly, about three times faster. Should the standard class
    ever have other fields than these, its own constructor is used.
    """
    build = _BUILDERS.get(framework["package"])
    if build is None:
        result_class = framework["TaskResult"]
        names = tuple(field.name for field in dataclasses.fields(result_class))
        if set(names) == set(_FIELDS) and hasattr(result_class, "__slots__"):
            build = _direct_builder(result_class)
        else:
            build = _standard_builder(result_class)
        _BUILDERS[framework["package"]] = build
    return build


def _direct_builder(result_class):
    new = result_class.__new__
    # The slots' own descriptors: they write past the frozen __setattr__.
    (
        set_task,
        set_id,
        set_status,
        set_enqueued_at,
        set_started_at,
        set_finished_at,
        set_last_attempted_at,
        set_args,
        set_kwargs,
        set_backend,
        set_errors,
        set_worker_ids,
        set_return_value,
    ) = (getattr(result_class, name).__set__ for name in _FIELDS)

    def build(
        task,
        id,
        status,
        enqueued_at,
        started_at,
        finished_at,
        last_attempted_at,
        args,
        kwargs,
        backend,
        errors,
        worker_ids,
        return_value,
    ):
        result = new(result_class)
        set_task(result, task)
        set_id(result, id)
        set_status(result, status)
        set_enqueued_at(result, enqueued_at)
        set_started_at(result, started_at)
        set_finished_at(result, finished_at)
        set_last_attempted_at(result, last_attempted_at)
        set_args(result, args)
        set_kwargs(result, kwargs)
        set_backend(result, backend)
        set_errors(result, errors)
        set_worker_ids(result, worker_ids)
        set_return_value(result, return_value)
        return result

    return build


def _standard_builder(result_class):
    def build(*values):
        fields = dict(zip(_FIELDS, values, strict=True))
        return_value = fields.pop("_return_value")
        result = result_class(**fields)
        # _return_value is init=False in the standard dataclass.
        object.__setattr__(result, "_return_value", return_value)
        return result

    return build
