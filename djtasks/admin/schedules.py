"""The schedules admin: validated form, next-run preview, enable / disable / run now.

Validation (cron parses, time zone exists, task registered, exactly one of
cron / interval / run at) and the next-run times come from the beat's own
djtasks.beat.timing, through Schedule.clean(): the admin previews exactly
what the beat will do.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from djtasks import registry
from djtasks.beat import timing
from djtasks.models import Schedule

PREVIEW_RUNS = 5


def task_choices() -> list[str]:
    """The dotted paths of every task the workers may run."""
    registry.autodiscover()
    return registry.registered_paths()


class ScheduleForm(forms.ModelForm):
    task_path = forms.ChoiceField(label="Task", help_text="One of the registered tasks.")

    class Meta:
        model = Schedule
        fields = (
            "name",
            "task_path",
            "args",
            "kwargs",
            "queue_name",
            "priority",
            "cron",
            "interval",
            "run_at",
            "time_zone",
            "start_at",
            "end_at",
            "enabled",
            "misfire_policy",
            "misfire_cap",
            "skip_if_running",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(path, path) for path in task_choices()]
        current = self.instance.task_path
        if current and current not in dict(choices):
            # Keep the stored value visible; Schedule.clean() rejects it.
            choices.append((current, f"{current} (not registered)"))
        self.fields["task_path"].choices = [("", "---------"), *choices]


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


class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name",
        "task_path",
        "when",
        "time_zone",
        "enabled",
        "next_run_at",
        "last_run_at",
        "run_count",
        "problem",
    )
    list_filter = ("enabled", "declared_in_code")
    search_fields = ("name", "task_path")
    actions = [enable, disable, run_now]
    readonly_fields = (
        "next_runs_preview",
        "next_run_at",
        "last_run_at",
        "last_job_link",
        "run_count",
        "last_error",
    )
    fieldsets = (
        (None, {"fields": ("name", "task_path", "args", "kwargs", "queue_name", "priority")}),
        (
            "When",
            {
                "fields": ("cron", "interval", "run_at", "time_zone", "start_at", "end_at"),
                "description": "Give exactly one of cron, interval or run at.",
            },
        ),
        ("Behaviour", {"fields": ("enabled", "misfire_policy", "misfire_cap", "skip_if_running")}),
        (
            "State",
            {
                "fields": (
                    "next_runs_preview",
                    "next_run_at",
                    "last_run_at",
                    "last_job_link",
                    "run_count",
                    "last_error",
                )
            },
        ),
    )

    @admin.display(description="when")
    def when(self, schedule):
        if schedule.cron:
            return f"cron {schedule.cron}"
        if schedule.interval:
            return f"every {schedule.interval}"
        return f"once at {schedule.run_at}" if schedule.run_at else "-"

    @admin.display(description="problem")
    def problem(self, schedule):
        return schedule.last_error or ""

    @admin.display(description="next five runs")
    def next_runs_preview(self, schedule):
        if schedule.pk is None:
            return "Shown once saved."
        try:
            runs = timing.next_runs(schedule, PREVIEW_RUNS, timezone.now())
        except (ValueError, ValidationError) as error:
            return f"Cannot compute: {error}"
        if not runs:
            return "No more runs."
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "", "<li>{}</li>", ((run.strftime("%Y-%m-%d %H:%M:%S %Z"),) for run in runs)
            ),
        )

    @admin.display(description="last job")
    def last_job_link(self, schedule):
        if schedule.last_job_id is None:
            return "-"
        url = reverse("admin:djtasks_job_change", args=[schedule.last_job_id])
        return format_html('<a href="{}">{}</a>', url, schedule.last_job_id)
