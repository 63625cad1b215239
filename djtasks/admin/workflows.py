"""The admin's view of workflows: the steps table on a job's page, the filter."""

import uuid

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from djtasks.models import ERROR_STAGE, Job

# Steps listed on a job's page; a longer workflow links to the jobs list.
MAX_STEPS_SHOWN = 100


def workflow_url(workflow_id) -> str:
    """The jobs list filtered to one workflow's steps."""
    return reverse("admin:djtasks_job_changelist") + f"?workflow={workflow_id}"


class WorkflowFilter(admin.SimpleListFilter):
    """Jobs in any workflow, or the steps of one (linked from a job's page)."""

    title = "workflow"
    parameter_name = "workflow"

    def lookups(self, request, model_admin):
        choices = [("any", "In a workflow")]
        workflow_id = _uuid(self.value())
        if workflow_id is not None:
            choices.append((str(workflow_id), f"Workflow {str(workflow_id)[:8]}"))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "any":
            return queryset.filter(workflow_id__isnull=False)
        # Not a UUID: the nil UUID, which no workflow has. (Not .none(): the
        # list's estimated count must still be able to compile the query.)
        workflow_id = _uuid(value) or uuid.UUID(int=0)
        return queryset.filter(workflow_id=workflow_id)


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def render_steps(job, status_badge, job_link):
    """The table of a workflow's steps, stage by stage, ``job`` marked."""
    steps = list(
        Job.objects.filter(workflow_id=job.workflow_id)
        .only("id", "task_path", "status", "workflow_stage", "workflow_index", "waiting_for")
        .order_by("workflow_stage", "workflow_index")[: MAX_STEPS_SHOWN + 1]
    )
    # The error callback (stage -1) sorts first; it reads better last.
    steps.sort(key=lambda step: step.workflow_stage == ERROR_STAGE)
    rows = format_html_join(
        "",
        '<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                "djtasks-current" if step.pk == job.pk else "",
                _stage_label(step),
                job_link(step),
                status_badge(step.status),
                step.task_path,
                _waiting_note(step),
            )
            for step in steps[:MAX_STEPS_SHOWN]
        ),
    )
    more = " (the first 100 shown)" if len(steps) > MAX_STEPS_SHOWN else ""
    return format_html(
        '<table class="djtasks-about djtasks-workflow"><thead><tr><th>stage</th><th>job</th>'
        "<th>status</th><th>task</th><th></th></tr></thead><tbody>{}</tbody></table>"
        '<p><a href="{}">All steps of workflow {}</a>{}</p>',
        rows,
        workflow_url(job.workflow_id),
        str(job.workflow_id)[:8],
        more,
    )


def _waiting_note(step) -> str:
    if step.status != "WAITING":
        return ""
    if step.workflow_stage == ERROR_STAGE:
        # Its count is of every step: it goes when they all succeeded.
        return "runs if a step fails"
    return f"waits for {step.waiting_for}"


def _stage_label(step) -> str:
    if step.workflow_stage == ERROR_STAGE:
        return "on error"
    if step.workflow_index is None:
        return str(step.workflow_stage + 1)
    return f"{step.workflow_stage + 1}.{step.workflow_index + 1}"
