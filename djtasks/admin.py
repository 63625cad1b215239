"""The Django admin for jobs, schedules and workers, and the dashboard.

Everything goes through ``admin_site.admin_view`` and the model permissions:
viewing needs view (or change) permission, every action that changes a job
or a schedule needs change permission. Stored data (arguments, results,
tracebacks, messages) is user data: it is rendered through format_html /
escape only, never marked safe.
"""

import json
import uuid

from django.contrib import admin, messages
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from . import admin_schedules, admin_workers, admin_workflows, dashboard, operations
from .admin_paging import EstimatedCountPaginator
from .models import Job, JobStatus, Schedule, Worker
from .progress import percent

# Columns the changelist never shows: not loaded for a page of 100 rows.
HEAVY_FIELDS = ("args", "kwargs", "return_value", "errors", "retry_policy", "worker_ids")
STATIC_CSS = {"all": ["djtasks/admin.css"]}


# --- rendering helpers ------------------------------------------------------


def status_badge(status: str):
    label = JobStatus(status).label if status in JobStatus.values else status
    return format_html('<span class="djtasks-badge djtasks-{}">{}</span>', status, label)


def pretty_json(value):
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="djtasks-json">{}</pre>', text)


def progress_bar(progress, compact: bool = False):
    """A bar for a stored progress value, or '-' when there is none.

    ``compact`` (the jobs list) leaves out the counts and the message.
    """
    if not isinstance(progress, dict):
        return "-"
    share = percent(progress)
    current, total = progress.get("current"), progress.get("total")
    caption = f"{current}/{total}" if total is not None else f"{current}"
    if share is not None:
        caption = f"{share:g}%" if compact else f"{caption} ({share:g}%)"
    return format_html(
        '<div class="djtasks-progress{}" role="progressbar" aria-valuemin="0" '
        'aria-valuemax="100" aria-valuenow="{}" title="{}"><div class="djtasks-progress-fill" '
        'style="width: {}%"></div></div><span class="djtasks-progress-caption">{}</span>',
        " djtasks-progress-compact" if compact else "",
        share if share is not None else "",
        progress.get("message", ""),
        share if share is not None else 100,
        caption if compact else f"{caption} {progress.get('message', '')}",
    )


def short_time(value) -> str:
    """A timestamp in the current time zone, to the second (or '-')."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def job_link(job):
    url = reverse("admin:djtasks_job_change", args=[job.pk])
    return format_html('<a href="{}">{}</a>', url, str(job.pk)[:8])


def format_duration(delta) -> str:
    if delta is None:
        return "-"
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


# --- jobs -------------------------------------------------------------------


class QueueFilter(admin.SimpleListFilter):
    """Queues from the settings and the workers, not a DISTINCT over all jobs."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue, queue) for queue in admin_workers.known_queues()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(queue_name=self.value())
        return queryset


