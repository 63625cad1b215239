"""The columns and read-only fields of the jobs admin, and a job's timeline."""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from djtasks.admin import waiting, workflows
from djtasks.admin.display import (
    breakable_path,
    error_message,
    format_duration,
    format_time,
    job_link,
    pretty_json,
    progress_bar,
    short_time,
    status_badge,
    trimmed_traceback,
)
from djtasks.ids import short_id
from djtasks.models import JobStatus


class JobColumns:
    """The ``@admin.display`` methods of JobAdmin: one per column or field."""

    @admin.display(description="id", ordering="pk")
    def short_id(self, job):
        return short_id(job.pk)

    # Not sortable: on PostgreSQL the status index leaves running and
    # successful jobs out, so sorting by status would sort the whole
    # history; the status filter finds each status by index instead.
    @admin.display(description="status")
    def status_column(self, job):
        badge = status_badge(job.status)
        if job.status == JobStatus.RUNNING and job.cancel_requested_at:
            # A Cancel was clicked: the worker stops the job at its next check.
            return format_html('{} <span class="djtasks-stop-pending">stop requested</span>', badge)
        return badge

    @admin.display(description="task", ordering="task_path")
    def task_column(self, job):
        return breakable_path(job.task_path)

    @admin.display(description="status")
    def status_list_column(self, job):
        return format_html(
            '{}<br><span class="djtasks-quiet">{} {}</span>',
            self.status_column(job),
            "attempts" if job.max_attempts > 1 else "attempt",
            self.attempts_column(job),
        )

    @admin.display(description="task and queue", ordering="task_path")
    def task_list_column(self, job):
        return format_html(
            '{}<br><span class="djtasks-quiet">queue {}</span>',
            breakable_path(job.task_path),
            job.queue_name,
        )

    @admin.display(description="enqueued · took", ordering="enqueued_at")
    def when_column(self, job):
        took = self.duration_column(job)
        if took == "-":
            return short_time(job.enqueued_at)
        return format_html(
            '{}<br><span class="djtasks-quiet">took {}</span>', short_time(job.enqueued_at), took
        )

    @admin.display(description="queue", ordering="queue_name")
    def queue_column(self, job):
        return job.queue_name

    @admin.display(description="enqueued", ordering="enqueued_at")
    def enqueued_column(self, job):
        return short_time(job.enqueued_at)

    @admin.display(description="started", ordering="started_at")
    def started_column(self, job):
        return short_time(job.started_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished_column(self, job):
        return short_time(job.finished_at)

    @admin.display(description="progress")
    def list_progress_column(self, job):
        return progress_bar(job.progress, compact=True)

    @admin.display(description="attempts")
    def attempts_column(self, job):
        # A lost attempt gave its place in max_attempts back (djtasks.worker.rescue).
        lost = f" ({job.lost_attempts} lost with its worker)" if job.lost_attempts else ""
        return f"{job.attempts}/{job.max_attempts}{lost}"

    @admin.display(description="why it waits")
    def waiting_column(self, job):
        found = waiting.reasons(job)
        if not found:
            return "-"
        items = format_html_join("", "<li>{}</li>", ((reason,) for reason in found))
        return format_html("<ul>{}</ul>", items)

    @admin.display(description="duration")
    def duration_column(self, job):
        if job.started_at and not job.finished_at and job.status == JobStatus.RUNNING:
            return f"{format_duration(timezone.now() - job.started_at)} so far"
        return format_duration(job.duration)

    @admin.display(description="progress")
    def progress_column(self, job):
        return progress_bar(job.progress)

    @admin.display(description="worker")
    def worker_column(self, job):
        if job.worker_id is None:
            return "-"
        url = reverse("admin:djtasks_worker_change", args=[job.worker_id])
        return format_html('<a href="{}">{}</a>', url, job.worker_id)

    @admin.display(description="limits")
    def limits_column(self, job):
        parts = []
        if job.rate_limit:
            parts.append(f"rate {job.rate_limit}")
        if job.concurrency_key:
            parts.append(f"at most {job.concurrency_limit} running for {job.concurrency_key}")
        return "; ".join(parts) or "-"

    @admin.display(description="about")
    def about_column(self, job):
        if job.content_type_id is None:
            return "-"
        target = job.about
        if target is None:
            return f"{job.content_type} #{job.object_id} (deleted)"
        try:
            url = reverse(
                f"admin:{target._meta.app_label}_{target._meta.model_name}_change",
                args=[target.pk],
            )
        except NoReverseMatch:  # the model is not in the admin
            return str(target)
        return format_html('<a href="{}">{}</a>', url, target)

    @admin.display(description="steps")
    def workflow_column(self, job):
        return workflows.render_steps(job, status_badge, job_link)

    @admin.display(description="args")
    def args_column(self, job):
        return pretty_json(job.args)

    @admin.display(description="kwargs")
    def kwargs_column(self, job):
        return pretty_json(job.kwargs)

    @admin.display(description="return value")
    def return_value_column(self, job):
        return pretty_json(job.return_value)

    @admin.display(description="errors")
    def errors_column(self, job):
        """Every failed attempt, the latest first; tracebacks without djtasks' own frames."""
        if not job.errors:
            return "-"
        return format_html_join(
            "",
            '<div class="djtasks-error"><p><strong>Attempt {}</strong> · {} · {} · '
            'worker {}</p><p class="djtasks-error-message">{}</p><pre>{}</pre></div>',
            (
                (
                    error.get("attempt", "?"),
                    error.get("exception_class_path", ""),
                    format_time(_parse_time(error.get("failed_at"))),
                    error.get("worker_id", ""),
                    error_message(error),
                    trimmed_traceback(error.get("traceback", "")),
                )
                for error in reversed(job.errors)
            ),
        )

    @admin.display(description="timeline")
    def timeline(self, job):
        events = timeline_events(job)
        return format_html(
            '<ol class="djtasks-timeline">{}</ol>',
            format_html_join(
                "",
                "<li><time>{}</time> {}</li>",
                ((format_time(when), what) for when, what in events),
            ),
        )


def timeline_events(job) -> list:
    """(time, what) pairs for the job's history, oldest first.

    Each failed attempt's entry in Job.errors gives its start (when the
    worker recorded it), its failure and a retry from the admin; the
    latest attempt's start is last_attempted_at.
    """
    events = [(job.enqueued_at, "enqueued")]
    if job.run_after:
        events.append((job.run_after, "due (run_after)"))
    started = set()
    for error in job.errors:
        events.extend(_attempt_events(error, started))
    if job.started_at and 1 not in started:
        events.append((job.started_at, "first attempt started"))
        started.add(1)
    if job.last_attempted_at and job.attempts > 1 and job.attempts not in started:
        events.append((job.last_attempted_at, f"attempt {job.attempts} started"))
    if job.status == JobStatus.READY and job.attempts and job.available_at:
        events.append((job.available_at, "next attempt due"))
    if job.cancel_requested_at:
        events.append((job.cancel_requested_at, "cancel requested"))
    if job.finished_at:
        events.append((job.finished_at, f"finished: {JobStatus(job.status).label.lower()}"))
    # A stable sort: events recorded at the same instant keep their order.
    return sorted(events, key=lambda event: event[0])


def _attempt_events(error: dict, started: set) -> list:
    """The started / failed / retried events one error entry records."""
    attempt = error.get("attempt", "?")
    events = []
    started_at = _parse_time(error.get("started_at"))
    if started_at:
        label = "first attempt started" if attempt == 1 else f"attempt {attempt} started"
        events.append((started_at, label))
        started.add(attempt)
    failed_at = _parse_time(error.get("failed_at"))
    if failed_at:
        events.append(
            (failed_at, f"attempt {attempt} failed: {error.get('exception_class_path', '')}")
        )
    retried_at = _parse_time(error.get("retried_at"))
    if retried_at:
        events.append((retried_at, "retried from the admin (a fresh attempt budget)"))
    return events


def _parse_time(value):
    try:
        return parse_datetime(value) if value else None
    except ValueError:
        return None
