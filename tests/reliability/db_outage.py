"""Database outage: stop PostgreSQL under load, restart it, time the recovery.

    python -m tests.reliability.db_outage                  # 2,000 jobs, down 5 s
    python -m tests.reliability.db_outage --jobs 5000 --down 30
    python -m tests.reliability.db_outage --crash          # a crash, not a clean stop

Starts its own throwaway PostgreSQL server (initdb and pg_ctl on a free
port; DJTASKS_PG_BIN names the binaries' directory), migrates it, enqueues
the load, starts runworker processes and a runbeat with a schedule every
second, then stops the server ("fast": every connection breaks; with
--crash "immediate", as if it crashed: no checkpoint, and commits that did
not wait for the disk, such as claims, may be lost), keeps it down, and
starts it again. Reported: the seconds from the restart to the
first job finished and to the first schedule run enqueued. Checked: no
process exited, every job SUCCESSFUL and run, each schedule run enqueued
once, every process stops cleanly afterwards.
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.acceptance.conftest import ROOT
from tests.reliability.runtime import Workers, write_settings

LOAD = "tests.tasks.ledger_retried"
TICK = "tests.tasks.add"

SETUP = """
from datetime import timedelta
from django.utils import timezone
from djtasks import bulk_enqueue
from djtasks.models import Schedule
from tests import tasks
calls = [((f"load-{{i}}",), {{"seconds": {seconds}}}) for i in range({jobs})]
bulk_enqueue(tasks.ledger_retried, calls)
Schedule.objects.create(
    name="every-second",
    task_path="tests.tasks.add",
    args=[1, 2],
    interval=timedelta(seconds=1),
    next_run_at=timezone.now().replace(microsecond=0) + timedelta(seconds=1),
)
"""


class OutageError(AssertionError):
    """The system did not ride out the outage."""


@dataclass
class OutageReport:
    jobs: int
    down_seconds: float
    crash: bool = False
    worker_recovery: float = 0.0
    beat_recovery: float = 0.0
    drain_after_restart: float = 0.0
    runs_of_jobs: int = 0
    schedule_runs: int = 0
    problems: list = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"jobs                          {self.jobs}",
            f"database down                 {self.down_seconds:.1f} s"
            + (" (crashed)" if self.crash else " (stopped)"),
            f"restart -> first job done     {self.worker_recovery:.2f} s",
            f"restart -> first beat run     {self.beat_recovery:.2f} s",
            f"restart -> all jobs done      {self.drain_after_restart:.1f} s",
            f"executions of the jobs        {self.runs_of_jobs}",
            f"schedule runs enqueued        {self.schedule_runs}",
            f"problems                      {len(self.problems)}",
        ]


def manage(env, *args) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def count(server, sql, *params) -> int:
    return server.query(sql, params)[0][0]


def done(server) -> int:
    return count(
        server,
        "SELECT count(*) FROM djtasks_job WHERE task_path = %s AND status = 'SUCCESSFUL'",
        LOAD,
    )


def ticks(server) -> int:
    return count(server, "SELECT count(*) FROM djtasks_job WHERE task_path = %s", TICK)


def wait(predicate, timeout: float, what: str, processes) -> float:
    """Poll ``predicate``; return when it held (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return time.monotonic()
        except Exception:  # noqa: BLE001 - the server may still be starting
            pass
        if time.monotonic() > deadline:
            logs = "".join(
                f"\n--- {name} (tail) ---\n{path.read_text(errors='replace')[-3000:]}"
                for name, path in processes.logs()
            )
            raise OutageError(f"timed out after {timeout:g}s waiting for {what}{logs}")
        time.sleep(0.05)


class Beat:
    """A ``manage.py runbeat`` process with its log file."""

    def __init__(self, env, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in cleanup()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runbeat", "--tick-max", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


class Processes:
    """The runworkers and the beat of one run."""

    def __init__(self, workers: Workers, beat: Beat):
        self.workers, self.beat = workers, beat

    def logs(self):
        yield from ((worker.log_path.name, worker.log_path) for worker in self.workers.started)
        yield "runbeat", self.beat.log_path

    def exited(self) -> list[str]:
        gone = [w.log_path.name for w in self.workers.started if w.process.poll() is not None]
        return gone + (["runbeat"] if self.beat.process.poll() is not None else [])

    def stop(self) -> list[int]:
        everyone = [worker.process for worker in self.workers.started] + [self.beat.process]
        for process in everyone:
            process.send_signal(signal.SIGTERM)
        return [process.wait(40) for process in everyone]


def run(
    server,
    log_dir: Path,
    *,
    jobs: int = 2000,
    job_seconds: float = 0.02,
    down: float = 5.0,
    runworkers: int = 2,
    processes: int = 2,
    recovery_timeout: float = 60.0,
    crash: bool = False,
) -> OutageReport:
    """Stop and restart ``server`` (a ThrowawayPostgres) under load; report and check."""
    settings_dir = write_settings(log_dir / "settings")
    workers = Workers(
        settings_dir, server.url, log_dir, ["--processes", str(processes), "--threads", "2"]
    )
    manage(workers.env, "migrate", "-v", "0")
    manage(workers.env, "shell", "-c", SETUP.format(jobs=jobs, seconds=job_seconds))
    report = OutageReport(jobs=jobs, down_seconds=down, crash=crash)
    beat = Beat(workers.env, log_dir / "runbeat.log")
    running = Processes(workers, beat)
    try:
        for _ in range(runworkers):
            workers.start()
        wait(lambda: done(server) >= min(jobs // 10, 100), 60, "some jobs done", running)
        wait(lambda: ticks(server) >= 2, 30, "two schedule runs", running)

        # Every connection of every process breaks. "immediate" skips the
        # checkpoint: the restart recovers from the WAL on disk, without the
        # commits that had not waited for it.
        server.stop("immediate" if crash else "fast")
        time.sleep(down)
        if running.exited():
            report.problems.append(f"exited while the database was down: {running.exited()}")
        server.start()
        restarted = time.monotonic()
        done_then, ticks_then = done(server), ticks(server)

        first_job = wait(lambda: done(server) > done_then, recovery_timeout, "a job", running)
        first_tick = wait(lambda: ticks(server) > ticks_then, recovery_timeout, "a run", running)
        drained = wait(lambda: done(server) == jobs, recovery_timeout, "every job", running)
        report.worker_recovery = first_job - restarted
        report.beat_recovery = first_tick - restarted
        report.drain_after_restart = drained - restarted
        if running.exited():
            report.problems.append(f"exited after the outage: {running.exited()}")
        codes = running.stop()
        if any(codes):
            report.problems.append(f"exit codes after SIGTERM: {codes}")
    finally:
        workers.cleanup()
        beat.cleanup()
    check(server, report)
    return report


def check(server, report: OutageReport) -> None:
    """Every job ran and succeeded; every schedule run was enqueued once."""
    left = count(
        server,
        "SELECT count(*) FROM djtasks_job WHERE task_path = %s AND status <> 'SUCCESSFUL'",
        LOAD,
    )
    if left:
        report.problems.append(f"{left} job(s) not SUCCESSFUL")
    ran = count(server, "SELECT count(DISTINCT job_id) FROM tests_ledger")
    if ran != report.jobs:
        report.problems.append(f"{ran} of {report.jobs} jobs ran")
    report.runs_of_jobs = count(server, "SELECT count(*) FROM tests_ledger")
    report.schedule_runs = ticks(server)
    doubled = count(
        server,
        "SELECT count(*) FROM (SELECT scheduled_at FROM djtasks_job WHERE task_path = %s "
        "GROUP BY scheduled_at HAVING count(*) > 1) AS twice",
        TICK,
    )
    if doubled:
        report.problems.append(f"{doubled} schedule run(s) enqueued twice")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--down", type=float, default=5.0, help="seconds the database is down")
    parser.add_argument("--runworkers", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2, help="per runworker")
    parser.add_argument(
        "--crash", action="store_true", help="stop the server as a crash would (immediate mode)"
    )
    return parser


def main(argv=None) -> int:
    options = build_parser().parse_args(argv)

    from tests.reliability import pgserver

    if not pgserver.available():
        print(f"no PostgreSQL server binaries in {pgserver.PG_BIN} (set DJTASKS_PG_BIN)")
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="djtasks-outage-"))
    how = "crashed" if options.crash else "stopped"
    print(f"database outage: {options.jobs} jobs, {how}, down {options.down:g} s; logs: {log_dir}")
    with pgserver.throwaway_server() as server:
        report = run(
            server,
            log_dir,
            jobs=options.jobs,
            down=options.down,
            runworkers=options.runworkers,
            processes=options.processes,
            crash=options.crash,
        )
    print("\n".join(report.lines()))
    for problem in report.problems:
        print("PROBLEM:", problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
