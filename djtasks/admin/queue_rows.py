"""The figures of the admin's Queues page: one row per queue, one per controlled task.

Aggregates only, each over an index of live rows (ready, running) or of
recently finished ones, so the page costs the same with any history.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count

from djtasks.admin.dashboard import oldest_ready
from djtasks.admin.workers import known_queues
from djtasks.limits import queue_rate_limits
from djtasks.models import Control, ControlKind, Job, JobStatus

# Failures are counted over this span (through the finished_at index).
FAILED_SINCE = timedelta(hours=24)


@dataclass
class QueueRow:
    name: str
    ready: int = 0
    running: int = 0
    failed: int = 0
    oldest_age: timedelta | None = None
    control: Control | None = None
    default_rate: str = ""

    @property
    def paused(self) -> bool:
        return bool(self.control and self.control.paused)

    @property
    def rate_override(self) -> str:
        return (self.control and self.control.rate_limit) or ""

    @property
    def concurrency(self) -> int | None:
        return self.control.concurrency_limit if self.control else None

    @property
    def oldest_age_text(self) -> str:
        return "–" if self.oldest_age is None else age_text(self.oldest_age)


def age_text(age: timedelta) -> str:
    """A wait as people read it: "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h"."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size, smaller, smaller_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if seconds >= size:
            return f"{seconds // size} {unit} {seconds % size // smaller_size} {smaller}"
    return f"{seconds} s"


def queue_rows(database: str, now) -> list[QueueRow]:
    """Every queue: configured, served by a worker, holding live jobs, or controlled."""
    jobs = Job.objects.using(database)
    stored = {
        control.name: control
        for control in Control.objects.using(database).filter(kind=ControlKind.QUEUE)
    }
    defaults = {queue: str(rate) for queue, rate in queue_rate_limits().items()}
    rows = {name: QueueRow(name) for name in {*known_queues(), *stored, *defaults}}
    for waiting in oldest_ready(jobs, now):
        row = rows.setdefault(waiting["queue"], QueueRow(waiting["queue"]))
        row.ready, row.oldest_age = waiting["ready"], waiting["age"]
    for queue, count in _count_by_queue(jobs.filter(status=JobStatus.RUNNING)):
        rows.setdefault(queue, QueueRow(queue)).running = count
    recent_failures = jobs.filter(status=JobStatus.FAILED, finished_at__gte=now - FAILED_SINCE)
    for queue, count in _count_by_queue(recent_failures):
        rows.setdefault(queue, QueueRow(queue)).failed = count
    for name, row in rows.items():
        row.control = stored.get(name)
        row.default_rate = defaults.get(name, "")
    return [rows[name] for name in sorted(rows)]


def task_controls(database: str) -> list[Control]:
    """The stored controls of tasks, paused ones first."""
    return list(
        Control.objects.using(database).filter(kind=ControlKind.TASK).order_by("-paused", "name")
    )


def _count_by_queue(jobs):
    return (
        jobs.order_by().values("queue_name").annotate(n=Count("pk")).values_list("queue_name", "n")
    )
