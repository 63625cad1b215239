"""The tables: one row per job (also its stored result) and per worker."""

import operator
from functools import reduce

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone

from djtasks.ids import new_job_id
from djtasks.schema import LongUniqueCharField, PartialIndex, PartialUniqueConstraint


class JobStatus(models.TextChoices):
    """A superset of Django's TaskResultStatus; see ``STANDARD_STATUS``."""

    READY = "READY", "Ready"
    # A workflow step whose earlier steps have not finished (never claimed).
    WAITING = "WAITING", "Waiting"
    RUNNING = "RUNNING", "Running"
    SUCCESSFUL = "SUCCESSFUL", "Successful"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"
    EXPIRED = "EXPIRED", "Expired"


# How each status looks through the standard TaskResult.status.
STANDARD_STATUS = {
    JobStatus.READY: "READY",
    # Not started and not failed: the standard's nearest status is READY.
    JobStatus.WAITING: "READY",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.SUCCESSFUL: "SUCCESSFUL",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "FAILED",
    JobStatus.EXPIRED: "FAILED",
}

FINISHED_STATUSES = (
    JobStatus.SUCCESSFUL,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.EXPIRED,
)


def any_status(*statuses) -> Q:
    """Rows in any of ``statuses``, as an OR of equalities rather than an IN list.

    djtasks_job_status leaves RUNNING and SUCCESSFUL rows out, and
    djtasks_job_running holds the RUNNING ones. PostgreSQL can answer an OR
    from a partial index per status (a BitmapOr); an IN list that names
    RUNNING is answered by one index or none, which means a scan of the
    whole history.
    """
    return reduce(operator.or_, (Q(status=status) for status in statuses))


class Worker(models.Model):
    """One worker process; its heartbeat says whether it is alive."""

    id = models.CharField(primary_key=True, max_length=64)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    backend = models.CharField(max_length=100, default="default")
    queues = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField(default=1)
    # The task paths this worker can run, sorted, and a digest of that list
    # (workers of one deploy share it). NULL and "": a worker of a version
    # that did not report its tasks. Both have database defaults, so such a
    # worker can still register during a rolling upgrade.
    tasks = models.JSONField(null=True, blank=True)
    task_digest = models.CharField(max_length=64, blank=True, default="", db_default="")
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["last_heartbeat_at"])]

    def __str__(self):
        return f"{self.hostname}:{self.pid} ({self.id})"


def default_time_zone():
    return settings.TIME_ZONE


class MisfirePolicy(models.TextChoices):
    """What beat does with runs missed while no beat was up."""

    LATEST = "latest", "Run once, for the latest missed time"
    ALL = "all", "Run every missed time (up to the cap)"
    SKIP = "skip", "Skip missed runs"


