"""Chaos: SIGKILL worker processes at random under load, then prove no job was lost.

    python -m tests.reliability.chaos                      # 1,000 jobs, 100 kills, SQLite
    python -m tests.reliability.chaos --database-url postgres://postgres@127.0.0.1/djtasks_chaos

The database must be a scratch one: its jobs, workers and ledger rows are
deleted first. Each job (tests.tasks.chaos_step) appends a Ledger row with
its process id per execution. While the jobs run, the run kills a worker
process (a child of a runworker supervisor, which starts a new one) or now
and then a whole runworker (its jobs wait for the stale-heartbeat rescue;
a new runworker is started), at a steady pace. Then it lets the system
settle and checks:

* every job SUCCESSFUL though each has max_attempts 1 (a standard task:
  lost attempts use up none of it; jobs are added if the work would run
  out before the kills, so the count may exceed --jobs): 0 lost (gone),
  0 failed, 0 stuck (left READY or RUNNING);
* every execution but a job's last ran in a process that was killed:
  re-executions come only from kills (at least once, never "just because");
* every lost attempt is recorded as a WorkerLost error and in
  ``lost_attempts`` (max_attempts grew by as many), and the last attempt is
  the one that returned.
"""

import argparse
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability import procs
from tests.reliability.runtime import STALE_AFTER, Workers

# A worker process younger than this is not killed: the supervisor spaces
# out restarts of a process that dies right after its start (a crash loop).
MIN_VICTIM_AGE = 2.2
WORKER_LOST = "djtasks.exceptions.WorkerLost"


class ChaosError(AssertionError):
    """A job was lost, stuck, or ran more often than the kills explain."""


@dataclass
class ChaosReport:
    jobs: int = 0
    kills: int = 0
    whole_runworker_kills: int = 0
    processes_killed: int = 0
    reexecutions: int = 0
    jobs_reexecuted: int = 0
    lost_attempts: int = 0
    max_attempts_of_a_job: int = 0
    # Jobs gone from the table, ended FAILED (or another unsuccessful
    # status), or left READY or RUNNING: all three must be 0.
    gone: int = 0
    failed: int = 0
    stuck: int = 0
    seconds: float = 0.0
    settle_seconds: float = 0.0
    problems: list = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"jobs                      {self.jobs}",
            f"kills (SIGKILL)           {self.kills} "
            f"({self.whole_runworker_kills} of a whole runworker)",
            f"processes killed          {self.processes_killed}",
            f"re-executions             {self.reexecutions} (of {self.jobs_reexecuted} jobs)",
            f"attempts lost to kills    {self.lost_attempts}",
            f"most attempts of one job  {self.max_attempts_of_a_job}",
            f"lost / failed / stuck     {self.gone} / {self.failed} / {self.stuck}",
            f"run / settle              {self.seconds:.1f} s / {self.settle_seconds:.1f} s",
            f"problems                  {len(self.problems)}",
        ]


class Killer:
    """Picks and kills worker processes; remembers every pid it killed."""

    def __init__(self, workers: Workers, rng: random.Random, whole_ratio: float):
        self.workers = workers
        self.rng = rng
        self.whole_ratio = whole_ratio
        self.first_seen: dict[int, float] = {}
        self.killed_pids: set[int] = set()
        self.kills = 0
        self.whole = 0
        self.restart_at: list[float] = []

    def victims(self) -> list[int]:
        """Worker processes old enough to be killed."""
        now = time.monotonic()
        found = []
        for worker in self.workers.alive():
            for pid in procs.children(worker.pid):
                seen = self.first_seen.setdefault(pid, now)
                if now - seen >= MIN_VICTIM_AGE:
                    found.append(pid)
        return found

    def kill_one(self, whole: bool = False) -> bool:
        """Kill a worker process, or now and then (or if ``whole``) a whole runworker."""
        alive = self.workers.alive()
        if len(alive) > 1 and (whole or self.rng.random() < self.whole_ratio):
            return self._kill_runworker(self.rng.choice(alive))
        victims = self.victims()
        if not victims:
            return False
        pid = self.rng.choice(victims)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            self.killed_pids.add(pid)
            self.kills += 1
            return True
        return False

    def _kill_runworker(self, worker) -> bool:
        # Supervisor and children at once: nobody releases their jobs; the
        # other runworkers' rescue passes do, once the heartbeat is stale.
        members = procs.group_members(worker.pid)
        worker.kill_group()
        self.killed_pids.update(members)
        self.kills += 1
        self.whole += 1
        self.restart_at.append(time.monotonic() + self.rng.uniform(0.2, 1.0))
        return True

    def restart_due(self, everything: bool = False) -> None:
        now = time.monotonic()
        for at in list(self.restart_at):
            if everything or at <= now:
                self.restart_at.remove(at)
                self.workers.start()


