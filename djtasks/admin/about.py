"""Jobs bound to model rows: the inline and the mixin for a model's own admin.

``.using(about=instance)`` stores a generic relation on the job; these show
an object's jobs on its change page.
"""

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from djtasks.admin.display import (
    HEAVY_FIELDS,
    STATIC_CSS,
    format_time,
    job_link,
    progress_bar,
    status_badge,
)
from djtasks.models import Job


class JobsInline(GenericTabularInline):
    """Lists the jobs about an object on its change page (read-only).

    Add it to the ``inlines`` of the object's ModelAdmin. For objects with
    many jobs prefer JobsAboutMixin, which shows the latest ones only.
    """

    model = Job
    ct_field = "content_type"
    ct_fk_field = "object_id"
    fields = (
        "job",
        "status_column",
        "task_path",
        "enqueued_column",
        "finished_column",
        "progress_column",
    )
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

    @admin.display(description="enqueued")
    def enqueued_column(self, job):
        return format_time(job.enqueued_at)

    @admin.display(description="finished")
    def finished_column(self, job):
        return format_time(job.finished_at)

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
                format_time(job.enqueued_at),
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
