"""The demo site's tasks."""

import time

from django.utils import timezone

from djtasks import set_progress, task

from .models import Report


@task
def add(a, b):
    """Quick: add two numbers."""
    return a + b


@task
def total(numbers):
    """A workflow's last step: sum the results of the steps before it."""
    return sum(numbers)


@task(takes_context=True)
def slow_count(context, seconds: int = 5):
    """Slow: count for a few seconds, reporting progress as it goes."""
    steps = seconds * 4
    for step in range(steps):
        set_progress(context, step, total=steps, message=f"step {step + 1} of {steps}")
        time.sleep(0.25)
    set_progress(context, steps, total=steps, message="done")
    return {"counted": seconds, "attempt": context.attempt}


@task(max_attempts=3, backoff=1, jitter=False, takes_context=True)
def flaky(context):
    """Fails on the first two attempts, then succeeds."""
    if context.attempt < 3:
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return "third time lucky"


@task(max_attempts=2, backoff=1, jitter=False, takes_context=True)
def fail_for_good(context):
    """Fails on every attempt: after the second, the job ends FAILED."""
    raise RuntimeError(f"attempt {context.attempt} of 2 fails on purpose, like every attempt")


@task(takes_context=True)
def build_report(context, report_id: int, rows: int = 40):
    """Build a report row by row; enqueued with .using(about=report)."""
    report = Report.objects.get(pk=report_id)
    for row in range(rows):
        set_progress(context, row, total=rows, message=f"row {row + 1}")
        time.sleep(0.05)
    set_progress(context, rows, total=rows, message="done")
    report.rows = rows
    report.built_at = timezone.now()
    report.save(update_fields=["rows", "built_at"])
    return {"report": report.pk, "rows": rows}
