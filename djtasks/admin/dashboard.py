"""The figures on the admin dashboard, and its per-minute chart as SVG data.

Every query here is an aggregate the database answers in one statement;
nothing loads job rows except the short list of recent failures.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from djtasks.admin.display import error_message
from djtasks.admin.paging import EXACT_COUNT_BELOW, planner_estimate
from djtasks.admin.workers import known_queues
from djtasks.models import FINISHED_STATUSES, Job, JobStatus, any_status

CHART_MINUTES = 60
CHART_WIDTH = 720
CHART_HEIGHT = 180
RECENT_FAILURES = 10
# Counted exactly whatever the size of the table (the backlog, not the history).
LIVE = (JobStatus.READY, JobStatus.WAITING, JobStatus.RUNNING)
# Above this many finished jobs (planner's estimate), finished counts are
# estimated per status and queue instead of counted.
ESTIMATE_ABOVE = 100_000
# The READY rows as the three partial indexes on them split them.
READY_INDEXES = (
    {"limited": False, "paused": False},
    {"limited": True, "paused": False},
    {"paused": True},
)


def counts_by_queue(jobs) -> tuple[list[str], list[dict]]:
    """Jobs per queue and status: (statuses, [{queue, counts, total}]).

    Ready and running jobs are counted exactly. Finished ones too while the
    table is small; on a large PostgreSQL table each (status, queue) count
    of finished jobs is the planner's estimate (marked approximate), or an
    exact count when the estimate is small: a GROUP BY over a million rows
    would cost the page hundreds of milliseconds on every load.
    """
    statuses = list(JobStatus.values)
    table: dict[str, dict[str, tuple[int, bool]]] = {}
    estimated = _finished_is_large(jobs)
    exact = jobs.filter(any_status(*LIVE)) if estimated else jobs
    for row in exact.values("queue_name", "status").annotate(n=Count("pk")).order_by():
        table.setdefault(row["queue_name"], {})[row["status"]] = (row["n"], False)
    if estimated:
        for queue in sorted(set(table) | set(known_queues())):
            for status in FINISHED_STATUSES:
                table.setdefault(queue, {})[status] = _estimated_count(
                    jobs.filter(status=status, queue_name=queue)
                )
    return statuses, [
        {
            "queue": queue,
            "counts": [table[queue].get(status, (0, False)) for status in statuses],
            "total": sum(n for n, _ in table[queue].values()),
            "approximate": any(approx for _, approx in table[queue].values()),
        }
        for queue in sorted(table)
        if any(n for n, _ in table[queue].values())
    ]


def _finished_is_large(jobs) -> bool:
    estimate = planner_estimate(jobs.filter(status__in=FINISHED_STATUSES))
    return estimate is not None and estimate >= ESTIMATE_ABOVE


def _estimated_count(queryset) -> tuple[int, bool]:
    """(count, approximate): the planner's estimate unless it is small."""
    estimate = planner_estimate(queryset)
    if estimate is not None and estimate >= EXACT_COUNT_BELOW:
        return estimate, True
    return queryset.count(), False


def oldest_ready(jobs, now) -> list[dict]:
    """Per queue: how long its oldest due READY job has been waiting."""
    found = {}
    # One query per partial index on ready rows (djtasks_job_ready,
    # djtasks_job_ready_limited for jobs under a limit, djtasks_job_paused
    # for a paused task's): the filters on "limited" and "paused" let each
    # read its index, whatever the size of the history.
    for flags in READY_INDEXES:
        rows = (
            jobs.filter(status=JobStatus.READY, available_at__lte=now, **flags)
            .values("queue_name")
            .annotate(oldest=Min("available_at"), ready=Count("pk"))
            .order_by()
        )
        for row in rows:
            seen = found.setdefault(row["queue_name"], {"oldest": row["oldest"], "ready": 0})
            seen["oldest"] = min(seen["oldest"], row["oldest"])
            seen["ready"] += row["ready"]
    return [
        {"queue": queue, "ready": row["ready"], "age": now - row["oldest"]}
        for queue, row in sorted(found.items())
    ]


