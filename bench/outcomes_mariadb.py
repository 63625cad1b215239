#!/usr/bin/env python3
"""What writing a batch's outcomes costs djtasks on MariaDB, two ways.

    python bench/outcomes_mariadb.py [--rounds 5] [--batches 30]

djtasks' ``record()`` writes a batch's outcomes on MariaDB as one ``UPDATE``
joined to ``JSON_TABLE`` over a JSON array of them (``MYSQL_BATCH``). Before,
it sent ``executemany()`` of the one-row statement (``MYSQL``), which MySQLdb
sends once per outcome (it folds only ``INSERT ... VALUES`` into one
statement). This claims batches of 100 no-op jobs with djtasks' own
``claim()`` and writes their outcomes either way, with the same columns and
guards, alternating the two ways round by round on the same table. Timed:
the writes alone (with their commits), per job, and the CPU
the server thread of the connection spent on them (``/proc``).

Uses the djtasks venv of bench/run.py and the MariaDB server of
--mariadb-url, in a database of its own (``<name>_outcomes``, created and
dropped here).
"""

import argparse
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
BATCH = 100


def inner(rounds, batches):
    """In the djtasks venv: the measurement itself."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_djtasks.settings")
    django.setup()
    from bench_djtasks.tasks import noop
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    import djtasks
    from djtasks.models import Job
    from djtasks.worker import outcomes as completion
    from djtasks.worker.claim import claim
    from djtasks.worker.outcomes import Outcome, record

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        tid = cursor.fetchone()[0]
    server = env.server_pid()

    def one_per_outcome(worker_id, outcomes):
        # How record() wrote a batch before MYSQL_BATCH: executemany() of the
        # one-row statement, which MySQLdb sends once per outcome.
        with transaction.atomic(), connection.cursor() as cursor:
            params = completion._sqlite_params(connection, outcomes, worker_id)
            cursor.executemany(completion.MYSQL, params)

    ways = {
        "one UPDATE per outcome (record() before)": one_per_outcome,
        "record(): one UPDATE ... JOIN JSON_TABLE per batch": lambda worker_id, outcomes: record(
            "default", worker_id, outcomes
        ),
    }
    figures = {name: {"us": [], "cpu": []} for name in ways}
    for round_ in range(rounds):
        for name, write in ways.items():
            Job.objects.all().delete()
            djtasks.bulk_enqueue(noop, [((), {})] * (batches * BATCH))
            worker_id = f"outcomes-{round_}"
            seconds = cpu = 0
            for _ in range(batches):
                jobs = claim("default", worker_id, ["default"], BATCH, timezone.now())
                outcomes = [
                    Outcome(job.id, "SUCCESSFUL", timezone.now(), None, attempt=job.attempts)
                    for job in jobs
                ]
                cpu_before, started = env.thread_cpu_seconds(server, [tid]), time.perf_counter()
                write(worker_id, outcomes)
                seconds += time.perf_counter() - started
                cpu += env.thread_cpu_seconds(server, [tid]) - cpu_before
            done = Job.objects.filter(status="SUCCESSFUL").count()
            if done != batches * BATCH:
                raise SystemExit(f"{name}: {done} of {batches * BATCH} jobs written")
            jobs_written = batches * BATCH
            figures[name]["us"].append(seconds / jobs_written * 1e6)
            figures[name]["cpu"].append(cpu / jobs_written * 1e6)
            log(
                f"round {round_ + 1}, {name}: {figures[name]['us'][-1]:.0f} µs/job, "
                f"server CPU {figures[name]['cpu'][-1]:.0f} µs/job"
            )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + completion.MYSQL_BATCH, ["[]", None, "x"])
        plan = [row[2:6] + row[9:] for row in cursor.fetchall()]
    print(f"{rounds} rounds of {batches} batches of {BATCH} no-op jobs; medians (min–max):")
    for name, found in figures.items():
        us, cpu = found["us"], found["cpu"]
        print(
            f"  {name}: {statistics.median(us):.0f} µs/job ({min(us):.0f}–{max(us):.0f}), "
            f"server CPU {statistics.median(cpu):.0f} µs/job ({min(cpu):.0f}–{max(cpu):.0f})"
        )
    print(f"plan of the one-statement UPDATE: {plan}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="batches of 100 per round")
    parser.add_argument("--mariadb-url", default=env.DEFAULT_MARIADB_URL)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.inner:
        return inner(options.rounds, options.batches)
    python = env.ensure_venv("djtasks")
    why = env.ensure_mysql_driver(python)
    if why:
        raise SystemExit(why)
    url = env.database_url(options.mariadb_url, "outcomes")
    environ = dict(os.environ, DATABASE_URL=url)
    environ["PYTHONPATH"] = os.pathsep.join([str(BENCH), str(PROJECT)])
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    env.mysql_admin(python, "create", url)
    try:
        subprocess.run(
            [python, __file__, "--inner", "--rounds", str(options.rounds)]
            + ["--batches", str(options.batches)],
            cwd=PROJECT,
            env=environ,
            check=True,
        )
    finally:
        env.mysql_admin(python, "drop", url)


if __name__ == "__main__":
    main()
