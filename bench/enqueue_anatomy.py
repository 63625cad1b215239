"""Where the time of a one-by-one enqueue goes, measured in one process.

    DATABASE_URL=postgres://.../djtasks_anatomy python bench/enqueue_anatomy.py

Runs in the djtasks benchmark project (bench/systems/djtasks) against the
PostgreSQL of DATABASE_URL (the database is migrated, and its jobs deleted).
Six ways to add one job row, each in its own transaction (autocommit),
interleaved round by round so the machine's swings reach them alike:

- the baseline's INSERT: a 3-column row, two indexes, the same kind of
  NOTIFY trigger (what bench/systems/baseline enqueues);
- djtasks' own INSERT statement and values sent by bare psycopg, no Django
  and no djtasks around it, first as PostgreSQL parses and plans it anew,
  then prepared, then without waiting for the commit's flush to disk
  (``synchronous_commit = off``, which djtasks never sets for an
  enqueue: a crash of the server could lose a job its caller was told
  about; here it measures what the flush costs);
- ``noop.enqueue()``, with Django's default (no prepared statements) and
  with ``OPTIONS["prepare_threshold"] = 5``.

The gap between the bare INSERT and ``enqueue()`` is what djtasks and Django
add; the gap between the baseline and the bare INSERT is what the job row
costs PostgreSQL (its columns, five index entries, the NOTIFY trigger).
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

SYSTEM = Path(__file__).resolve().parent / "systems" / "djtasks"
sys.path[:0] = [str(SYSTEM.parent.parent), str(SYSTEM)]
# Always the benchmark project's settings, whatever the caller's environment
# names (pytest-django sets its own).
os.environ["DJANGO_SETTINGS_MODULE"] = "bench_djtasks.settings"

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from bench_djtasks.tasks import noop  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from djtasks.enqueue import insert  # noqa: E402
from djtasks.enqueue.rows import job_row  # noqa: E402
from djtasks.models import Job  # noqa: E402

BASELINE_TABLE = """
CREATE TABLE IF NOT EXISTS anatomy_job (
    id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'ready',
    args jsonb NOT NULL DEFAULT '[]',
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS anatomy_job_ready ON anatomy_job (id) WHERE status = 'ready';
CREATE OR REPLACE FUNCTION anatomy_job_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('anatomy', '');
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS anatomy_job_inserted ON anatomy_job;
CREATE TRIGGER anatomy_job_inserted AFTER INSERT ON anatomy_job
    FOR EACH STATEMENT EXECUTE FUNCTION anatomy_job_notify();
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1000, help="inserts per way and round")
    options = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("DATABASE_URL must name a PostgreSQL database")
    call_command("migrate", verbosity=0)
    bare = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    bare.execute(BASELINE_TABLE)
    unflushed = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    unflushed.execute("SET synchronous_commit = off")
    ways = {
        "baseline INSERT (bare psycopg)": baseline(bare),
        "djtasks INSERT, bare psycopg": djtasks_insert(bare, prepare=False),
        "djtasks INSERT, bare psycopg, prepared": djtasks_insert(bare, prepare=True),
        "djtasks INSERT, bare psycopg, no flush": djtasks_insert(unflushed, prepare=False),
        "noop.enqueue()": enqueue(prepare_threshold=None),
        "noop.enqueue(), prepare_threshold=5": enqueue(prepare_threshold=5),
    }
    rates = {name: [] for name in ways}
    for _ in range(options.rounds):
        for name, call in ways.items():
            started = time.perf_counter()
            for _ in range(options.calls):
                call()
            rates[name].append(options.calls / (time.perf_counter() - started))
    Job.objects.all().delete()
    bare.execute("DROP TABLE anatomy_job")
    unflushed.close()
    report(rates, options)


def baseline(bare):
    def call():
        # Unprepared, like djtasks' INSERT in the row it is compared with
        # (psycopg would prepare it after five runs).
        bare.execute("INSERT INTO anatomy_job (args) VALUES ('[]')", prepare=False)

    return call


def djtasks_insert(bare, prepare):
    """djtasks' statement and values for a no-op job, sent by bare psycopg."""
    row = job_row(noop.get_backend(), noop, (), {}, timezone.now())
    sql, names = insert._single_insert(
        tuple(name for name, value in row.items() if value is not None),
        tuple(name for name, value in row.items() if value is None),
    )
    params = [insert._postgresql_value(name, row[name]) for name in names]
    cursor = bare.cursor()

    def call():
        params[0] = uuid.uuid4()  # the id; the rest as one enqueue sends it
        cursor.execute(sql, params, prepare=prepare)

    return call


def enqueue(prepare_threshold):
    def call():
        raw = connection.connection
        if raw is None or raw.prepare_threshold != prepare_threshold:
            connection.ensure_connection()
            connection.connection.prepare_threshold = prepare_threshold
        noop.enqueue()

    return call


def report(rates, options):
    medians = {name: statistics.median(values) for name, values in rates.items()}
    reference = medians["djtasks INSERT, bare psycopg"]
    print(
        f"{options.rounds} rounds of {options.calls:,} inserts per way, interleaved; "
        f"median (min-max) rows/s, and against djtasks' INSERT sent by bare psycopg:"
    )
    for name, values in rates.items():
        print(
            f"  {name:40s} {medians[name]:7,.0f}/s "
            f"({min(values):,.0f}-{max(values):,.0f})  {medians[name] / reference:.2f}x"
        )


if __name__ == "__main__":
    main()
