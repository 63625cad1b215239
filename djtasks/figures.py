"""Operational figures read from the database: backlog, workers, recent outcomes.

``manage.py djtasks status`` / ``health`` and the Prometheus endpoint share
them. Every query reads an index whose size follows the backlog (the
partial indexes of ready rows), the live workers, or a recent window of
finished rows (the index on finished_at), never the whole history:
tests/integration/test_query_plans.py proves it on PostgreSQL.
"""

from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone

from djtasks.conf import settings
from djtasks.models import Job, JobStatus, Worker

# The outcomes of an attempt that ran (CANCELLED and EXPIRED ones may never have started).
RAN = (JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED)


def queues(database: str, now=None) -> dict[str, dict]:
    """Per queue: ready (all READY rows), due (claimable now), oldest due age, running, waiting."""
    now = now or timezone.now()
    jobs = Job.objects.using(database)
    found: dict[str, dict] = {}

    def entry(queue):
        return found.setdefault(
            queue, {"ready": 0, "due": 0, "oldest_due_age": None, "running": 0, "waiting": 0}
        )

    # One query per partial index of ready rows (djtasks_job_ready,
    # djtasks_job_ready_limited, and djtasks_job_paused for a paused task's
    # rows): each filter repeats its index's condition, so each reads its own
    # index, whose size is the backlog whatever the history.
    for index_condition in (
        {"limited": False, "paused": False},
        {"limited": True, "paused": False},
        {"paused": True},
    ):
        rows = (
            jobs.filter(status=JobStatus.READY, **index_condition)
            .values("queue_name")
            .annotate(
                ready=Count("pk"),
                due=Count("pk", filter=Q(available_at__lte=now)),
                oldest=Min("available_at", filter=Q(available_at__lte=now)),
            )
            .order_by()
        )
        for row in rows:
            queue = entry(row["queue_name"])
            queue["ready"] += row["ready"]
            queue["due"] += row["due"]
            if row["oldest"] is not None:
                age = (now - row["oldest"]).total_seconds()
                queue["oldest_due_age"] = max(queue["oldest_due_age"] or 0.0, age)
    # RUNNING and WAITING rows are few (the work in hand): djtasks_job_running
    # and the status index find them.
    for status, key in ((JobStatus.RUNNING, "running"), (JobStatus.WAITING, "waiting")):
        rows = jobs.filter(status=status).values("queue_name").annotate(n=Count("pk")).order_by()
        for row in rows:
            entry(row["queue_name"])[key] = row["n"]
    return dict(sorted(found.items()))


def workers(database: str, now=None) -> list[dict]:
    """Worker processes not stopped: host, pid, heartbeat age, alive, running jobs."""
    now = now or timezone.now()
    stale_after = settings.STALE_AFTER
    rows = list(
        Worker.objects.using(database).filter(stopped_at__isnull=True).order_by("hostname", "pid")
    )
    # A second query rather than a join: the join would read every job the
    # workers ever ran; this one reads the partial index of running jobs.
    running = dict(
        Job.objects.using(database)
        .filter(status=JobStatus.RUNNING, worker_id__in=[worker.id for worker in rows])
        .values("worker_id")
        .annotate(n=Count("pk"))
        .values_list("worker_id", "n")
        .order_by()
    )
    return [
        {
            "id": worker.id,
            "host": worker.hostname,
            "pid": worker.pid,
            "queues": list(worker.queues or []),
            "heartbeat_age": (now - worker.last_heartbeat_at).total_seconds(),
            "alive": now - worker.last_heartbeat_at <= timedelta(seconds=stale_after),
            "running": running.get(worker.id, 0),
        }
        for worker in rows
    ]


def alive_workers(database: str, now=None, hostname: str | None = None):
    """Worker rows that beat within STALE_AFTER (on ``hostname`` if given), newest beat first."""
    now = now or timezone.now()
    # Reads the index on last_heartbeat_at: a range of the recent beats.
    rows = Worker.objects.using(database).filter(
        stopped_at__isnull=True,
        last_heartbeat_at__gte=now - timedelta(seconds=settings.STALE_AFTER),
    )
    if hostname is not None:
        rows = rows.filter(hostname=hostname)
    return rows.order_by("-last_heartbeat_at")


def finished_since(database: str, since) -> list[dict]:
    """Jobs finished since ``since``, per task and status: [{task_path, status, n}]."""
    # A range of the partial index on finished_at: its cost follows the
    # window's throughput, not the history.
    return list(
        Job.objects.using(database)
        .filter(finished_at__gte=since)
        .values("task_path", "status")
        .annotate(n=Count("pk"))
        .order_by("task_path", "status")
    )


def failures_since(database: str, since) -> int:
    return (
        Job.objects.using(database).filter(finished_at__gte=since, status=JobStatus.FAILED).count()
    )


def attempt_durations(database: str, since, buckets: list[float]) -> list[dict]:
    """Per task, the last attempts that finished since ``since``: count, sum and buckets.

    An attempt's duration is finished_at - last_attempted_at (the start of
    the attempt that ended the job). ``buckets`` are upper bounds in
    seconds; each bucket's count is cumulative, as Prometheus wants.
    """
    attempt = ExpressionWrapper(F("finished_at") - F("last_attempted_at"), DurationField())
    counts = {
        f"le_{index}": Count("pk", filter=Q(attempt__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(buckets)
    }
    rows = (
        Job.objects.using(database)
        .filter(finished_at__gte=since, status__in=RAN, last_attempted_at__isnull=False)
        .annotate(attempt=attempt)
        .values("task_path")
        .annotate(count=Count("pk"), total=Sum("attempt"), **counts)
        .order_by("task_path")
    )
    return [
        {
            "task_path": row["task_path"],
            "count": row["count"],
            "sum": _seconds(row["total"]),
            "buckets": [(bound, row[f"le_{i}"]) for i, bound in enumerate(buckets)],
        }
        for row in rows
    ]


def _seconds(total) -> float:
    if total is None:
        return 0.0
    if isinstance(total, timedelta):
        return total.total_seconds()
    return float(total) / 1_000_000  # SQLite sums a duration as microseconds
