"""How the djtasks admin pages show a job's fields: badges, JSON, bars, times.

Stored data (arguments, results, tracebacks, messages) is user data: it is
rendered through format_html / escape only, never marked safe.
"""

import json
import re

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from djtasks.ids import short_id
from djtasks.models import JobStatus
from djtasks.progress import percent

# Columns the job lists never show: not loaded for a page of rows.
HEAVY_FIELDS = ("args", "kwargs", "return_value", "errors", "retry_policy", "worker_ids")
STATIC_CSS = {"all": ["djtasks/admin.css"]}
# Refreshes a page that shows unfinished work (see the script's header).
STATIC_JS = ["djtasks/refresh.js"]
# How often a page showing unfinished jobs reloads its figures.
REFRESH_SECONDS = 3


def status_badge(status: str):
    label = JobStatus(status).label if status in JobStatus.values else status
    return format_html('<span class="djtasks-badge djtasks-{}">{}</span>', status, label)


def pretty_json(value):
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="djtasks-json">{}</pre>', text)


def progress_bar(progress, compact: bool = False):
    """A bar for a stored progress value, or '-' for a job that never reported any.

    A known total fills the bar to its share; an unknown one (or a zero
    total) draws it full and striped (``djtasks-progress-unknown``), as the
    docs promise. ``compact`` (the jobs list) leaves out the counts and the
    message.
    """
    if not isinstance(progress, dict):
        return "-"
    share = percent(progress)
    current, total = progress.get("current"), progress.get("total")
    caption = f"{current}/{total}" if total is not None else f"{current}"
    if share is not None:
        caption = f"{share:g}%" if compact else f"{caption} ({share:g}%)"
    classes = " djtasks-progress-compact" if compact else ""
    if share is None:
        classes += " djtasks-progress-unknown"
    return format_html(
        '<div class="djtasks-progress{}" role="progressbar" aria-valuemin="0" '
        'aria-valuemax="100" aria-valuenow="{}" title="{}"><div class="djtasks-progress-fill" '
        'style="width: {}%"></div></div><span class="djtasks-progress-caption">{}</span>',
        classes,
        share if share is not None else "",
        progress.get("message", ""),
        share if share is not None else 100,
        caption if compact else f"{caption} {progress.get('message', '')}",
    )


# The one way djtasks' pages show a moment: ISO date, time to the second and
# the zone's abbreviation, so two pages (or a schedule in another zone) read
# the same and never leave the zone to guess.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def format_time(value, zone=None) -> str:
    """A timestamp in ``zone`` (default: the current time zone), or '-'."""
    if value is None:
        return "-"
    return timezone.localtime(value, zone).strftime(TIME_FORMAT)


def short_time(value):
    """format_time for a narrow column: the date and the time may wrap apart."""
    if value is None:
        return "-"
    day, _, clock = format_time(value).partition(" ")
    return format_html(
        '<span class="djtasks-nowrap">{}</span> <span class="djtasks-nowrap">{}</span>', day, clock
    )


def breakable_path(path: str):
    """A dotted task path that may wrap after a dot, or an underscore of its last name.

    The module path breaks at its dots only ("example_project." stays
    whole); the function's name, often long, at its underscores too.
    """
    module, dot, name = path.rpartition(".")
    parts = [*re.split(r"(?<=\.)", module + dot), *re.split(r"(?<=_)", name)]
    parts = [part for part in parts if part]
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))


def job_link(job):
    url = reverse("admin:djtasks_job_change", args=[job.pk])
    return format_html('<a href="{}">{}</a>', url, short_id(job.pk))


def format_duration(delta) -> str:
    if delta is None:
        return "-"
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


# A frame of djtasks' own worker (the executor calling the task): the
# machinery every traceback starts with, not the user's code.
WORKER_FRAME = re.compile(r'^  File ".*[/\\]djtasks[/\\]worker[/\\][^"]*", line \d+')


def trimmed_traceback(text: str) -> str:
    """The traceback without the frames of djtasks' worker (the row keeps them all)."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("  File "):
            skipping = bool(WORKER_FRAME.match(line))
        elif not line.startswith("    "):
            skipping = False  # a header or the exception line: never part of a frame
        if not skipping:
            kept.append(line)
    return "".join(kept)


def error_message(entry: dict) -> str:
    """The first line of a recorded error's message, read from its traceback."""
    path = entry.get("exception_class_path", "")
    names = {path, path.rpartition(".")[2]}
    lines = entry.get("traceback", "").splitlines()
    for line in reversed(lines):
        name, colon, message = line.partition(": ")
        if name in names:
            return message.strip()
        if colon == "" and line.strip() in names:
            return ""
    return ""