class TaskFilter(admin.SimpleListFilter):
    """Tasks from the registry, not a DISTINCT over all jobs."""

    title = "task"
    parameter_name = "task"

    def lookups(self, request, model_admin):
        return [(path, path) for path in admin_schedules.task_choices()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(task_path=self.value())
        return queryset


def _operation_action(name, function, description, done_message):
    """An admin action ``name`` that runs ``function`` on the selected jobs."""

    def action(modeladmin, request, queryset):
        count = function(queryset)
        modeladmin.message_user(request, done_message(count), messages.SUCCESS)

    action.__name__ = name
    return admin.action(description=description, permissions=["change"])(action)


def _retried(count):
    return ngettext("%d job put back to ready.", "%d jobs put back to ready.", count) % count


def _ran_now(count):
    return ngettext("%d ready job will run now.", "%d ready jobs will run now.", count) % count


def _cancelled(counts):
    cancelled, requested = counts
    return f"{cancelled} ready job(s) cancelled; stop requested for {requested} running job(s)."


retry_jobs = _operation_action("retry_jobs", operations.retry, "Retry (fresh attempts)", _retried)
cancel_jobs = _operation_action("cancel_jobs", operations.cancel, "Cancel", _cancelled)
run_jobs_now = _operation_action("run_jobs_now", operations.run_now, "Run now", _ran_now)

OPERATIONS = {
    "retry": (operations.retry, _retried),
    "cancel": (operations.cancel, _cancelled),
    "run-now": (operations.run_now, _ran_now),
}


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "status_column",
        "task_column",
        "queue_column",
        "priority",
        "attempts_column",
        "enqueued_column",
        "started_column",
        "finished_column",
        "duration_column",
        "list_progress_column",
    )
    list_display_links = ("short_id",)
    list_filter = (
        "status",
        QueueFilter,
        TaskFilter,
        admin_workflows.WorkflowFilter,
        "enqueued_at",
        "finished_at",
    )
    search_fields = ("task_path",)
    search_help_text = "A job id, or part of a task path."
    actions = [retry_jobs, cancel_jobs, run_jobs_now, "delete_selected"]
    ordering = ("-enqueued_at",)
    list_per_page = 50
    # No COUNT(*) of the whole table under the filtered count...
    show_full_result_count = False
    # ...and the filtered count itself is the planner's estimate when large.
    paginator = EstimatedCountPaginator
    # Facet counts would run a COUNT per filter choice.
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/djtasks/job/change_list.html"
    change_form_template = "admin/djtasks/job/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status_column",
                    "task_path",
                    "queue_name",
                    "priority",
                    "attempts_column",
                    "progress_column",
                    "worker_column",
                    "about_column",
                    "schedule",
                    "unique_key",
                    "limits_column",
                )
            },
        ),
        ("Timeline", {"fields": ("timeline", "duration_column")}),
        ("Arguments", {"fields": ("args_column", "kwargs_column")}),
        ("Result", {"fields": ("return_value_column", "errors_column")}),
    )

    class Media:
        css = STATIC_CSS

    # Jobs are made by enqueue(), never typed in; their fields are the
    # record of what happened and stay read-only.
    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        fields = [field for _, options in self.fieldsets for field in options["fields"]]
        return [*fields, "workflow_column"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or obj.workflow_id is None:
            return fieldsets
        # A workflow step's page lists every step of its workflow.
        return [*fieldsets[:1], ("Workflow", {"fields": ("workflow_column",)}), *fieldsets[1:]]

    def delete_model(self, request, obj):
        operations.delete(Job.objects.using(obj._state.db).filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        # A deleted step of an unfinished workflow fails the workflow, so
        # no step waits forever for it.
        operations.delete(queryset)

    def save_model(self, request, obj, form, change):
        # Nothing is editable: saving would only write back a stale copy of
        # a row a worker may be updating right now.
        pass

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if getattr(request, "_djtasks_changelist", False):
            queryset = queryset.defer(*HEAVY_FIELDS)
        return queryset

    def changelist_view(self, request, extra_context=None):
        request._djtasks_changelist = True
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": "Job",
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "djtasks_operations": self._allowed_operations(request, object_id),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_search_results(self, request, queryset, search_term):
        """An id (or its first characters), else part of a task path.

        Both are index lookups: an id prefix is a range of the primary key,
        and a task term is matched against the registered task paths first
        (then task_path IN (...) uses its index). Only a term that matches
        no registered task scans the stored paths.
        """
        term = search_term.strip().lower()
        id_range = _id_range(term)
        if id_range is not None:
            return queryset.filter(pk__gte=id_range[0], pk__lte=id_range[1]), False
        paths = [path for path in admin_schedules.task_choices() if term in path.lower()]
        if term and paths:
            return queryset.filter(task_path__in=paths), False
        return super().get_search_results(request, queryset, search_term)

    def lookup_allowed(self, lookup, value, request=None):
        # The "all jobs about this object" link of JobsAboutMixin.
        if lookup in ("content_type__id__exact", "object_id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    def get_urls(self):
        urls = [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="djtasks_dashboard",
            ),
            path(
                "<path:object_id>/operate/<str:operation>/",
                self.admin_site.admin_view(self.operate_view),
                name="djtasks_job_operate",
            ),
        ]
        return urls + super().get_urls()

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **dashboard.context(Job.objects.db),
            "title": "Jobs dashboard",
            "opts": self.opts,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/djtasks/dashboard.html", context)

    def operate_view(self, request, object_id, operation):
        """Retry, cancel or run now one job, from the buttons on its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self.get_object(request, object_id)
        if job is None or operation not in OPERATIONS:
            raise Http404("No such job or operation.")
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        function, done_message = OPERATIONS[operation]
        self.message_user(request, done_message(function(Job.objects.filter(pk=job.pk))))
        return HttpResponseRedirect(reverse("admin:djtasks_job_change", args=[job.pk]))

    def _allowed_operations(self, request, object_id):
        job = self.get_object(request, object_id)
        if job is None or not self.has_change_permission(request, job):
            return []
        allowed = []
        # A workflow step cancelled before it got its input cannot run alone.
        never_released = job.workflow_id is not None and job.waiting_for > 0
        if job.status in operations.RETRYABLE and not never_released:
            allowed.append(("retry", "Retry job"))
        if job.status == JobStatus.READY:
            allowed.append(("run-now", "Run now"))
        if job.status in (JobStatus.READY, JobStatus.WAITING, JobStatus.RUNNING):
            allowed.append(("cancel", "Cancel job"))
        return [
            (reverse("admin:djtasks_job_operate", args=[job.pk, name]), label)
            for name, label in allowed
        ]

    # -- columns --

    @admin.display(description="id", ordering="pk")
    def short_id(self, job):
        return str(job.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_column(self, job):
        return status_badge(job.status)

    @admin.display(description="task", ordering="task_path")
    def task_column(self, job):
        return job.task_path

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
        return f"{job.attempts}/{job.max_attempts}"

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
        return admin_workflows.render_steps(job, status_badge, job_link)

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
        if not job.errors:
            return "-"
        return format_html_join(
            "",
            '<div class="djtasks-error"><p><strong>Attempt {}</strong> · {} · {} · '
            "worker {}</p><pre>{}</pre></div>",
            (
                (
                    error.get("attempt", "?"),
                    error.get("exception_class_path", ""),
                    error.get("failed_at", ""),
                    error.get("worker_id", ""),
                    error.get("traceback", ""),
                )
                for error in job.errors
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
                (
                    (timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], what)
                    for when, what in events
                ),
            ),
        )


def _id_range(term: str):
    """The (lowest, highest) job ids starting with ``term``, if it is an id prefix."""
    digits = term.replace("-", "")
    if not 6 <= len(digits) <= 32 or any(c not in "0123456789abcdef" for c in digits):
        return None
    if not any(c.isdigit() for c in digits):
        return None  # "decade" or "facade" is more likely part of a task name
    return (
        uuid.UUID(digits.ljust(32, "0")),
        uuid.UUID(digits.ljust(32, "f")),
    )


def timeline_events(job) -> list:
    """(time, what) pairs for the job's history, oldest first."""
    events = [(job.enqueued_at, "enqueued")]
    if job.run_after:
        events.append((job.run_after, "due (run_after)"))
    if job.started_at:
        events.append((job.started_at, "first attempt started"))
    for error in job.errors:
        failed_at = _parse_time(error.get("failed_at"))
        if failed_at:
            events.append(
                (
                    failed_at,
                    f"attempt {error.get('attempt', '?')} failed: "
                    f"{error.get('exception_class_path', '')}",
                )
            )
    if job.last_attempted_at and job.attempts > 1:
        events.append((job.last_attempted_at, f"attempt {job.attempts} started"))
    if job.status == JobStatus.READY and job.attempts and job.available_at:
        events.append((job.available_at, "next attempt due"))
    if job.cancel_requested_at:
        events.append((job.cancel_requested_at, "cancel requested"))
    if job.finished_at:
        events.append((job.finished_at, f"finished: {JobStatus(job.status).label.lower()}"))
    return sorted(events, key=lambda event: event[0])


def _parse_time(value):
    try:
        return parse_datetime(value) if value else None
    except ValueError:
        return None


# --- jobs bound to model rows ------------------------------------------------


class JobsInline(GenericTabularInline):
    """Lists the jobs about an object on its change page (read-only).

    Add it to the ``inlines`` of the object's ModelAdmin. For objects with
    many jobs prefer JobsAboutMixin, which shows the latest ones only.
    """

    model = Job
    ct_field = "content_type"
    ct_fk_field = "object_id"
    fields = ("job", "status_column", "task_path", "enqueued_at", "finished_at", "progress_column")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    ordering = ("-enqueued_at",)
    verbose_name_plural = "Jobs about this object"

    class Media:
        css = STATIC_CSS

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="job")
    def job(self, job):
        return job_link(job)

    @admin.display(description="status")
    def status_column(self, job):
        return status_badge(job.status)

    @admin.display(description="progress")
    def progress_column(self, job):
        return progress_bar(job.progress)


class JobsAboutMixin:
    """A ModelAdmin mixin: the change page lists the latest jobs about the object.

    class ReportAdmin(JobsAboutMixin, admin.ModelAdmin): ...
    """

    jobs_about_limit = 20

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and _can_view_jobs(request):
            fields.append("djtasks_jobs")
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None or not _can_view_jobs(request):
            return fieldsets
        listed = {field for _, options in fieldsets for field in options.get("fields", ())}
        if "djtasks_jobs" in listed:
            fieldsets = [
                (name, {**options, "fields": [f for f in options["fields"] if f != "djtasks_jobs"]})
                for name, options in fieldsets
            ]
        return [*fieldsets, ("Jobs", {"fields": ["djtasks_jobs"]})]

    @admin.display(description="jobs about this object")
    def djtasks_jobs(self, obj):
        return render_jobs_about(obj, self.jobs_about_limit)

    class Media:
        css = STATIC_CSS


def _can_view_jobs(request) -> bool:
    user = request.user
    return user.has_perm("djtasks.view_job") or user.has_perm("djtasks.change_job")


def render_jobs_about(obj, limit: int):
    content_type = ContentType.objects.get_for_model(obj)
    jobs = Job.objects.filter(content_type=content_type, object_id=str(obj.pk)).defer(*HEAVY_FIELDS)
    latest = list(jobs.order_by("-enqueued_at")[:limit])
    if not latest:
        return "No jobs yet."
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                job_link(job),
                status_badge(job.status),
                job.task_path,
                timezone.localtime(job.enqueued_at).strftime("%Y-%m-%d %H:%M:%S"),
                progress_bar(job.progress),
            )
            for job in latest
        ),
    )
    all_url = reverse("admin:djtasks_job_changelist") + (
        f"?content_type__id__exact={content_type.pk}&object_id__exact={obj.pk}"
    )
    return format_html(
        '<table class="djtasks-about"><thead><tr><th>job</th><th>status</th><th>task</th>'
        "<th>enqueued</th><th>progress</th></tr></thead><tbody>{}</tbody></table>"
        '<p><a href="{}">All jobs about this object</a></p>',
        rows,
        all_url,
    )


# --- schedules and workers ---------------------------------------------------


admin.site.register(Schedule, admin_schedules.ScheduleAdmin)
admin.site.register(Worker, admin_workers.WorkerAdmin)
