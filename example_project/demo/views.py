"""The demo pages: enqueue a job, watch it run, follow it into the admin."""

import random
from datetime import timedelta

from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from djtasks import chord
from djtasks.models import Job
from djtasks.progress import percent

from .models import Report
from .tasks import add, build_report, fail_for_good, flaky, slow_count, total

# How long the "scheduled for later" demo waits before it may run.
LATER = timedelta(seconds=30)

# These pages need no login: they show the demo's own jobs only, never the
# arguments or results of other jobs sharing the table.
DEMO_TASKS = "example_project.demo.tasks."


def _chord():
    # The page follows the callback: WAITING until the five additions are done.
    header = [add.step(number, number) for number in range(1, 6)]
    return chord(header, total.step()).enqueue().last


def _report():
    report = Report.objects.create(title=f"Demo report {random.randint(1000, 9999)}")
    return build_report.using(about=report).enqueue(report.pk)


DEMOS = {
    "add": ("Add two numbers (quick)", lambda: add.enqueue(random.randint(1, 99), 7)),
    "slow": ("Count for 5 seconds (slow, with progress)", lambda: slow_count.enqueue(5)),
    "flaky": ("Fail twice, then succeed (retries)", lambda: flaky.enqueue()),
    "fail": ("Fail on both attempts (ends FAILED)", lambda: fail_for_good.enqueue()),
    "later": (
        "Add two numbers in 30 seconds (scheduled for later)",
        lambda: add.using(run_after=LATER).enqueue(1, 2),
    ),
    "report": ("Build a report (a job bound to a model row)", _report),
    "chord": ("Add five pairs in parallel, then sum them (a workflow: chord)", _chord),
}


def index(request):
    jobs = list(_demo_jobs().defer("args", "kwargs", "errors").order_by("-enqueued_at")[:20])
    demos = [(name, label) for name, (label, _) in DEMOS.items()]
    # While a listed job is unfinished, the page refreshes its list by itself.
    unfinished = any(not job.is_finished for job in jobs)
    context = {"jobs": jobs, "demos": demos, "unfinished": unfinished}
    return render(request, "demo/index.html", context)


@require_POST
def enqueue_demo(request, name):
    if name not in DEMOS:
        raise Http404(name)
    result = DEMOS[name][1]()
    return redirect("job-detail", job_id=result.id)


def job_detail(request, job_id):
    job = _job_or_404(job_id)
    admin_url = reverse("admin:djtasks_job_change", args=[job.pk])
    failures = [failure(error) for error in job.errors]
    context = {"job": job, "admin_url": admin_url, "failures": failures}
    return render(request, "demo/job.html", context)


def job_json(request, job_id):
    """The job's state for the polling job page."""
    job = _job_or_404(job_id)
    progress = job.progress if isinstance(job.progress, dict) else None
    return JsonResponse(
        {
            "id": str(job.id),
            "task": job.task_path,
            "status": job.status,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "return_value": job.return_value,
            "errors": [error["exception_class_path"] for error in job.errors],
            "failures": [failure(error) for error in job.errors],
            "progress": progress,
            "percent": percent(progress),
            "finished": job.is_finished,
        }
    )


def failure(entry):
    """A failed attempt as the job page shows it: its exception and message."""
    path = entry["exception_class_path"]
    return {
        "attempt": entry.get("attempt"),
        "error": path,
        "message": error_message(path, entry.get("traceback") or ""),
    }


def error_message(class_path, traceback_text):
    """The first line of the exception's message, read from its traceback."""
    # The traceback's last exception line is "Name: message", the name shown
    # without "builtins."; a message of several lines continues below it.
    shown = class_path.removeprefix("builtins.")
    lines = traceback_text.splitlines()
    for line in reversed(lines):
        if line.startswith(shown + ": "):
            return line[len(shown) + 2 :]
        if line == shown:
            return ""
    # djtasks records some errors (an unknown task, a malformed row) as their
    # message alone, with no traceback: that line is the message.
    return next((line for line in reversed(lines) if line.strip()), "")


def _demo_jobs():
    return Job.objects.filter(task_path__startswith=DEMO_TASKS)


def _job_or_404(job_id):
    try:
        return _demo_jobs().get(pk=job_id)
    except (Job.DoesNotExist, ValueError) as error:
        raise Http404("No such job") from error