def per_minute(jobs, now) -> list[dict]:
    """Finished jobs per minute over the last hour, oldest minute first."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=CHART_MINUTES)
    rows = (
        jobs.filter(finished_at__gte=start, finished_at__lt=end)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute")
        .annotate(
            done=Count("pk", filter=Q(status=JobStatus.SUCCESSFUL)),
            failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
            # Expired jobs never ran either: they count with the cancelled.
            cancelled=Count("pk", filter=Q(status__in=(JobStatus.CANCELLED, JobStatus.EXPIRED))),
        )
        .order_by()
    )
    # TruncMinute gives aware datetimes in the current time zone; aware
    # datetimes compare and hash by instant, so they match the UTC keys.
    found = {row["minute"]: row for row in rows}
    minutes = [start + timedelta(minutes=i) for i in range(CHART_MINUTES)]
    return [
        {
            "minute": minute,
            "done": found.get(minute, {}).get("done", 0),
            "failed": found.get(minute, {}).get("failed", 0),
            "cancelled": found.get(minute, {}).get("cancelled", 0),
        }
        for minute in minutes
    ]


@dataclass
class Bar:
    x: float
    width: float
    y: float
    height: float
    title: str
    css: str


# The stacked parts of a minute's bar, bottom first: (bucket key, verb).
CHART_PARTS = (("done", "succeeded"), ("failed", "failed"), ("cancelled", "cancelled or expired"))


def chart(buckets: list[dict]) -> dict:
    """Bars (successes at the bottom, failures then cancellations on top) with their scale."""
    top = max([sum(b.get(key, 0) for key, _ in CHART_PARTS) for b in buckets] + [1])
    slot = CHART_WIDTH / max(len(buckets), 1)
    scale = (CHART_HEIGHT - 20) / top
    bars = []
    for i, bucket in enumerate(buckets):
        x = round(i * slot + 1, 1)
        label = f"{timezone.localtime(bucket['minute']):%H:%M}"
        base = CHART_HEIGHT
        for key, verb in CHART_PARTS:
            height = round(bucket.get(key, 0) * scale, 1)
            if height:
                title = f"{label}: {bucket[key]} {verb}"
                bars.append(Bar(x, slot - 2, base - height, height, title, key))
                base -= height
    return {
        "bars": bars,
        "top": top,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "total_done": sum(b["done"] for b in buckets),
        "total_failed": sum(b["failed"] for b in buckets),
        "total_cancelled": sum(b.get("cancelled", 0) for b in buckets),
        "first": buckets[0]["minute"] if buckets else None,
        "last": buckets[-1]["minute"] if buckets else None,
    }


def recent_failures(jobs) -> list[dict]:
    """The latest failed jobs, each with its last error's class and message."""
    failed = (
        jobs.filter(status=JobStatus.FAILED)
        .only("pk", "task_path", "queue_name", "finished_at", "attempts", "errors")
        .order_by("-finished_at")[:RECENT_FAILURES]
    )
    return [
        {
            "job": job,
            "error_class": job.errors[-1].get("exception_class_path", "") if job.errors else "",
            "message": error_message(job.errors[-1]) if job.errors else "",
        }
        for job in failed
    ]


def deferred_ready(jobs, now) -> dict[str, int]:
    """Per queue: READY jobs not due yet (run_after or a retry's backoff)."""
    rows = (
        jobs.filter(status=JobStatus.READY, available_at__gt=now)
        .values("queue_name")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["queue_name"]: row["n"] for row in rows}


def context(database: str = "default", backend: str | None = None) -> dict:
    """Everything the dashboard template shows: of one TASKS alias, or of all."""
    jobs = Job.objects.using(database)
    if backend is not None:
        jobs = jobs.filter(backend=backend)
    now = timezone.now()
    statuses, queues = counts_by_queue(jobs)
    totals = [sum(q["counts"][i][0] for q in queues) for i in range(len(statuses))]
    return {
        "statuses": statuses,
        "status_totals": list(zip(statuses, totals)),
        "queues": queues,
        "approximate_counts": any(q["approximate"] for q in queues),
        "oldest_ready": oldest_ready(jobs, now),
        "deferred": sorted(deferred_ready(jobs, now).items()),
        "unfinished": any(total for status, total in zip(statuses, totals) if status in LIVE),
        "chart": chart(per_minute(jobs, now)),
        "recent_failures": recent_failures(jobs),
        "now": now,
    }
