"""The figures of djtasks as Prometheus metrics, read from the database at each scrape.

A collector, not counters kept in one process: the jobs are rows, so one
scrape of any web process sees every host's work. Labels are queues, task
paths, statuses and host names; a job's arguments are never exposed.

Finished work is counted over a recent window (METRICS_WINDOW) rather than
as an ever-growing counter: a counter would have to be kept by the workers
on every completion, and the rows it could be derived from are pruned.
"""

from datetime import timedelta

from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

from djtasks import controls, figures
from djtasks.compat import task_backends
from djtasks.conf import settings

# The statuses counted exactly at each scrape: the work in hand, whose size
# follows the backlog. Finished jobs are counted over the window instead.
LIVE_STATUSES = ("READY", "WAITING", "RUNNING")


class JobsCollector:
    """Collects the metrics of the jobs in ``database`` (prometheus_client's collector protocol)."""

    def __init__(self, database: str, queues=()):
        self.database = database
        self.known_queues = set(queues)

    def collect(self):
        now = timezone.now()
        window = settings.METRICS_WINDOW
        since = now - timedelta(seconds=window)
        queues = figures.queues(self.database, now)
        yield from self._backlog(queues)
        yield from self._paused(controls.read(self.database), queues)
        yield self._workers(figures.workers(self.database, now))
        yield self._finished(figures.finished_since(self.database, since), window)
        yield self._durations(
            figures.attempt_durations(self.database, since, list(settings.METRICS_BUCKETS))
        )

    def _backlog(self, queues: dict):
        jobs = GaugeMetricFamily(
            "djtasks_jobs", "Jobs ready, waiting or running, by queue.", labels=["queue", "status"]
        )
        due = GaugeMetricFamily(
            "djtasks_jobs_due", "Ready jobs that may be claimed now, by queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "djtasks_oldest_ready_age_seconds",
            "How long the oldest claimable ready job of the queue has waited (0: none).",
            labels=["queue"],
        )
        empty = {"ready": 0, "waiting": 0, "running": 0, "due": 0, "oldest_due_age": None}
        for queue in sorted(self.known_queues | set(queues)):
            row = queues.get(queue, empty)
            for status in LIVE_STATUSES:
                jobs.add_metric([queue, status], row[status.lower()])
            due.add_metric([queue], row["due"])
            oldest.add_metric([queue], row["oldest_due_age"] or 0.0)
        return jobs, due, oldest

    def _paused(self, stored, queues: dict):
        queue_paused = GaugeMetricFamily(
            "djtasks_queue_paused", "1 while the queue is paused, else 0.", labels=["queue"]
        )
        for queue in sorted(self.known_queues | set(queues) | stored.paused_queues):
            queue_paused.add_metric([queue], 1 if queue in stored.paused_queues else 0)
        task_paused = GaugeMetricFamily(
            "djtasks_task_paused", "1 for each task paused across queues.", labels=["task"]
        )
        for task in sorted(stored.paused_tasks):
            task_paused.add_metric([task], 1)
        return queue_paused, task_paused

    def _workers(self, workers: list[dict]):
        alive = GaugeMetricFamily(
            "djtasks_workers_alive",
            "Worker processes that beat within STALE_AFTER, by host.",
            labels=["host"],
        )
        per_host: dict[str, int] = {}
        for worker in workers:
            per_host[worker["host"]] = per_host.get(worker["host"], 0) + int(worker["alive"])
        for host, count in sorted(per_host.items()):
            alive.add_metric([host], count)
        return alive

    def _finished(self, rows: list[dict], window: float):
        finished = GaugeMetricFamily(
            "djtasks_jobs_finished_recent",
            f"Jobs finished in the last METRICS_WINDOW ({window:g} s), by task and outcome.",
            labels=["task", "status"],
        )
        for row in rows:
            finished.add_metric([row["task_path"], row["status"]], row["n"])
        return finished

    def _durations(self, rows: list[dict]):
        histogram = HistogramMetricFamily(
            "djtasks_attempt_duration_seconds",
            "Duration of the last attempt of jobs finished in the last METRICS_WINDOW, by task.",
            labels=["task"],
        )
        for row in rows:
            buckets = [(floatToGoString(bound), count) for bound, count in row["buckets"]]
            buckets.append(("+Inf", row["count"]))
            histogram.add_metric([row["task_path"]], buckets, sum_value=row["sum"])
        return histogram


def render(alias: str = "default") -> bytes:
    """The metrics of the jobs of TASKS[alias], in Prometheus' text format."""
    backend = task_backends[alias]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector(backend.database, getattr(backend, "queues", ()) or ()))
    return generate_latest(registry)
