"""The schedules admin: validated form, next-run preview, enable / disable / run now.

Validation (cron parses, time zone exists, task registered, exactly one of
cron / interval / run at) and the next-run times come from the beat's own
djtasks.beat.timing, through Schedule.clean(): the admin previews exactly
what the beat will do.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from djtasks import registry
from djtasks.admin.display import (
    STATIC_CSS,
    breakable_path,
    error_message,
    format_time,
    short_time,
    status_badge,
)
from djtasks.admin.schedule_form import ScheduleForm, task_choices
from djtasks.beat import timing
from djtasks.models import JobStatus, Schedule

__all__ = ["ScheduleAdmin", "ScheduleForm", "task_choices"]

PREVIEW_RUNS = 5


@admin.action(description="Enable", permissions=["change"])
def enable(modeladmin, request, queryset):
    now = timezone.now()
    count = 0
    for schedule in queryset.filter(enabled=False):
        schedule.enabled = True
        # Runs missed while disabled are not owed: start from now, as an
        # edit in the form does.
        schedule.next_run_at = timing.Timing.of(schedule).first_run(now)
        schedule.save(update_fields=["enabled", "next_run_at", "updated_at"])
        count += 1
    modeladmin.message_user(request, f"{count} schedule(s) enabled.", messages.SUCCESS)


@admin.action(description="Disable", permissions=["change"])
def disable(modeladmin, request, queryset):
    count = queryset.update(enabled=False)
    modeladmin.message_user(request, f"{count} schedule(s) disabled.", messages.SUCCESS)


@admin.action(description="Run now (enqueue one job each)", permissions=["change"])
def run_now(modeladmin, request, queryset):
    for schedule in queryset:
        try:
            result = run_schedule_now(schedule)
        except Exception as error:  # noqa: BLE001 - report it, keep going
            modeladmin.message_user(
                request, f"{schedule.name}: not enqueued: {error}", messages.ERROR
            )
            continue
        url = reverse("admin:djtasks_job_change", args=[result.id])
        modeladmin.message_user(
            request,
            format_html('{}: enqueued job <a href="{}">{}</a>.', schedule.name, url, result.id),
            messages.SUCCESS,
        )


def run_schedule_now(schedule: Schedule):
    """Enqueue one run of ``schedule`` now, outside its timetable."""
    task = registry.get(schedule.task_path)
    task = task.using(queue_name=schedule.queue_name, priority=schedule.priority)
    return task.enqueue(*schedule.args, **schedule.kwargs)


# A schedule's last run, as the list shows it: its job's status (FAILED
# is what a person must see) and, for a failure, the error's first line.
LAST_RUN_FIELDS = {"last_status": F("last_job__status"), "last_errors": F("last_job__errors")}


class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    # Narrow enough for 1280 px beside the sidebar and filters: the task
    # sits under the name, the run count is on the schedule's page.
    list_display = (
        "name_column",
        "when",
        "enabled",
        "next_run_column",
        "last_run_column",
        "problem",
    )
    list_display_links = ("name_column",)
    list_filter = ("enabled", "declared_in_code")
    search_fields = ("name", "task_path")
    actions = [enable, disable, run_now]
    readonly_fields = (
        "next_runs_preview",
        "next_run_column",
        "last_run_column",
        "last_job_link",
        "run_count",
        "last_error",
    )
    fieldsets = (
        (None, {"fields": ("name", "task_path", "args", "kwargs", "queue_name", "priority")}),
        (
            "When",
            {
                "fields": (
                    "cron",
                    "interval",
                    "run_at",
                    "time_zone",
                    "start_at",
                    "end_at",
                    "next_runs_preview",
                ),
                "description": "Give exactly one of cron, interval or run at; the next runs "
                "below follow what you type.",
            },
        ),
        ("Behaviour", {"fields": ("enabled", "misfire_policy", "misfire_cap", "skip_if_running")}),
        (
            "State",
            {
                "fields": (
                    "next_run_column",
                    "last_run_column",
                    "last_job_link",
                    "run_count",
                    "last_error",
                )
            },
        ),
    )

    class Media:
        css = STATIC_CSS
        js = ["djtasks/schedule_preview.js"]

    def get_queryset(self, request):
        # The last job's status and errors in the same query: one join on
        # its primary key, no query per row.
        return super().get_queryset(request).annotate(**LAST_RUN_FIELDS)

    def get_urls(self):
        preview = path(
            "preview/",
            self.admin_site.admin_view(self.preview_view),
            name="djtasks_schedule_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request):
        """The next runs of the timing typed into the form, as JSON (nothing is saved)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(preview_of(request.GET))

    @admin.display(description="schedule · task", ordering="name")
    def name_column(self, schedule):
        return format_html(
            '{}<br><span class="djtasks-quiet">{}</span>',
            schedule.name,
            breakable_path(schedule.task_path),
        )

    @admin.display(description="when")
    def when(self, schedule):
        if schedule.cron:
            return f"cron {schedule.cron} ({schedule.time_zone})"
        if schedule.interval:
            return f"every {schedule.interval}"
        return f"once at {format_time(schedule.run_at)}" if schedule.run_at else "-"

    @admin.display(description="next run", ordering="next_run_at")
    def next_run_column(self, schedule):
        return short_time(schedule.next_run_at)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run_column(self, schedule):
        status = getattr(schedule, "last_status", None)
        if schedule.last_run_at is None:
            return "-"
        if status is None:
            return short_time(schedule.last_run_at)
        return format_html("{}<br>{}", short_time(schedule.last_run_at), status_badge(status))

    @admin.display(description="problem")
    def problem(self, schedule):
        if schedule.last_error:
            return schedule.last_error
        errors = getattr(schedule, "last_errors", None)
        if getattr(schedule, "last_status", None) == JobStatus.FAILED and errors:
            last = errors[-1]
            message = error_message(last)
            path = last.get("exception_class_path", "")
            return f"last run failed: {path}: {message}" if message else f"last run failed: {path}"
        return ""

    @admin.display(description="next five runs")
    def next_runs_preview(self, schedule):
        url = reverse("admin:djtasks_schedule_preview")
        if schedule.pk is None:
            runs, error = [], "Fill in cron, interval or run at to see the next runs."
        else:
            runs, error = _next_runs(schedule)
        return format_html(
            '<div id="djtasks-preview" data-url="{}"><ol>{}</ol><p class="help">{}</p></div>',
            url,
            format_html_join("", "<li>{}</li>", ((run,) for run in runs)),
            error,
        )

    @admin.display(description="last job")
    def last_job_link(self, schedule):
        if schedule.last_job_id is None:
            return "-"
        url = reverse("admin:djtasks_job_change", args=[schedule.last_job_id])
        return format_html('<a href="{}">{}</a>', url, schedule.last_job_id)


