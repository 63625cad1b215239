"""Cancellation: stored on the job row, so it works across hosts and restarts.

From anywhere (a view, the shell, the admin)::

    djtasks.cancel(result.id)      # or cancel(result)

* a READY job becomes CANCELLED at once and never runs (a WAITING workflow
  step too; the rest of its workflow fails, see djtasks.workflows.next_steps);
* a RUNNING job gets ``cancel_requested_at``. Its worker sees the request
  within about a second. A task that takes its context can stop early::

      @djtasks.task(takes_context=True)
      def export(context, ids):
          for chunk in chunks(ids):
              djtasks.control.raise_if_cancel_requested(context)
              ...

  The attempt then ends CANCELLED (never retried). A task that does not
  stop within CANCEL_GRACE seconds is stopped by force: its worker process
  is replaced and the job recorded CANCELLED.
"""

import uuid
from enum import StrEnum

from django.utils import timezone

from djtasks.compat import database_of
from djtasks.exceptions import Cancelled
from djtasks.worker.cancel_watch import CancelWatch


class CancelResult(StrEnum):
    """What cancel() did."""

    CANCELLED = "cancelled"  # it was waiting: it will never run
    REQUESTED = "requested"  # it is running: its worker was asked to stop it
    FINISHED = "finished"  # it had already finished: nothing to do
    NOT_FOUND = "not found"


def cancel(job, *, backend: str = "default"):
    """Cancel one job (an id, a TaskResult or a Job); return a CancelResult.

    Given a QuerySet of jobs, cancels them all and returns (cancelled,
    requested) counts, as the admin action needs.
    """
    from django.db.models import QuerySet

    if isinstance(job, QuerySet):
        return cancel_many(job)
    backend = getattr(job, "backend", None) or backend
    database = database_of(backend)
    job_id = _job_id(job)
    if job_id is None:
        return CancelResult.NOT_FOUND
    cancelled, requested = cancel_many(_jobs(database).filter(pk=job_id))
    if cancelled:
        return CancelResult.CANCELLED
    if requested:
        return CancelResult.REQUESTED
    if _jobs(database).filter(pk=job_id).exists():
        return CancelResult.FINISHED
    return CancelResult.NOT_FOUND


def cancel_many(jobs) -> tuple[int, int]:
    """Cancel the ready jobs of a QuerySet, ask its running ones to stop."""
    from django.db import transaction

    from djtasks.models import JobStatus

    now = timezone.now()
    cancel = {"status": JobStatus.CANCELLED, "finished_at": now, "cancel_requested_at": now}
    # Guarded UPDATEs in one transaction. A job claimed between the first
    # two is RUNNING by the second: on PostgreSQL the first UPDATE waits for
    # the claim's row lock, then finds the row no longer READY and skips it.
    # WAITING workflow steps come last, after the RUNNING rows, the order in
    # which a worker recording a step's outcome locks them (its RUNNING row,
    # then its workflow's WAITING rows; see djtasks.workflows.next_steps): taking them
    # first could deadlock with it.
    with transaction.atomic(using=jobs.db):
        cancelled = jobs.filter(status=JobStatus.READY).update(**cancel)
        requested = jobs.filter(status=JobStatus.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now
        )
        cancelled += jobs.filter(status=JobStatus.WAITING).update(**cancel)
        if cancelled:
            _advance_workflows(jobs, now)
    return cancelled, requested


def _advance_workflows(jobs, now) -> None:
    """Fail the rest of the workflows whose steps were just cancelled."""
    from djtasks.models import JobStatus
    from djtasks.workflows import next_steps

    # The rows this cancel wrote carry its own timestamp.
    steps = jobs.filter(
        status=JobStatus.CANCELLED, cancel_requested_at=now, workflow_id__isnull=False
    ).values_list("id", "status", "workflow_id", "workflow_stage", "task_path")
    finished = [next_steps.Finished(*row) for row in steps]
    if finished:
        next_steps.steps_finished(jobs.db, finished)


def is_cancel_requested(context) -> bool:
    """Whether the running job of ``context`` (a TaskContext or TaskResult) was cancelled.

    Inside a worker this is a dictionary lookup (the worker refreshes the
    requests about once a second); elsewhere it reads the row.
    """
    result = getattr(context, "task_result", context)
    job_id = uuid.UUID(str(result.id))
    watch = CancelWatch.active
    if watch is not None:
        return job_id in watch.requested
    return (
        _jobs(database_of(result.backend))
        .filter(pk=job_id, cancel_requested_at__isnull=False)
        .exists()
    )


def raise_if_cancel_requested(context) -> None:
    """Raise Cancelled if the running job of ``context`` was cancelled."""
    if is_cancel_requested(context):
        raise Cancelled(f"job {getattr(context, 'task_result', context).id} was cancelled")


def _jobs(database):
    from djtasks.models import Job

    return Job.objects.using(database)


def _job_id(job):
    value = getattr(job, "id", job)
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None