def enqueue(jobs: int, seconds: float) -> list:
    from djtasks import bulk_enqueue
    from tests import tasks

    results = bulk_enqueue(tasks.chaos_step, [((), {"seconds": seconds})] * jobs)
    return [result.id for result in results]


def unfinished() -> int:
    from djtasks.models import Job

    return Job.objects.filter(status__in=["READY", "RUNNING"]).count()


def executions_started() -> bool:
    from tests.models import Ledger

    return Ledger.objects.exists()


def wait_until(predicate, timeout: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            logs = "".join(
                f"\n--- {worker.log_path.name} (tail) ---\n{worker.log()[-3000:]}"
                for worker in workers.started
            )
            raise ChaosError(f"timed out after {timeout:g}s waiting for {what}{logs}")
        time.sleep(0.1)


def run(
    *,
    url: str,
    settings_dir: Path,
    log_dir: Path,
    jobs: int = 1000,
    kills: int = 100,
    runworkers: int = 3,
    processes: int = 2,
    interval: float = 0.25,
    whole_ratio: float = 0.1,
    seed: int | None = None,
    settle_timeout: float = 120.0,
) -> ChaosReport:
    """Run the chaos and check the outcome; the report lists any problem found."""
    rng = random.Random(seed)
    # About enough work to outlast the kills (topped up below if not).
    busy_seconds = kills * interval * 2
    job_seconds = round(busy_seconds * runworkers * processes / jobs, 3)
    job_ids = enqueue(jobs, job_seconds)
    workers = Workers(settings_dir, url, log_dir, ["--processes", str(processes)])
    killer = Killer(workers, rng, whole_ratio)
    started = time.monotonic()
    try:
        for _ in range(runworkers):
            workers.start()
        wait_until(executions_started, 60, "the first job to start", workers)
        give_up = time.monotonic() + 60 + 10 * kills * interval
        while killer.kills < kills:
            if time.monotonic() > give_up:
                raise ChaosError(f"only {killer.kills} of {kills} kills: no worker to kill")
            time.sleep(interval)
            if unfinished() < 2 * runworkers * processes:
                # The work ran out before the kills: more, so that every
                # kill lands under load.
                job_ids += enqueue(max(1, jobs // 10), job_seconds)
            killer.restart_due()
            # At least one whole runworker dies: the stale-heartbeat rescue.
            killer.kill_one(whole=killer.kills == kills // 2 and not killer.whole)
        killer.restart_due(everything=True)
        settling = time.monotonic()
        # A whole runworker killed last needs STALE_AFTER and a rescue pass.
        wait_until(lambda: unfinished() == 0, settle_timeout, "every job to finish", workers)
        settle_seconds = time.monotonic() - settling
        survivors = workers.alive()
        # A runworker restarted near the end may still be importing Django
        # when the last job finishes; a SIGTERM then meets Python's default
        # handler (exit -15). Its supervisor handles signals from before it
        # starts its first child, so wait for the children.
        wait_until(
            lambda: all(procs.children(worker.process.pid) for worker in survivors),
            60,
            "every runworker to start its processes",
            workers,
        )
        for worker in survivors:
            worker.signal(signal.SIGTERM)
        exit_codes = [worker.wait(30) for worker in survivors]
    finally:
        workers.cleanup()
    report = check(job_ids, killer.killed_pids)
    if any(exit_codes):
        report.problems.append(f"runworker exit codes after SIGTERM: {exit_codes}")
    report.kills, report.whole_runworker_kills = killer.kills, killer.whole
    report.processes_killed = len(killer.killed_pids)
    report.seconds, report.settle_seconds = time.monotonic() - started, settle_seconds
    return report


def check(job_ids, killed_pids) -> ChaosReport:
    """Compare every job with its ledger rows and the processes that were killed."""
    from djtasks.models import Job
    from tests.models import Ledger

    report = ChaosReport(jobs=len(job_ids))
    rows = defaultdict(list)
    for row in Ledger.objects.filter(tag="chaos").order_by("id"):
        rows[row.job_id].append(row)
    found = {str(job.id): job for job in Job.objects.filter(id__in=job_ids)}
    for job_id in map(str, job_ids):
        job = found.get(job_id)
        if job is None:
            report.gone += 1
            report.problems.append(f"job {job_id} is gone")
            continue
        report.stuck += job.status in ("READY", "RUNNING")
        report.failed += job.status not in ("READY", "RUNNING", "SUCCESSFUL")
        report.problems += problems_of(job, rows[job_id], killed_pids)
        executions = len(rows[job_id])
        report.reexecutions += max(0, executions - 1)
        report.jobs_reexecuted += executions > 1
        report.lost_attempts += job.attempts - 1
        report.max_attempts_of_a_job = max(report.max_attempts_of_a_job, job.attempts)
    return report


def problems_of(job, executions, killed_pids) -> list[str]:
    """What is wrong with one job after the run (empty: nothing)."""
    problems = []
    if job.status != "SUCCESSFUL":
        problems.append(f"job {job.id} ended {job.status}: {job.errors[-1:]}")
        return problems
    if not executions:
        return [f"job {job.id} is SUCCESSFUL but never ran"]
    if executions[-1].attempt != job.attempts or job.return_value != job.attempts:
        problems.append(
            f"job {job.id}: last execution was attempt {executions[-1].attempt}, "
            f"the row says {job.attempts} (returned {job.return_value})"
        )
    unexplained = [row.pid for row in executions[:-1] if row.pid not in killed_pids]
    if unexplained:
        problems.append(f"job {job.id} ran again though process(es) {unexplained} were not killed")
    lost = [error for error in job.errors if error["exception_class_path"] == WORKER_LOST]
    if len(lost) != len(job.errors) or len(job.errors) != job.attempts - 1:
        problems.append(
            f"job {job.id}: {job.attempts} attempts but errors {job.errors!r} "
            "(every lost attempt should be one WorkerLost entry)"
        )
    if job.lost_attempts != len(lost) or job.max_attempts != 1 + len(lost):
        problems.append(
            f"job {job.id}: {len(lost)} WorkerLost entries but lost_attempts "
            f"{job.lost_attempts} and max_attempts {job.max_attempts} (should be 1 + lost)"
        )
    # More executions than attempts is fine when the extra ones ran in killed
    # processes (checked above): a job that finished in a process killed
    # before its outcome was written is handed back uncounted and runs again.
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--runworkers", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="per runworker")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", help="a scratch database (default: var/chaos.sqlite3)")
    return parser


def main(argv=None) -> int:
    options = build_parser().parse_args(argv)

    from tests.reliability.runtime import default_url, empty_tables, setup_django

    url = options.database_url or default_url("chaos")
    settings_dir = setup_django(url)
    empty_tables()
    log_dir = Path(tempfile.mkdtemp(prefix="djtasks-chaos-logs-"))
    seed = options.seed if options.seed is not None else random.randrange(1_000_000)
    print(f"chaos: {options.jobs} jobs, {options.kills} kills, seed {seed}, logs in {log_dir}")
    report = run(
        url=url,
        settings_dir=settings_dir,
        log_dir=log_dir,
        jobs=options.jobs,
        kills=options.kills,
        runworkers=options.runworkers,
        processes=options.processes,
        interval=options.interval,
        seed=seed,
        settle_timeout=60 + 10 * STALE_AFTER,
    )
    print("\n".join(report.lines()))
    for problem in report.problems[:50]:
        print("PROBLEM:", problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
