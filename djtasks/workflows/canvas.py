"""Workflows: chain, group and chord, enqueued in one transaction.

A workflow is a list of stages. A stage is one step, or a group's steps
that run in parallel; each stage waits for the whole stage before it and
receives its result as the first argument: a single step's return value, or
a group's return values as a list in the group's order. A chord is a chain
of a group and a callback.

Every step is a Job row, all inserted at once in the caller's transaction:
the first stage READY, the later ones WAITING (never claimed). What
happens when a step finishes is djtasks.workflows.next_steps.
"""

from dataclasses import dataclass
from uuid import UUID, uuid4

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from djtasks.compat import TASK_CLASSES, InvalidTask, TaskResultDoesNotExist, signals_of
from djtasks.enqueue.api import resolve_task
from djtasks.enqueue.task import Step


def step(task_or_path, *args, **kwargs) -> Step:
    """Describe one call of a task (a Task, a ``.using()`` copy or a dotted path)."""
    return Step(resolve_task(task_or_path), args, kwargs)


def _as_step(item) -> Step:
    if isinstance(item, Step):
        return item
    if isinstance(item, (*TASK_CLASSES, str)):
        return step(item)
    raise TypeError(
        f"{item!r} is not a workflow step: use djtasks.step(task, *args) or task.step(*args)."
    )


class Workflow:
    """Stages of steps, enqueued together; built by chain(), group() or chord()."""

    def __init__(self, stages, on_error=None):
        # [(steps, grouped)]: a group's results are passed on as a list,
        # even a group of one.
        self.stages: list[tuple[list[Step], bool]] = stages
        self.on_error: Step | None = None if on_error is None else _as_step(on_error)
        if not stages or not all(steps for steps, _ in stages):
            raise ValueError("A workflow needs at least one step, and a group at least one.")

    def enqueue(self) -> "WorkflowResult":
        """Insert every step in one transaction; return their results."""
        from djtasks.backend import DatabaseBackend

        backend = _backend_of(self._all_steps(), DatabaseBackend)
        return _enqueue(backend, self)

    async def aenqueue(self) -> "WorkflowResult":
        """See enqueue()."""
        return await sync_to_async(self.enqueue)()

    def _all_steps(self) -> list[Step]:
        steps = [item for stage, _ in self.stages for item in stage]
        return steps if self.on_error is None else [*steps, self.on_error]


def chain(*items, on_error=None) -> Workflow:
    """Run steps one after another, each given the previous one's result.

    An item may also be a group (its steps run in parallel and the next item
    gets their results as a list) or a chain (its stages are spliced in).
    """
    stages = []
    for item in items:
        if isinstance(item, Workflow):
            if item.on_error is not None:
                raise ValueError("Give on_error to the outer workflow, not to a part of it.")
            stages.extend(item.stages)
        else:
            stages.append(([_as_step(item)], False))
    return Workflow(stages, on_error)


def group(*items, on_error=None) -> Workflow:
    """Run steps in parallel; their results are collected in the given order."""
    if len(items) == 1 and not isinstance(items[0], (Step, Workflow, *TASK_CLASSES, str)):
        items = tuple(items[0])  # group([a, b]) as well as group(a, b)
    for item in items:
        if isinstance(item, Workflow):
            raise TypeError(
                "A group holds steps; a chain or group inside a group is not supported."
            )
    return Workflow([([_as_step(item) for item in items], True)], on_error)


def chord(header, callback, *, on_error=None) -> Workflow:
    """Run the ``header`` steps in parallel, then ``callback`` with their results."""
    if not isinstance(header, Workflow):
        header = group(*header)
    if len(header.stages) != 1 or not header.stages[0][1]:
        raise TypeError("A chord's header is a group (or a list) of steps.")
    if header.on_error is not None:
        raise ValueError("Give on_error to the chord, not to its header.")
    return chain(header, callback, on_error=on_error)


@dataclass
class WorkflowResult:
    """The TaskResults of an enqueued workflow's steps, stage by stage."""

    id: UUID
    # One list per stage; a single step's stage holds one result.
    stages: list[list]
    grouped: list[bool]
    # The error callback's result, or None (none given, or not needed: it is
    # deleted when every step succeeded).
    on_error: object = None

    @property
    def results(self) -> list:
        """Every step's result, in workflow order (the error callback aside)."""
        return [result for stage in self.stages for result in stage]

    @property
    def last(self):
        """The last stage: its TaskResult, or a group's list of them."""
        return self.stages[-1] if self.grouped[-1] else self.stages[-1][0]

    @property
    def return_value(self):
        """The last stage's return value (a list for a group), once it succeeded."""
        if self.grouped[-1]:
            return [result.return_value for result in self.stages[-1]]
        return self.stages[-1][0].return_value

    def refresh(self) -> None:
        """Read every step's current state, in one query.

        Each TaskResult is updated in place, as its own refresh() would.
        """
        from djtasks.compat import database_of
        from djtasks.models import Job
        from djtasks.results import to_task_result

        results = self.results if self.on_error is None else [*self.results, self.on_error]
        rows = Job.objects.using(database_of(results[0].backend)).in_bulk(
            [UUID(result.id) for result in results]
        )
        for result in results:
            row = rows.get(UUID(result.id))
            if row is None and result is self.on_error:
                self.on_error = None  # not needed: every step succeeded
                continue
            if row is None:
                raise TaskResultDoesNotExist(result.id)
            fresh = to_task_result(row, result.task)
            for name in _REFRESHED:
                object.__setattr__(result, name, getattr(fresh, name))


