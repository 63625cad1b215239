"""The workers admin: each process, its heartbeat age, state and running jobs."""

from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from djtasks.admin.backends import BackendFilter
from djtasks.admin.display import format_time
from djtasks.compat import task_backends
from djtasks.conf import settings
from djtasks.models import Job, JobStatus, Worker

ALIVE, STALE, STOPPED = "alive", "stale", "stopped"


def state_of(worker: Worker, now=None) -> str:
    """alive, stale (no heartbeat for STALE_AFTER seconds) or stopped."""
    if worker.stopped_at is not None:
        return STOPPED
    now = now or timezone.now()
    if now - worker.last_heartbeat_at > timedelta(seconds=settings.STALE_AFTER):
        return STALE
    return ALIVE


def known_queues() -> list[str]:
    """Queues named in the TASKS settings or served by a recorded worker."""
    queues = set()
    for alias in task_backends.settings:
        queues.update(getattr(task_backends[alias], "queues", ()) or ())
    for worker_queues in Worker.objects.values_list("queues", flat=True):
        queues.update(worker_queues or ())
    return sorted(queues) or ["default"]


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(ALIVE, "Alive"), (STALE, "Stale"), (STOPPED, "Stopped")]

    def queryset(self, request, queryset):
        cutoff = timezone.now() - timedelta(seconds=settings.STALE_AFTER)
        running = Q(stopped_at__isnull=True)
        if self.value() == ALIVE:
            return queryset.filter(running, last_heartbeat_at__gte=cutoff)
        if self.value() == STALE:
            return queryset.filter(running, last_heartbeat_at__lt=cutoff)
        if self.value() == STOPPED:
            return queryset.filter(stopped_at__isnull=False)
        return queryset


# The window of the per-worker counts of finished jobs.
COUNTS_OVER = timedelta(hours=1)


def _finished_since(since, status=None):
    """The number of jobs a worker finished since ``since`` (of ``status``), as a subquery."""
    jobs = Job.objects.filter(worker=OuterRef("pk"), finished_at__gte=since)
    if status is not None:
        jobs = jobs.filter(status=status)
    return _count_per_worker(jobs)


def _running():
    """The number of jobs a worker is running, as a subquery (djtasks_job_running)."""
    return _count_per_worker(Job.objects.filter(worker=OuterRef("pk"), status=JobStatus.RUNNING))


def _count_per_worker(jobs):
    count = jobs.order_by().values("worker").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(count, output_field=IntegerField()), 0)


STATE_CSS = {ALIVE: "SUCCESSFUL", STALE: "FAILED", STOPPED: "CANCELLED"}


class WorkerAdmin(admin.ModelAdmin):
    # Narrow enough for 1280 px beside the sidebar and filters: the id
    # names the host; pid, start time and the full heartbeat are on the
    # worker's page.
    list_display = (
        "id",
        "queues_column",
        "state_list_column",
        "running_count",
        "processed_column",
        "tasks_count",
    )
    list_filter = (StateFilter, BackendFilter, "hostname")
    search_fields = ("id", "hostname")
    fields = (
        "id",
        "hostname",
        "pid",
        "backend",
        "queues_column",
        "concurrency",
        "started_column",
        "heartbeat_column",
        "stopped_column",
        "state_column",
        "processed_column",
        "running_jobs",
        "task_digest",
        "tasks_column",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ["djtasks/admin.css"]}

    # Rows belong to the worker processes; the admin only looks (and may
    # delete the record of a stopped process).
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # A live worker's row must stay: the rescue takes a missing row for a
        # dead worker and would hand its running jobs to another one.
        if obj is not None and state_of(obj) == ALIVE:
            return False
        return super().has_delete_permission(request, obj)

    def get_queryset(self, request):
        # Per worker: its running jobs (the partial index of running rows)
        # and the last hour's outcomes (a range of the finished-time index).
        # Subqueries, not a join: a join to the jobs reads every job the
        # workers ever ran, the whole history, on every load of the page.
        since = timezone.now() - COUNTS_OVER
        return (
            super()
            .get_queryset(request)
            .annotate(
                running=_running(),
                processed=_finished_since(since),
                failed=_finished_since(since, status=JobStatus.FAILED),
            )
        )

    @admin.display(description="state", ordering="-last_heartbeat_at")
    def state_list_column(self, worker):
        seconds = (timezone.now() - worker.last_heartbeat_at).total_seconds()
        return format_html(
            '{}<br><span class="djtasks-quiet">beat {} s ago</span>',
            self.state_column(worker),
            f"{seconds:.0f}",
        )

    @admin.display(description="started", ordering="started_at")
    def started_column(self, worker):
        return format_time(worker.started_at)

    @admin.display(description="last heartbeat", ordering="-last_heartbeat_at")
    def heartbeat_column(self, worker):
        seconds = (timezone.now() - worker.last_heartbeat_at).total_seconds()
        return f"{format_time(worker.last_heartbeat_at)} ({seconds:.0f} s ago)"

    @admin.display(description="stopped", ordering="stopped_at")
    def stopped_column(self, worker):
        return format_time(worker.stopped_at)

    @admin.display(description="last hour: done (failed)", ordering="processed")
    def processed_column(self, worker):
        return f"{worker.processed} ({worker.failed})"

    @admin.display(description="queues")
    def queues_column(self, worker):
        return ", ".join(worker.queues or [])

    @admin.display(description="heartbeat age", ordering="-last_heartbeat_at")
    def heartbeat_age(self, worker):
        seconds = (timezone.now() - worker.last_heartbeat_at).total_seconds()
        return f"{seconds:.0f} s"

    @admin.display(description="state")
    def state_column(self, worker):
        state = state_of(worker)
        return format_html(
            '<span class="djtasks-badge djtasks-{}">{}</span>', STATE_CSS[state], state
        )

    @admin.display(description="running", ordering="running")
    def running_count(self, worker):
        return f"{worker.running} of {worker.concurrency}"

    @admin.display(description="tasks")
    def tasks_count(self, worker):
        if worker.tasks is None:
            return "-"
        return f"{len(worker.tasks)} ({worker.task_digest[:8]})"

    @admin.display(description="tasks it runs")
    def tasks_column(self, worker):
        if worker.tasks is None:
            return "Not reported (a worker of an older djtasks)."
        if not worker.tasks:
            return "None."
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((path,) for path in worker.tasks))
        )

    @admin.display(description="running jobs")
    def running_jobs(self, worker):
        jobs = Job.objects.filter(worker=worker, status=JobStatus.RUNNING).only(
            "pk", "task_path", "started_at"
        )
        rows = [
            (reverse("admin:djtasks_job_change", args=[job.pk]), job.pk, job.task_path)
            for job in jobs[:100]
        ]
        if not rows:
            return "None."
        return format_html(
            "<ul>{}</ul>",
            format_html_join("", '<li><a href="{}">{}</a> {}</li>', rows),
        )
