"""Why a job that has not started waits, in words, for its admin page."""

from datetime import timedelta

from django.utils import timezone

from djtasks.conf import settings, unknown_task_grace
from djtasks.models import JobStatus, Worker
from djtasks.worker import unknown_tasks


def reasons(job, now=None) -> list[str]:
    """What keeps ``job`` (a WAITING or READY row) from starting; empty for other statuses."""
    if job.status == JobStatus.WAITING:
        return [f"Waits for {job.waiting_for} earlier step(s) of its workflow to finish."]
    if job.status != JobStatus.READY:
        return []
    now = now or timezone.now()
    found = []
    if job.available_at > now:
        found.append(f"Not due before {_when(job.available_at)} ({_why_later(job)}).")
    found += _worker_reasons(job, now)
    if job.rate_limit or job.concurrency_key:
        found.append("Starts only when its limits allow (see limits).")
    return found or ["Due: waits for a free worker thread on its queue."]


def _worker_reasons(job, now) -> list[str]:
    database = job._state.db or "default"
    live = list(
        Worker.objects.using(database)
        .filter(
            stopped_at__isnull=True,
            last_heartbeat_at__gte=now - timedelta(seconds=settings.STALE_AFTER),
        )
        .values_list("queues", "tasks")
    )
    on_queue = [tasks for queues, tasks in live if job.queue_name in (queues or ())]
    if not live:
        return ["No worker is running."]
    if not on_queue:
        return [f"No live worker takes queue {job.queue_name!r}."]
    if all(tasks is None for tasks in on_queue):
        return []  # workers of a version that does not list its tasks
    knowledge = unknown_tasks.TaskKnowledge.read(database, now)
    verdict = unknown_tasks.verdict(job, knowledge, now, unknown_task_grace())
    if verdict.runners:
        return []
    return [f"Left for a worker with its task: {verdict.message}"]


def _why_later(job) -> str:
    if job.attempts == 0 and job.run_after is not None and job.available_at <= job.run_after:
        return "its run_after"
    if job.errors:
        return "the backoff before its next attempt"
    return "handed back by a worker that lacks its task"


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