class Schedule(models.Model):
    """A periodic (cron or interval) or one-off job, kept in the database."""

    name = models.CharField(max_length=200, unique=True)
    task_path = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0)

    # Exactly one of cron, interval or run_at says when it runs.
    cron = models.CharField(max_length=100, blank=True)
    interval = models.DurationField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default=default_time_zone)

    enabled = models.BooleanField(default=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    misfire_policy = models.CharField(
        max_length=10, choices=MisfirePolicy.choices, default=MisfirePolicy.LATEST
    )
    # With misfire_policy "all": at most this many missed runs per catch-up.
    misfire_cap = models.PositiveIntegerField(default=100)
    # Do not enqueue while the previous run is still READY or RUNNING.
    skip_if_running = models.BooleanField(default=False)
    # Declared in code (synced by name when beat starts) or made in the admin.
    declared_in_code = models.BooleanField(default=False)

    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(
        "Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    run_count = models.PositiveIntegerField(default=0)
    # Why beat last skipped this schedule (e.g. its task disappeared).
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            # Beat reads the enabled schedules that are due.
            PartialIndex(
                fields=["next_run_at"],
                where=Q(enabled=True),
                name="djtasks_schedule_due",
                leading=["enabled"],
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        # Cron parses, time zone exists, task registered, exactly one of
        # cron/interval/run_at; then next_run_at follows an edited timing.
        from djtasks.beat.timing import clean_schedule

        clean_schedule(self)


# The workflow_stage of a workflow's error callback: it runs only if a step fails.
ERROR_STAGE = -1


class Job(models.Model):
    """One enqueued call of a task, and the stored result of running it."""

    id = models.UUIDField(primary_key=True, default=new_job_id, editable=False)
    task_path = models.CharField(max_length=255)
    backend = models.CharField(max_length=100, default="default")
    queue_name = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.READY)

    enqueued_at = models.DateTimeField(default=timezone.now)
    # The run_after the caller asked for (None: as soon as possible).
    run_after = models.DateTimeField(null=True, blank=True)
    # When the job may next be claimed: run_after or the enqueue time at
    # first, pushed forward by retry backoff. Never NULL, so the claim index
    # orders every ready row without a sentinel value.
    available_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Not started by then: the job never runs and ends EXPIRED.
    expires_at = models.DateTimeField(null=True, blank=True)

    # The attempt counter lives in its own column (it is len(worker_ids)) so
    # the claim and the rescue can compare it with max_attempts in SQL on
    # every database.
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    # Attempts lost with their worker (djtasks.worker.rescue). Such an
    # attempt stays in ``attempts`` (it did start) but gives its place in
    # max_attempts back; after MAX_LOST_ATTEMPTS of them the job fails as a
    # poison job. A column, not a count of WorkerLost entries in ``errors``,
    # so the rescue compares it in plain SQL; an admin retry resets it.
    # db_default: rows inserted by an older enqueuer during an upgrade.
    lost_attempts = models.PositiveIntegerField(default=0, db_default=0)
    # Backoff and retry_on, as given to the task (see djtasks.retry).
    retry_policy = models.JSONField(default=dict, blank=True)
    # Hard time limit of one attempt, in seconds.
    timeout = models.FloatField(null=True, blank=True)

    worker = models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        db_index=False,
        related_name="jobs",
    )
    worker_ids = models.JSONField(default=list, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    # One entry per failed attempt: exception_class_path, traceback, attempt,
    # worker_id, failed_at.
    errors = models.JSONField(default=list, blank=True)
    # {"current": int, "total": int | None, "message": str}
    progress = models.JSONField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # NULL, not "", for "no key": the unique constraint ignores NULLs.
    unique_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # Limits (djtasks.limits), copied from the task at enqueue time so the
    # claim needs no task code. ``limited`` is set when any is: such rows are
    # kept out of the plain claim and taken by djtasks.worker.claim_limited.
    rate_limit = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001
    concurrency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    # db_default too: rows inserted by code that predates the column (during
    # a rolling upgrade) get False instead of failing NOT NULL.
    limited = models.BooleanField(default=False, db_default=False)
    # Set on READY rows of a paused task (djtasks.control.queues), which
    # takes them out of both claim indexes: a paused backlog costs the claim
    # nothing. The claim sets it too on a paused task's row it meets (one
    # enqueued or retried after the pause), so it meets each row once.
    paused = models.BooleanField(default=False, db_default=False)

    # The schedule run that enqueued this job, if any.
    schedule = models.ForeignKey(
        Schedule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        # Indexed by djtasks_job_one_per_schedule_run, whose first column it
        # is. Every index on a column the claim and the completion change
        # costs both writes, so no index here is kept twice.
        db_index=False,
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)

    # The model row this job is about (enqueue(..., about=instance)).
    content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # Indexed by djtasks_job_about (content_type, object_id).
        db_index=False,
    )
    object_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    about = GenericForeignKey("content_type", "object_id")

    # Workflows (djtasks.workflows.canvas): the steps of one chain, group or chord
    # share a workflow_id. A stage is one step, or a group's steps, that the
    # next stage waits for; stage -1 is the error callback. Within a group,
    # workflow_index is the step's place in the list of results (NULL for a
    # single step, whose result is passed on as it is).
    workflow_id = models.UUIDField(null=True, blank=True, db_index=False)
    workflow_stage = models.IntegerField(null=True, blank=True)
    workflow_index = models.IntegerField(null=True, blank=True)
    # How many steps this WAITING step still waits for: it becomes READY when
    # the count reaches 0 (see djtasks.workflows.next_steps).
    # db_default: rows inserted without it (an older djtasks still
    # enqueueing during an upgrade, raw SQL) are plain jobs waiting for none.
    waiting_for = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["-enqueued_at"]
        indexes = [
            # The claim reads ready rows of one backend's queue, highest
            # priority first, then oldest due. Partial, so its size follows
            # the backlog, not the history; limited rows are left out, so a
            # backlog of jobs waiting for their limit costs the plain claim
            # nothing. The backend leads: a worker of one TASKS alias never
            # reads past another alias's backlog in the same queue.
            PartialIndex(
                fields=["backend", "queue_name", "-priority", "available_at"],
                where=Q(status="READY", limited=False, paused=False),
                name="djtasks_job_ready",
                leading=["status", "limited", "paused"],
            ),
            # The same order for the ready rows that carry a limit, read by
            # djtasks.worker.claim_limited.
            PartialIndex(
                fields=["backend", "queue_name", "-priority", "available_at"],
                where=Q(status="READY", limited=True, paused=False),
                name="djtasks_job_ready_limited",
                leading=["limited", "status", "paused"],
            ),
            # The READY rows of paused tasks, by task: a resume finds its
            # rows here; no claim reads it.
            PartialIndex(
                fields=["task_path"],
                where=Q(status="READY", paused=True),
                name="djtasks_job_paused",
                leading=["status", "paused"],
            ),
            # Running jobs per concurrency key: the limited claim counts them.
            PartialIndex(
                fields=["concurrency_key"],
                where=Q(status="RUNNING", concurrency_key__isnull=False),
                name="djtasks_job_running_key",
                leading=["status"],
            ),
            # The rescue looks up running rows by worker.
            PartialIndex(
                fields=["worker"],
                where=Q(status="RUNNING"),
                name="djtasks_job_running",
                leading=["status"],
            ),
            # Jobs by status, newest first: the admin's status filter and the
            # counts of the rarer statuses. Partial on PostgreSQL: RUNNING
            # and SUCCESSFUL rows stay out, so neither the claim nor the
            # completion of a job that succeeds adds an entry to it (both
            # are non-HOT updates, which add one to every index whose
            # condition the new row meets): some 5% of PostgreSQL's CPU per
            # job of a one-process drain. Running rows are found by
            # djtasks_job_running; successful ones are most of the history,
            # so the admin's list finds the newest by walking
            # djtasks_job_recent. Elsewhere the full index (see
            # PartialIndex's postgresql_only).
            PartialIndex(
                fields=["status", "-enqueued_at"],
                where=~Q(status__in=[JobStatus.RUNNING, JobStatus.SUCCESSFUL]),
                name="djtasks_job_status",
                leading=[],
                postgresql_only=True,
            ),
            # The admin's default list order (it adds -pk), newest first,
            # without sorting the whole table.
            models.Index(fields=["-enqueued_at", "-id"], name="djtasks_job_recent"),
            # The dashboard's per-minute chart and pruning read finished rows
            # by time.
            PartialIndex(
                fields=["finished_at"],
                where=Q(finished_at__isnull=False),
                name="djtasks_job_finished",
                leading=[],
            ),
            models.Index(fields=["task_path"], name="djtasks_job_task"),
            PartialIndex(
                fields=["content_type", "object_id"],
                where=Q(object_id__isnull=False),
                name="djtasks_job_about",
                leading=[],
            ),
            # The steps of one workflow, by status: djtasks.workflows.next_steps reads a
            # workflow's WAITING steps (not the thousands of a big chord's
            # header that already ran) and pruning asks whether any step is
            # still live. Partial: jobs outside a workflow (nearly all) add
            # nothing to it, so claims and completions of plain jobs do not
            # pay for it.
            PartialIndex(
                fields=["workflow_id", "status"],
                where=Q(workflow_id__isnull=False),
                name="djtasks_job_workflow",
                leading=[],
            ),
        ]
        constraints = [
            # Each run of a schedule is enqueued once, however many beats run.
            # Partial: most jobs come from no schedule, and stay out of it.
            PartialUniqueConstraint(
                fields=["schedule", "scheduled_at"],
                condition=Q(schedule__isnull=False),
                name="djtasks_job_one_per_schedule_run",
            ),
            # At most one live (ready or running) job per unique key; a
            # database constraint, so two enqueuers cannot race past it.
            PartialUniqueConstraint(
                fields=["unique_key"],
                condition=Q(status__in=["READY", "RUNNING"]) & Q(unique_key__isnull=False),
                name="djtasks_job_unique_live_key",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-100) & Q(priority__lte=100),
                name="djtasks_job_priority_range",
            ),
        ]

    def __str__(self):
        return f"{self.task_path} [{self.status}] {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class Limit(models.Model):
    """The shared state of one rate limit: a queue's or a task's.

    Claims lock this row (SELECT ... FOR UPDATE) while they decide whether
    jobs under the limit may start, so workers take turns per limit. ``key``
    is "queue:<name>" or "task:<path>" (djtasks.worker.claim_limited).
    """

    key = LongUniqueCharField(max_length=300, unique=True)
    # Rate limits: recent starts as [[epoch microseconds, jobs], ...], oldest
    # first, pruned to the limit's period (the sliding window).
    starts = models.JSONField(default=list, blank=True)
    # Rate limits: no job of the key may start before this time (NULL: it
    # may now). A hint the claim reads without a lock, to skip waiting jobs.
    blocked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key


