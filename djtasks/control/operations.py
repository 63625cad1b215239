"""What the admin does to jobs: retry, cancel (see djtasks.control.cancellation), run now, delete.

Each operation is a guarded UPDATE: the status condition sits in the WHERE
clause, so a job that a worker claimed or finished between the admin's page
load and the click is left alone rather than overwritten.
"""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from djtasks import registry
from djtasks.control import cancellation
from djtasks.models import ERROR_STAGE, JobStatus, any_status
from djtasks.workflows import next_steps

RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
CANCELLABLE = (JobStatus.READY, JobStatus.WAITING, JobStatus.RUNNING)


def retry(jobs) -> int:
    """Put failed or cancelled jobs back to READY with a fresh attempt budget.

    The attempt counter and the errors of earlier attempts are kept (they
    are the job's history); max_attempts grows by the task's budget instead,
    and the count of attempts lost with their worker starts again from 0 (a
    person decided the job deserves another try, poison or not).
    A workflow step runs again alone: the steps it cancelled when it failed
    stay cancelled (see docs/workflows.md).
    One UPDATE per task (budgets differ by task); returns how many jobs were
    put back.
    """
    retryable = retryable_among(jobs)
    paths = retryable.order_by().values_list("task_path", flat=True).distinct()
    return sum(_retry_task(retryable.filter(task_path=path), path) for path in paths)


def retryable_among(jobs):
    """The jobs of ``jobs`` that retry() would put back."""
    # A workflow step cancelled before it was released (waiting_for > 0)
    # never got its input from the step before it: it cannot run alone.
    return jobs.filter(status__in=RETRYABLE).exclude(workflow_id__isnull=False, waiting_for__gt=0)


def cancellable_among(jobs):
    """The jobs of ``jobs`` that cancel() would cancel or ask to stop."""
    # An OR, so that PostgreSQL reads the live rows from their partial
    # indexes, not the history (see models.any_status).
    return jobs.filter(any_status(*CANCELLABLE))


def _retry_task(jobs, task_path: str) -> int:
    try:
        # A savepoint: if one job's unique key is held by a live job, the
        # constraint refuses the whole statement; retry those rows one by one
        # so the others still go back.
        with transaction.atomic(using=jobs.db):
            return _put_back(jobs, task_path)
    except IntegrityError:
        return sum(
            _retry_one(jobs.filter(pk=pk), task_path) for pk in jobs.values_list("pk", flat=True)
        )


def _retry_one(job, task_path: str) -> int:
    try:
        with transaction.atomic(using=job.db):
            return _put_back(job, task_path)
    except IntegrityError:
        return 0  # its unique key is taken: it stays as it was


def _put_back(jobs, task_path: str) -> int:
    now = timezone.now()
    _note_retry(jobs, now)
    # started_at stays: it is when the first attempt began (the claim only
    # sets it while it is empty), and the timeline shows it so.
    return jobs.update(
        status=JobStatus.READY,
        max_attempts=F("attempts") + _budget(task_path),
        lost_attempts=0,
        available_at=now,
        finished_at=None,
        cancel_requested_at=None,
        # A human asked for it to run now: an old expiry no longer applies.
        expires_at=None,
        worker=None,
        progress=None,
    )


def _note_retry(jobs, now) -> None:
    """Write the retry's time into the last error entry, for the job's timeline.

    Runs in the caller's transaction, just before the guarded UPDATE: if that
    UPDATE is refused, the notes roll back with it.
    """
    # FAILED and CANCELLED rows are claimed by no worker; the lock only makes
    # a second admin's retry of the same rows wait, then skip them (they are
    # READY by then and the status filter drops them).
    failed = [job for job in jobs.select_for_update().only("pk", "errors") if job.errors]
    for job in failed:
        job.errors[-1] = {**job.errors[-1], "retried_at": now.isoformat()}
    jobs.model.objects.using(jobs.db).bulk_update(failed, ["errors"], batch_size=500)


def _budget(task_path: str) -> int:
    """How many attempts a fresh run of this task gets."""
    try:
        return getattr(registry.get(task_path), "max_attempts", 1)
    except registry.UnknownTask:
        return 1


def cancel(jobs) -> tuple[int, int]:
    """Cancel ready jobs at once and ask running ones to stop: (cancelled, requested).

    djtasks.control.cancellation does it, so the admin and the workers
    share one cancellation protocol.
    """
    return cancellation.cancel_many(jobs)


def run_now(jobs) -> int:
    """Make ready jobs claimable at once (whatever their run_after or backoff)."""
    return jobs.filter(status=JobStatus.READY).update(available_at=timezone.now())


def delete(jobs) -> int:
    """Delete jobs; a deleted step of an unfinished workflow fails its workflow.

    Its waiting steps would otherwise wait forever for an outcome that never
    comes: they are cancelled and the error callback runs, as when a step
    is cancelled (see djtasks.workflows.next_steps), in the same transaction.
    """
    with transaction.atomic(using=jobs.db):
        # RUNNING rows first, then the workflows' WAITING rows: the order in
        # which a worker recording an outcome locks them (see
        # djtasks.control.cancellation.cancel_many), so the two cannot deadlock.
        list(jobs.filter(status=JobStatus.RUNNING).select_for_update().values_list("pk"))
        steps = jobs.filter(workflow_id__isnull=False).exclude(workflow_stage=ERROR_STAGE)
        unfinished = set(
            jobs.model.objects.using(jobs.db)
            .filter(
                workflow_id__in=steps.values("workflow_id"),
                status=JobStatus.WAITING,
            )
            .values_list("workflow_id", flat=True)
        )
        deleted = [
            next_steps.Finished(job_id, next_steps.DELETED, workflow_id, stage, task_path)
            for job_id, workflow_id, stage, task_path in steps.filter(
                workflow_id__in=unfinished
            ).values_list("id", "workflow_id", "workflow_stage", "task_path")
        ]
        if deleted:
            next_steps.steps_finished(jobs.db, deleted)
        return jobs.delete()[0]
