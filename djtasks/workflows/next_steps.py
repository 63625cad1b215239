"""What a finished workflow step does to the steps after it.

Called inside the transaction that records the step's outcome (the
completion, the rescue of a dead worker's jobs, a cancel), so the outcome
and its effect on the workflow commit together or not at all: a crash in
between can neither lose the next step nor release it twice.

* A step that succeeded counts down ``waiting_for`` of the next stage's
  steps and of the error callback. A step whose count reaches 0 becomes
  READY with the previous stage's result as its first argument; an error
  callback whose count reaches 0 is deleted (every step succeeded).
* A step that ended FAILED, CANCELLED or EXPIRED (after its retries), or
  was deleted by hand, cancels every WAITING step of its workflow, with a WorkflowStepFailed
  error naming it, and makes the error callback READY with the failed
  job's id as its first argument.

Why a chord's callback is released exactly once, even when two header
steps finish at the same instant in two processes: every call first locks
all WAITING rows of the workflow (PostgreSQL, SELECT ... FOR UPDATE in id
order, so two transactions never lock them in opposite orders) and keeps the
locks until its transaction commits. The second transaction waits at that
SELECT, and its following statements see the first one's committed count:
the counts go down one transaction at a time, and only the transaction
that takes a count to 0 sees it reach 0. Rows leave WAITING only here, under
the same locks, so the set of locked rows cannot change under us. On SQLite
the transaction holds the database write lock (BEGIN IMMEDIATE), which
serialises the same way.
"""

import logging
from collections import Counter
from datetime import timedelta
from typing import NamedTuple

from django.db import connections
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from djtasks.exceptions import WorkflowStepFailed
from djtasks.models import ERROR_STAGE, Job, JobStatus

logger = logging.getLogger("djtasks")

# Not a status: a step deleted by hand (djtasks.control.operations.delete).
DELETED = "DELETED"
FAILURES = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED, DELETED)
STEP_FAILED_PATH = f"{WorkflowStepFailed.__module__}.{WorkflowStepFailed.__qualname__}"


class Finished(NamedTuple):
    """A workflow step whose final (or retry) status was just written."""

    job_id: object
    status: str
    workflow_id: object
    stage: int
    task_path: str


def steps_finished(database: str, steps) -> None:
    """Advance the workflows of ``steps`` (Finished), in the caller's transaction.

    A few statements per workflow and batch, not per step: the steps of one
    workflow that a batch finished are counted down together, per stage
    (nearly always one: a stage starts only when the one before it is done).
    """
    by_workflow = {}
    for finished in steps:
        # The error callback's own outcome moves nothing on.
        if finished.stage != ERROR_STAGE:
            by_workflow.setdefault(finished.workflow_id, []).append(finished)
    # One workflow after another, in a fixed order, so two transactions that
    # hold steps of the same workflows lock their rows in the same order.
    for workflow_id in sorted(by_workflow, key=str):
        batch = by_workflow[workflow_id]
        failed = [finished for finished in batch if finished.status in FAILURES]
        if failed:
            # Nothing waits any more for the other steps of the batch.
            _failed(database, failed[0])
            continue
        done = Counter(
            finished.stage for finished in batch if finished.status == JobStatus.SUCCESSFUL
        )
        for stage, count in sorted(done.items()):
            _succeeded(database, workflow_id, stage, count)


def _waiting(database, workflow_id):
    return Job.objects.using(database).filter(workflow_id=workflow_id, status=JobStatus.WAITING)


def _lock(database, workflow_id) -> None:
    """Lock the workflow's WAITING rows until commit (see the module doc)."""
    if connections[database].features.has_select_for_update:
        list(_waiting(database, workflow_id).select_for_update().order_by("pk").values_list("pk"))


def _succeeded(database, workflow_id, stage: int, count: int) -> None:
    """Count ``count`` successful steps of ``stage`` off the steps after it."""
    _lock(database, workflow_id)
    # The next stage and the error callback wait for these steps.
    after = _waiting(database, workflow_id).filter(workflow_stage__in=[stage + 1, ERROR_STAGE])
    # Greatest: a count never goes below 0, whatever happened to the rows.
    if not after.filter(waiting_for__gt=0).update(
        waiting_for=Greatest(F("waiting_for") - count, 0)
    ):
        return
    # A WAITING row at 0 is one this call just counted down: any other was
    # released (or deleted) by the transaction that took it to 0.
    due = list(after.filter(waiting_for=0).values("id", "workflow_stage"))
    if not due:
        return
    error_callbacks = [row["id"] for row in due if row["workflow_stage"] == ERROR_STAGE]
    if error_callbacks:
        # Every step succeeded: the error callback is not needed.
        Job.objects.using(database).filter(pk__in=error_callbacks).delete()
    released = [row["id"] for row in due if row["workflow_stage"] != ERROR_STAGE]
    if released:
        value = _stage_result(database, workflow_id, stage)
        for job_id in released:
            _release(database, job_id, value)


def _stage_result(database, workflow_id, stage):
    """A single step's return value, or a group's return values in order."""
    rows = list(
        Job.objects.using(database)
        .filter(workflow_id=workflow_id, workflow_stage=stage)
        .order_by("workflow_index")
        .values_list("workflow_index", "return_value")
    )
    if len(rows) == 1 and rows[0][0] is None:
        return rows[0][1]
    return [value for _, value in rows]


def _release(database, job_id, first_argument) -> None:
    """Make a WAITING step READY, ``first_argument`` before its own arguments."""
    jobs = Job.objects.using(database).filter(pk=job_id, status=JobStatus.WAITING)
    job = jobs.only("args", "run_after", "expires_at", "enqueued_at").first()
    if job is None:
        return
    now = timezone.now()
    expires_at = job.expires_at
    if expires_at is not None:
        # ``expires`` counts from when the step could first start, not from
        # when the workflow was enqueued.
        expires_at += max(now - job.enqueued_at, timedelta(0))
    jobs.update(
        status=JobStatus.READY,
        args=[first_argument, *job.args],
        waiting_for=0,
        available_at=max(now, job.run_after or now),
        expires_at=expires_at,
    )


def _failed(database, finished: Finished) -> None:
    _lock(database, finished.workflow_id)
    waiting = _waiting(database, finished.workflow_id)
    error_callback = waiting.filter(workflow_stage=ERROR_STAGE).values_list("pk", flat=True).first()
    now = timezone.now()
    how = "was deleted" if finished.status == DELETED else f"ended {finished.status}"
    message = f"{STEP_FAILED_PATH}: step {finished.task_path} (job {finished.job_id}) {how}\n"
    entry = {
        "exception_class_path": STEP_FAILED_PATH,
        "traceback": message,
        "attempt": 0,
        "worker_id": None,
        "failed_at": now.isoformat(),
    }
    # WAITING steps never ran, so their errors list is empty: it is replaced.
    cancelled = waiting.exclude(workflow_stage=ERROR_STAGE).update(
        status=JobStatus.CANCELLED, finished_at=now, errors=[entry]
    )
    if error_callback is not None:
        _release(database, error_callback, str(finished.job_id))
    if cancelled or error_callback is not None:
        logger.info(
            "workflow %s: step %s task=%s ended %s: %d later step(s) cancelled%s",
            finished.workflow_id,
            finished.job_id,
            finished.task_path,
            finished.status,
            cancelled,
            ", error callback released" if error_callback is not None else "",
        )
