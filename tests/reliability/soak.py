"""Soak: a steady load for minutes; worker memory over time, and any stuck job.

    python -m tests.reliability.soak                       # 10 minutes, 50 jobs/s, SQLite
    python -m tests.reliability.soak --minutes 60 --rate 200 \
        --database-url postgres://postgres@127.0.0.1/djtasks_soak

The database must be a scratch one: its jobs, workers and ledger rows are
deleted first. Jobs (tests.tasks.chaos_step, a ledger row and a short
sleep) are enqueued at ``--rate`` per second in small batches while
runworker processes run them. Every sample the run notes the resident
memory (RSS) of each worker process and the backlog; at the end it stops
enqueuing, lets the workers drain, and lists every job that did not end
SUCCESSFUL or is still READY or RUNNING (stuck).
"""

import argparse
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability import procs
from tests.reliability.runtime import Workers


@dataclass
class Sample:
    second: float
    rss_kb: list  # one per worker process, in pid order
    backlog: int
    done: int
    oldest_running: float  # seconds the longest-running attempt has run (a stuck job grows)

    def row(self) -> str:
        rss = " ".join(f"{kb / 1024:.1f}" for kb in self.rss_kb)
        return (
            f"{self.second:7.0f} {rss:<28} {self.backlog:8d} {self.done:8d} "
            f"{self.oldest_running:18.1f}"
        )


HEADER = f"{'second':>7} {'worker RSS MB (each)':<28} {'backlog':>8} {'done':>8} " + (
    f"{'longest running s':>18}"
)


@dataclass
class SoakReport:
    seconds: float
    enqueued: int = 0
    samples: list = field(default_factory=list)
    stuck: list = field(default_factory=list)
    not_successful: list = field(default_factory=list)

    @property
    def rss_drift_kb(self) -> int:
        """Mean worker RSS of the last sample minus the first (after warm-up)."""
        sized = [sample for sample in self.samples if sample.rss_kb]
        if len(sized) < 2:
            return 0
        first, last = sized[0].rss_kb, sized[-1].rss_kb
        return round(sum(last) / len(last) - sum(first) / len(first))

    def lines(self) -> list[str]:
        return [HEADER] + [taken.row() for taken in self.samples] + self.summary()

    def summary(self) -> list[str]:
        return [
            f"jobs enqueued        {self.enqueued} in {self.seconds:.0f} s",
            f"worker RSS drift     {self.rss_drift_kb / 1024:+.1f} MB per process "
            "(last sample minus first)",
            f"stuck jobs           {len(self.stuck)}",
            f"not SUCCESSFUL       {len(self.not_successful)}",
        ]


def backlog() -> int:
    from djtasks.models import Job

    return Job.objects.filter(status__in=["READY", "RUNNING"]).count()


def successful() -> int:
    from djtasks.models import Job

    return Job.objects.filter(status="SUCCESSFUL").count()


def oldest_running() -> float:
    from django.db.models import Min
    from django.utils import timezone

    from djtasks.models import Job

    since = Job.objects.filter(status="RUNNING").aggregate(since=Min("last_attempted_at"))["since"]
    return 0.0 if since is None else (timezone.now() - since).total_seconds()


def sample(started: float, workers: Workers) -> Sample:
    return Sample(
        time.monotonic() - started, worker_rss(workers), backlog(), successful(), oldest_running()
    )


def worker_rss(workers: Workers) -> list[int]:
    pids = sorted(pid for worker in workers.alive() for pid in procs.children(worker.pid))
    return [procs.rss_kb(pid) for pid in pids]


def run(
    *,
    url: str,
    settings_dir: Path,
    log_dir: Path,
    seconds: float = 600.0,
    rate: float = 50.0,
    job_seconds: float = 0.005,
    runworkers: int = 1,
    processes: int = 2,
    samples: int = 20,
    drain_timeout: float = 60.0,
    on_sample=None,
) -> SoakReport:
    """Keep ``rate`` jobs/s coming for ``seconds``; sample memory; report stuck jobs."""
    from djtasks import bulk_enqueue
    from tests import tasks

    report = SoakReport(seconds=seconds)
    workers = Workers(settings_dir, url, log_dir, ["--processes", str(processes)])
    sample_every = max(seconds / samples, 0.5)
    try:
        for _ in range(runworkers):
            workers.start()
        started = time.monotonic()
        next_sample = started
        # Batches every 0.1 s: steady, and the enqueue side stays cheap.
        while (now := time.monotonic()) < started + seconds:
            due = int((now - started) * rate) - report.enqueued
            if due > 0:
                bulk_enqueue(tasks.chaos_step, [((), {"seconds": job_seconds})] * due)
                report.enqueued += due
            if now >= next_sample:
                report.samples.append(sample(started, workers))
                if on_sample:
                    on_sample(report.samples[-1])
                next_sample += sample_every
            time.sleep(0.1)
        deadline = time.monotonic() + drain_timeout
        while backlog() and time.monotonic() < deadline:
            time.sleep(0.2)
        report.samples.append(sample(started, workers))
        for worker in workers.alive():
            worker.signal(signal.SIGTERM)
        for worker in workers.alive():
            worker.wait(30)
    finally:
        workers.cleanup()
    find_stuck(report)
    return report


def find_stuck(report: SoakReport) -> None:
    from djtasks.models import Job

    for job in Job.objects.exclude(status="SUCCESSFUL").order_by("enqueued_at"):
        entry = f"{job.id} {job.status} attempts={job.attempts} enqueued {job.enqueued_at}"
        if job.status in ("READY", "RUNNING"):
            report.stuck.append(entry)
        else:
            report.not_successful.append(f"{entry} errors={job.errors[-1:]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="jobs enqueued per second")
    parser.add_argument("--runworkers", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2, help="per runworker")
    parser.add_argument("--samples", type=int, default=20, help="memory samples over the run")
    parser.add_argument("--database-url", help="a scratch database (default: var/soak.sqlite3)")
    return parser


def main(argv=None) -> int:
    options = build_parser().parse_args(argv)

    from tests.reliability.runtime import default_url, empty_tables, setup_django

    url = options.database_url or default_url("soak")
    settings_dir = setup_django(url)
    empty_tables()
    log_dir = Path(tempfile.mkdtemp(prefix="djtasks-soak-logs-"))
    print(f"soak: {options.minutes:g} min at {options.rate:g} jobs/s, logs in {log_dir}")
    print(HEADER, flush=True)
    report = run(
        url=url,
        settings_dir=settings_dir,
        log_dir=log_dir,
        seconds=options.minutes * 60,
        rate=options.rate,
        runworkers=options.runworkers,
        processes=options.processes,
        samples=options.samples,
        on_sample=lambda taken: print(taken.row(), flush=True),
    )
    print(report.samples[-1].row())  # after the drain
    print("\n".join(report.summary()))
    for entry in report.stuck + report.not_successful:
        print("PROBLEM:", entry)
    return 1 if report.stuck or report.not_successful else 0


if __name__ == "__main__":
    sys.exit(main())
