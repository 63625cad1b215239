#!/usr/bin/env python3
"""What claiming ahead gains: drains with DJTASKS["CLAIM_AHEAD"] on and off.

    python bench/claim_ahead.py [--jobs 20000] [--runs 3] [--sleeps 0,0.2,1]

For each kind of job (a no-op, or a task sleeping S ms: a stand-in for a
short task that waits on I/O), the runs alternate on and off. Each run is a
fresh process: it fills the database DATABASE_URL names (suffix ``_ahead``;
created and dropped here) in bulk, VACUUM ANALYZEs it, then drains it with
one in-process ``WorkerProcess(burst=True)`` of one claim thread, timed
from the start of the worker to its end, with the worker's and the
database server's CPU time. Prints the medians and the ratio on / off, and
what the sleeps alone would take (the bound). Uses the djtasks venv of
bench/run.py.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import environment as env  # noqa: E402
from environment import BENCH, log  # noqa: E402

PROJECT = BENCH / "systems" / "djtasks"

# One run, in its own process (the settings are read once per process).
CHILD = """
import json, os, resource, sys, time
import django
django.setup()
from django.core.management import call_command
from django.db import connection
import djtasks
from djtasks.worker.process import WorkerProcess
from bench_djtasks.tasks import noop, sleep

jobs, millis = int(sys.argv[1]), float(sys.argv[2])
call_command("migrate", verbosity=0)
if millis:
    djtasks.bulk_enqueue(sleep, [((millis,), {})] * jobs)
else:
    djtasks.bulk_enqueue(noop, [((), {})] * jobs)
with connection.cursor() as cursor:
    if connection.vendor == "postgresql":
        cursor.execute("VACUUM ANALYZE djtasks_job")
connection.close()
print("filled", flush=True)
sys.stdin.readline()  # the parent notes the server's CPU time first
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
WorkerProcess(burst=True).run()
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
print(json.dumps({"seconds": seconds, "worker_cpu": cpu}), flush=True)
"""


def one_run(python, url, jobs, millis, ahead):
    environ = dict(
        os.environ,
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="bench_djtasks.settings",
        PYTHONPATH=f"{BENCH}{os.pathsep}{PROJECT}",
        BENCH_CLAIM_AHEAD="1" if ahead else "0",
    )
    env.db_admin(python, "create", url)
    child = subprocess.Popen(
        [python, "-c", CHILD, str(jobs), str(millis)],
        cwd=PROJECT,
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if child.stdout.readline().strip() != "filled":
            raise RuntimeError("the run failed before its drain")
        server = server_cpu(url)
        before = server()
        child.stdin.write("go\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
        result["server_cpu"] = server() - before
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    result["rate"] = jobs / result["seconds"]
    return result


def server_cpu(url):
    if url.startswith("mysql"):
        server = env.server_pid()
        return lambda: env.process_cpu_seconds([server]) if server else 0.0
    return env.postgres_cpu_seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sleeps", default="0,0.2,1", help="ms per job; 0 is the no-op")
    options = parser.parse_args(argv)
    python = env.ensure_venv("djtasks")
    url = env.database_url(os.environ.get("DATABASE_URL") or env.DEFAULT_DATABASE_URL, "ahead")
    kinds = [float(value) for value in options.sleeps.split(",")]
    results = {(millis, ahead): [] for millis in kinds for ahead in (True, False)}
    try:
        for run in range(options.runs):
            for millis in kinds:
                for ahead in (True, False) if run % 2 == 0 else (False, True):
                    result = one_run(python, url, options.jobs, millis, ahead)
                    results[millis, ahead].append(result)
                    rate = result["rate"]
                    log(f"run {run + 1}: {millis:g} ms, ahead={ahead}: {rate:,.0f} jobs/s")
    finally:
        env.db_admin(python, "drop", url)
    print(f"\n{options.jobs:,} jobs per drain, {options.runs} runs, medians:\n")
    print(
        "| job | claim ahead | jobs/s | × off | worker CPU µs/job | server CPU µs/job "
        "| share of the drain in the sleeps |"
    )
    print("|---|---|---|---|---|---|---|")
    for millis in kinds:
        off = statistics.median(r["rate"] for r in results[millis, False])
        for ahead in (True, False):
            runs = results[millis, ahead]
            rate = statistics.median(r["rate"] for r in runs)
            worker = statistics.median(r["worker_cpu"] for r in runs) / options.jobs * 1e6
            server = statistics.median(r["server_cpu"] for r in runs) / options.jobs * 1e6
            bound = f"{rate * millis / 1000:.2f}×" if millis else "–"
            kind = f"sleeps {millis:g} ms" if millis else "no-op"
            print(
                f"| {kind} | {'on' if ahead else 'off'} | {rate:,.0f} | {rate / off:.2f}× "
                f"| {worker:.0f} | {server:.0f} | {bound} |"
            )


if __name__ == "__main__":
    started = time.monotonic()
    main()
    log(f"done in {time.monotonic() - started:.0f} s")
