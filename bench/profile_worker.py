#!/usr/bin/env python3
"""Where a djtasks worker spends its time on a drain of no-op jobs.

    python bench/profile_worker.py [--jobs 10000] [--quiet-log]

Starts ``manage.py runworker --processes 1`` (idle), attaches py-spy to the
worker process, enqueues the jobs in bulk, waits for the drain, and prints:
the CPU time per job of the worker and of the database server, and the
share of the worker's samples in each part of the job's path (claim, run,
record, ...). The raw py-spy stacks are kept in bench/.work/profile.raw.

Uses the djtasks venv of bench/run.py and the database DATABASE_URL names
with the suffix ``_profile`` (created and dropped here). DATABASE_URL may
be a mysql:// one: on MariaDB the server's CPU is that of the threads
serving the worker's connections, so others' load on a shared server is
left out. The worker writes down the server thread of every connection it
opens (bench/mysql_count.py), claim-ahead helpers' included, which connect
only once it is busy; each thread's time is taken before the fill and
after the drain, as bench/run.py's anatomy does.
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import environment as env  # noqa: E402
import mysql_count  # noqa: E402
from environment import BENCH, WORK, log  # noqa: E402

PROJECT = BENCH / "systems" / "djtasks"

# Parts of a job's path, matched against the frames of a sample from the
# outermost in: the first part whose marker appears in the stack wins, so
# list inner parts before the parts that contain them.
PARTS = [
    ("django.tasks log records (start/finish)", ("log_task_started", "log_task_finished")),
    ("djtasks job log line", ("executor.py:_log", "_log (djtasks/executor.py")),
    ("signals: other receivers / dispatch", ("Signal.send",)),
    ("TaskResult building (to_task_result)", ("to_task_result",)),
    ("return value JSON check", ("_json_value",)),
    ("the task itself (no-op)", ("noop (bench_djtasks",)),
    ("rest of Executor.run", ("Executor.run",)),
    ("claim (SQL + row conversion)", ("claim (djtasks/worker/claim.py",)),
    ("record (completion SQL)", ("record (djtasks/worker/outcomes.py",)),
    ("rest of the claim loop", ("WorkerProcess._work", "ClaimThread.run")),
    ("main thread chores (heartbeat, watchdog)", ("WorkerProcess._watch", "WorkerProcess.run")),
    ("listener thread (NOTIFY)", ("Listener",)),
]


def cpu_seconds(pids):
    return env.process_cpu_seconds(pids)


def server_cpu(url, count_dir):
    """A function returning the server's CPU seconds for this profile so far."""
    if not url.startswith("mysql"):
        # Every PostgreSQL process, those that ended included: the helpers'
        # backends end when the worker idles.
        return env.postgres_cpu_seconds
    server = env.server_pid()
    if not server:
        return lambda: 0.0
    before = env.thread_schedule_by_thread(server)

    def seconds():
        # Each thread that served the worker, from its time before the fill
        # (0 for a thread started since; one ended since is not counted).
        now = env.thread_schedule_by_thread(server)
        return sum(
            now[tid][0] - before.get(tid, (0.0, 0.0))[0]
            for tid in mysql_count.read_tids(count_dir)
            if tid in now
        )

    return seconds


def children(pid):
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in path.read_text().split()]
    return found


def classify(raw_path):
    """Samples per part, and the hottest leaf frames, from py-spy's raw output."""
    parts = collections.Counter()
    leaves = collections.Counter()
    total = 0
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        total += count
        frames = stack.split(";")
        for name, markers in PARTS:
            if any(marker in stack for marker in markers):
                parts[name] += count
                break
        else:
            parts["other: " + frames[-1][:70]] += count
        leaves[frames[-1]] += count
    return total, parts, leaves


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--quiet-log", action="store_true", help="django.tasks logger at WARNING")
    options = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    python = env.ensure_venv("djtasks")
    spy = str(Path(python).parent / "py-spy")
    url = env.database_url(os.environ.get("DATABASE_URL") or env.DEFAULT_DATABASE_URL, "profile")
    environ = dict(os.environ, DATABASE_URL=url, PYTHONPATH=f"{BENCH}{os.pathsep}{PROJECT}")
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    if options.quiet_log:
        environ["BENCH_QUIET_TASK_LOG"] = "1"
    count_dir = WORK / "profile-counts"
    shutil.rmtree(count_dir, ignore_errors=True)
    count_dir.mkdir(parents=True)
    if url.startswith("mysql"):
        environ["BENCH_COUNT_DIR"] = str(count_dir)

    def driver(*args):
        return subprocess.run(
            [python, "driver.py", *map(str, args)],
            cwd=PROJECT,
            env=environ,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    env.db_admin(python, "create", url)
    raw = WORK / "profile.raw"
    supervisor = spy_process = None
    try:
        driver("setup")
        supervisor = subprocess.Popen(
            [python, "manage.py", "runworker", "--processes", "1"],
            cwd=PROJECT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not children(supervisor.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = children(supervisor.pid)[0]
        time.sleep(1.5)  # let it connect and go idle
        spy_process = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(worker),
                "--format",
                "raw",
                "--rate",
                str(options.rate),
                "--threads",
                "--nonblocking",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        log(f"worker pid {worker}; enqueueing {options.jobs:,} jobs")
        server = server_cpu(url, count_dir)
        worker_cpu, server_cpu_before = cpu_seconds([worker]), server()
        started = time.time()
        driver("fill", options.jobs)
        driver("wait-empty", 600)
        seconds = time.time() - started
        worker_cpu = cpu_seconds([worker]) - worker_cpu
        if url.startswith("mysql"):
            # The worker writes its connections' server threads every WRITE_INTERVAL.
            time.sleep(3 * mysql_count.WRITE_INTERVAL)
        db_cpu = server() - server_cpu_before
    finally:
        if spy_process is not None:
            spy_process.send_signal(signal.SIGINT)
            spy_process.wait(timeout=30)
        if supervisor is not None:
            os.killpg(supervisor.pid, signal.SIGTERM)
            supervisor.wait(timeout=30)
        env.db_admin(python, "drop", url)
    jobs = options.jobs
    print(f"{jobs:,} jobs enqueued and drained in {seconds:.2f} s (fill included)")
    print(f"worker process CPU: {worker_cpu:.2f} s = {worker_cpu / jobs * 1e6:.0f} µs/job")
    what = (
        "MariaDB CPU (the threads of the worker's connections)"
        if url.startswith("mysql")
        else "PostgreSQL CPU (all backends, incl. the enqueue and polling)"
    )
    print(f"{what}: {db_cpu:.2f} s = {db_cpu / jobs * 1e6:.0f} µs/job")
    total, parts, leaves = classify(raw)
    print(f"\npy-spy samples of the worker (non-idle, all threads): {total}")
    for name, count in parts.most_common(20):
        print(f"{100 * count / total:5.1f}%  {name}")
    print("\nhottest leaf frames:")
    for name, count in leaves.most_common(15):
        print(f"{100 * count / total:5.1f}%  {name[:110]}")


if __name__ == "__main__":
    main()