# What TaskResult.refresh() copies from a fresh result (the same set in
# Django and in the backport).
_REFRESHED = (
    "status",
    "enqueued_at",
    "started_at",
    "finished_at",
    "last_attempted_at",
    "errors",
    "worker_ids",
    "_return_value",
)


def get_workflow(workflow_id, *, backend: str = "default") -> WorkflowResult:
    """Read an enqueued workflow's steps back, e.g. from an id kept in a session."""
    from djtasks.compat import database_of
    from djtasks.models import ERROR_STAGE, Job
    from djtasks.results import to_task_result

    steps = list(
        Job.objects.using(database_of(backend))
        .filter(workflow_id=UUID(str(workflow_id)))
        .order_by("workflow_stage", "workflow_index")
    )
    if not steps:
        raise TaskResultDoesNotExist(f"No workflow {workflow_id}.")
    by_stage, on_error = {}, None
    for job in steps:
        if job.workflow_stage == ERROR_STAGE:
            on_error = to_task_result(job)
        else:
            by_stage.setdefault(job.workflow_stage, []).append(job)
    numbers = sorted(by_stage)
    return WorkflowResult(
        id=steps[0].workflow_id,
        stages=[[to_task_result(job) for job in by_stage[number]] for number in numbers],
        grouped=[by_stage[number][0].workflow_index is not None for number in numbers],
        on_error=on_error,
    )


def _backend_of(steps, backend_class):
    """The one djtasks backend every step is enqueued through."""
    backends = {item.task.get_backend() for item in steps}
    databases = {getattr(backend, "database", None) for backend in backends}
    if not all(isinstance(backend, backend_class) for backend in backends):
        raise InvalidTask("Every step of a workflow must use a djtasks DatabaseBackend.")
    if len(databases) != 1:
        raise InvalidTask("The steps of a workflow must all keep their jobs in one database.")
    # Several aliases on one database are fine: each row records its own.
    return next(iter(backends))


def _enqueue(backend, workflow: Workflow) -> WorkflowResult:
    from djtasks.enqueue.insert import insert_jobs
    from djtasks.models import ERROR_STAGE
    from djtasks.results import enqueued_result

    workflow_id = uuid4()
    now = timezone.now()
    rows, stage_rows = [], []
    previous = 0
    for number, (steps, grouped) in enumerate(workflow.stages):
        stage = [
            _row(item, workflow_id, number, index if grouped else None, previous, now)
            for index, item in enumerate(steps)
        ]
        stage_rows.append(stage)
        rows.extend(stage)
        previous = len(steps)
    error_row = None
    if workflow.on_error is not None:
        # It waits for every step: when the last one succeeds, it is not
        # needed and goes (see djtasks.workflows.next_steps); the first failure runs it.
        error_row = _row(workflow.on_error, workflow_id, ERROR_STAGE, None, len(rows), now)
        rows.append(error_row)
    # One transaction (a savepoint inside the caller's): the whole workflow
    # or nothing, committed or rolled back with the caller's data.
    with transaction.atomic(using=backend.database):
        insert_jobs(backend.database, rows)
    results = {}
    for item, row in _pairs(workflow, rows):
        result = enqueued_result(item.task, row)
        results[row["id"]] = result
        signals_of(item.task).task_enqueued.send(type(backend), task_result=result)
    return WorkflowResult(
        id=workflow_id,
        stages=[[results[row["id"]] for row in stage] for stage in stage_rows],
        grouped=[grouped for _, grouped in workflow.stages],
        on_error=None if error_row is None else results[error_row["id"]],
    )


def _row(item: Step, workflow_id, stage: int, index, waits_for: int, now) -> dict:
    """The job row of one step, validated like a plain enqueue."""
    from djtasks.enqueue.rows import job_row

    task = item.task
    if getattr(task, "unique", False) or getattr(task, "unique_key", None):
        raise InvalidTask(
            f"{task.module_path}: a workflow step cannot be unique (it would wait "
            f"outside the unique constraint)."
        )
    backend = task.get_backend()
    backend.validate_task(task)
    row = job_row(backend, task, item.args, item.kwargs, now)
    row.update(
        workflow_id=workflow_id,
        workflow_stage=stage,
        workflow_index=index,
        waiting_for=waits_for,
        status="READY" if waits_for == 0 else "WAITING",
    )
    return row


def _pairs(workflow, rows):
    return zip(workflow._all_steps(), rows)