TIMING = ("cron", "interval", "run_at", "time_zone", "start_at", "end_at")


def preview_of(data) -> dict:
    """{"runs": [...], "error": "..."} for the timing fields in ``data`` (form input)."""
    form = ScheduleForm(data=data, instance=Schedule())
    form.is_valid()  # only the timing fields matter here; the rest may be unfinished
    for field in TIMING:
        if form.has_error(field):
            return {"runs": [], "error": f"{field.replace('_', ' ')}: {form.errors[field][0]}"}
    values = {field: form.cleaned_data.get(field) for field in TIMING}
    values["cron"] = values["cron"] or ""
    errors = timing.validate_timing(**values)
    if errors:
        return {"runs": [], "error": next(iter(errors.values()))}
    runs, error = _next_runs(Schedule(**values))
    return {"runs": runs, "error": error}


def _next_runs(schedule) -> tuple[list[str], str]:
    """The next PREVIEW_RUNS run times in the schedule's zone, or why there are none."""
    try:
        runs = timing.next_runs(schedule, PREVIEW_RUNS, timezone.now())
    except (ValueError, ValidationError) as error:
        return [], f"Cannot compute: {error}"
    zone = timing.zone(schedule.time_zone)
    shown = [format_time(run, zone) for run in runs]
    return shown, "" if shown else "No more runs."