class ControlKind(models.TextChoices):
    QUEUE = "queue", "Queue"
    TASK = "task", "Task"


class Control(models.Model):
    """An operator's live setting for one queue or task, read by every claim.

    Settings in code are the defaults; a value stored here wins until it is
    cleared (djtasks.control.queues changes these rows, djtasks.controls
    reads them). A row whose settings are cleared stays, saying who cleared them.
    """

    kind = models.CharField(max_length=8, choices=ControlKind.choices)
    # A queue name or a task path.
    name = models.CharField(max_length=255)
    # No worker claims READY jobs of a paused queue or task.
    paused = models.BooleanField(default=False)
    # Overrides DJTASKS["QUEUE_RATE_LIMITS"] (a queue) or the task's
    # rate_limit option (a task): "100/m".
    rate_limit = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001
    # A queue only: at most this many of its jobs RUNNING across all workers.
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    changed_by = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "name"]
        # The admin lists these rows as its Queues page.
        verbose_name = "queue control"
        verbose_name_plural = "queues"
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="djtasks_control_one_per_name"),
        ]
        # Each control is its own permission; view_control shows the page.
        permissions = [
            ("pause_queue", "Can pause and resume queues"),
            ("limit_queue", "Can change the limits of queues"),
            ("pause_task", "Can pause and resume tasks"),
            ("limit_task", "Can change the rate limits of tasks"),
        ]

    def __str__(self):
        return f"{self.kind} {self.name}"
