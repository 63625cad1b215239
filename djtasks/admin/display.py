"""How the djtasks admin pages show a job's fields: badges, JSON, bars, times.

Stored data (arguments, results, tracebacks, messages) is user data: it is
rendered through format_html / escape only, never marked safe.
"""

import json

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from djtasks.models import JobStatus
from djtasks.progress import percent

# Columns the job lists never show: not loaded for a page of rows.
HEAVY_FIELDS = ("args", "kwargs", "return_value", "errors", "retry_policy", "worker_ids")
STATIC_CSS = {"all": ["djtasks/admin.css"]}


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
