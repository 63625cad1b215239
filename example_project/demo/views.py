"""The demo pages: enqueue a job, watch it run."""

import random

from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from djtasks.models import Job

from .tasks import add, flaky, slow_count

DEMOS = {
    "add": lambda: add.enqueue(random.randint(1, 99), random.randint(1, 99)),
    "slow": lambda: slow_count.enqueue(5),
    "flaky": lambda: flaky.enqueue(),
}


def index(request):
    jobs = Job.objects.order_by("-enqueued_at")[:20]
    return render(request, "demo/index.html", {"jobs": jobs, "demos": DEMOS})


@require_POST
def enqueue_demo(request, name):
    if name not in DEMOS:
        raise Http404(name)
    result = DEMOS[name]()
    return redirect("job-detail", job_id=result.id)


def job_detail(request, job_id):
    job = _job_or_404(job_id)
    return render(request, "demo/job.html", {"job": job})


def job_json(request, job_id):
    job = _job_or_404(job_id)
    return JsonResponse(
        {
            "id": str(job.id),
            "task": job.task_path,
            "status": job.status,
            "attempts": job.attempts,
            "return_value": job.return_value,
            "errors": [error["exception_class_path"] for error in job.errors],
            "finished": job.is_finished,
        }
    )


def _job_or_404(job_id):
    try:
        return Job.objects.get(pk=job_id)
    except (Job.DoesNotExist, ValueError) as error:
        raise Http404("No such job") from error
