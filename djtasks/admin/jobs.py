"""The jobs admin: the list, a job's page, its buttons, and the dashboard view.

Everything goes through ``admin_site.admin_view`` and the model permissions:
viewing needs view (or change) permission, every action that changes a job
needs change permission.
"""

import uuid
from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from djtasks.admin import argument_search, bulk, dashboard, schedules, workflows
from djtasks.admin.actions import OPERATIONS, cancel_jobs, retry_jobs, run_jobs_now
from djtasks.admin.backends import BackendFilter, aliases_elsewhere, djtasks_aliases
from djtasks.admin.display import HEAVY_FIELDS, REFRESH_SECONDS, STATIC_CSS, STATIC_JS
from djtasks.admin.filters import QueueFilter, TaskFilter
from djtasks.admin.job_columns import JobColumns
from djtasks.admin.paging import EstimatedCountPaginator
from djtasks.control import operations
from djtasks.ids import SHORT_ID_LENGTH
from djtasks.models import Job, JobStatus


@admin.register(Job)
class JobAdmin(JobColumns, admin.ModelAdmin):
    # What reads at 1280 px beside the admin's sidebar and the filters
    # without a horizontal scroll: attempts sit under the status, the queue
    # under the task, the duration under the enqueued time; priority and the
    # started / finished times are on the job's page (see docs/admin.md).
    list_display = (
        "short_id",
        "status_list_column",
        "task_list_column",
        "when_column",
        "list_progress_column",
    )
    # The task links too: a phone's list leaves the id column out.
    list_display_links = ("short_id", "task_list_column")
    list_filter = (
        "status",
        BackendFilter,
        QueueFilter,
        TaskFilter,
        workflows.WorkflowFilter,
        "enqueued_at",
        "finished_at",
    )
    search_fields = ("task_path",)
    search_help_text = (
        "A job id, part of a task path, or a value in the arguments: arg:42, kwarg:user_id=42."
    )
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
                    "waiting_column",
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
        js = STATIC_JS

    # Jobs are made by enqueue(), never typed in; their fields are the
    # record of what happened and stay read-only.
    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        fields = [field for _, options in self.fieldsets for field in options["fields"]]
        return [*fields, "workflow_column"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        fieldsets = [
            (name, {**options, "fields": shown})
            for name, options in fieldsets
            if (shown := [field for field in options["fields"] if not _is_empty(obj, field)])
        ]
        if obj.status == JobStatus.FAILED:
            # The error is what a person opens a failed job for: first.
            fieldsets.sort(key=lambda fieldset: fieldset[0] != "Result")
        if obj.workflow_id is None:
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
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # "Retry / cancel / delete all matching": djtasks.admin.bulk.
            response.context_data["djtasks_bulk_links"] = bulk.links(self, request, changelist)
            if any(not job.is_finished for job in changelist.result_list):
                response.context_data["djtasks_refresh"] = REFRESH_SECONDS
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": "Job",
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "djtasks_operations": self._allowed_operations(request, object_id),
            "djtasks_refresh": REFRESH_SECONDS if self._is_unfinished(request, object_id) else None,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_search_results(self, request, queryset, search_term):
        """An id (its first characters, or the short id), else part of a task path.

        An id prefix is a range of the primary key, and a task term is
        matched against the registered task paths first (then task_path IN
        (...) uses its index). The short id the list shows is an id's end
        (djtasks.ids.short_id), which no index orders: a term of that
        length or less also matches the ends of the ids, a scan of the key.
        Only a term that matches no registered task scans the stored paths.
        """
        if argument_search.is_argument_search(search_term.strip()):
            found = argument_search.search(queryset, search_term.strip())
            if found is None:
                self.message_user(request, argument_search.MALFORMED, messages.WARNING)
                return queryset.none(), False
            return found, False
        term = search_term.strip().lower()
        id_range = _id_range(term)
        if id_range is not None:
            return _ids_matching(queryset, term, id_range), False
        paths = [path for path in schedules.task_choices() if term in path.lower()]
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
                "bulk/<str:operation>/",
                self.admin_site.admin_view(partial(bulk.bulk_view, self)),
                name="djtasks_job_bulk",
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
        aliases = djtasks_aliases()
        # ?backend=<alias>: one alias's jobs (an unknown one is refused, not
        # shown as an empty dashboard).
        backend = request.GET.get("backend") or None
        if backend is not None and backend not in aliases:
            raise Http404(f"No djtasks backend {backend!r} with its jobs in this database.")
        figures = dashboard.context(Job.objects.db, backend=backend)
        context = {
            **self.admin_site.each_context(request),
            **figures,
            "backend": backend,
            "backends": aliases if len(aliases) > 1 else [],
            "backends_elsewhere": aliases_elsewhere(),
            "title": "Jobs dashboard",
            "djtasks_refresh": REFRESH_SECONDS if figures["unfinished"] else None,
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

    def _is_unfinished(self, request, object_id) -> bool:
        job = self.get_object(request, object_id)
        return job is not None and not job.is_finished

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


# The fields of a job's page that say nothing when they are empty: hidden then.
EMPTY_WHEN = {
    "progress_column": lambda job: not isinstance(job.progress, dict),
    "worker_column": lambda job: job.worker_id is None,
    "about_column": lambda job: job.content_type_id is None,
    "schedule": lambda job: job.schedule_id is None,
    "unique_key": lambda job: not job.unique_key,
    "limits_column": lambda job: not (job.rate_limit or job.concurrency_key),
    "duration_column": lambda job: job.started_at is None,
    "return_value_column": lambda job: job.return_value is None,
    "errors_column": lambda job: not job.errors,
}


def _is_empty(job, field: str) -> bool:
    return field in EMPTY_WHEN and EMPTY_WHEN[field](job)


def _ids_matching(queryset, term, id_range):
    """The jobs whose id starts with ``term``, or ends with it if it is short-id sized."""
    if _uuids_in_key_order(queryset.db):
        found = queryset.filter(pk__gte=id_range[0], pk__lte=id_range[1])
    else:
        # MariaDB's own UUID type orders some of its values with the groups
        # swapped, so a prefix is no range of the key there: match the
        # canonical text (a scan of the key).
        found = queryset.filter(pk__startswith=_canonical_prefix(term))
    digits = term.replace("-", "")
    if len(digits) <= SHORT_ID_LENGTH and "-" not in term:
        found = found | queryset.filter(pk__endswith=digits)
    return found


def _uuids_in_key_order(database) -> bool:
    connection = connections[database]
    return not (connection.vendor == "mysql" and connection.features.has_native_uuid_field)


def _canonical_prefix(term: str) -> str:
    """The start of the canonical (8-4-4-4-12) text of ids starting with ``term``."""
    digits = term.replace("-", "")
    canonical = str(uuid.UUID(digits.ljust(32, "0")))
    # Each group's hyphen comes after 8, 12, 16 and 20 digits.
    hyphens = sum(1 for boundary in (8, 12, 16, 20) if len(digits) > boundary)
    return canonical[: len(digits) + hyphens]


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
