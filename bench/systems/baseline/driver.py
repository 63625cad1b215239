"""The yardstick: a job queue in plain psycopg, as small as one can be.

A table, a partial index on ready rows, INSERT to enqueue (a statement-level
trigger sends one NOTIFY per INSERT or COPY), and a worker that claims with
``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)``, runs the job,
and marks it done. No framework, no retries, no results, no signals: what
the database and the driver cost, and nothing else. Every other system's
figure is given as a ratio to this one, measured in the same run.

    driver.py COMMAND ...        the bench/common.py commands
    driver.py worker BATCH [THREADS]
                                 a worker claiming BATCH jobs per statement,
                                 running them on THREADS threads (default 1)
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg.types.json import Jsonb

sys.path[:0] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")]
from common import Adapter, main, record_start  # noqa: E402

CHANNEL = "bench_jobs"
# Seconds an idle worker waits for a NOTIFY before it polls anyway.
POLL_INTERVAL = 1.0

SCHEMA = f"""
DROP TABLE IF EXISTS bench_job;
CREATE TABLE bench_job (
    id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'ready',
    args jsonb NOT NULL DEFAULT '[]',
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX bench_job_ready ON bench_job (id) WHERE status = 'ready';
CREATE INDEX bench_job_unfinished ON bench_job (status) WHERE status <> 'done';
CREATE OR REPLACE FUNCTION bench_job_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_job_inserted AFTER INSERT ON bench_job
    FOR EACH STATEMENT EXECUTE FUNCTION bench_job_notify();
"""

# The subquery locks up to BATCH ready rows, skipping rows another worker
# holds, so two workers never get the same job and never wait on each other.
CLAIM = """
UPDATE bench_job SET status = 'running', started_at = now()
WHERE id IN (
    SELECT id FROM bench_job WHERE status = 'ready'
    ORDER BY id LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, args
"""

FINISH = "UPDATE bench_job SET status = 'done', finished_at = now() WHERE id = ANY(%s)"


def connect(autocommit=True):
    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=autocommit)


class BaselineAdapter(Adapter):
    def __init__(self):
        self.connection = connect()

    def setup(self):
        self.connection.execute(SCHEMA)

    def reset(self):
        self.connection.execute("TRUNCATE bench_job")

    def enqueue_noop(self):
        self.connection.execute("INSERT INTO bench_job (args) VALUES ('[]')")

    def bulk_noop(self, count):
        with (
            self.connection.transaction(),
            self.connection.cursor() as cursor,
            cursor.copy("COPY bench_job (args) FROM STDIN") as copy,
        ):
            for _ in range(count):
                copy.write_row(("[]",))

    def fill_atomic(self, count):
        # The COPYs' own transactions become savepoints of this one.
        with self.connection.transaction():
            self.fill(count)

    def bulk_sleep(self, millis):
        with (
            self.connection.transaction(),
            self.connection.cursor() as cursor,
            cursor.copy("COPY bench_job (args) FROM STDIN") as copy,
        ):
            for ms in millis:
                copy.write_row((f'{{"sleep_ms": {ms}}}',))

    def enqueue_probe(self, path, index):
        self.connection.execute("INSERT INTO bench_job (args) VALUES (%s)", [Jsonb([path, index])])

    def remaining(self):
        return self.connection.execute(
            "SELECT count(*) FROM bench_job WHERE status <> 'done'"
        ).fetchone()[0]

    def extra(self, command, args):
        if command == "worker":
            work(int(args[0]), int(args[1]) if len(args) > 1 else 1)
        else:
            super().extra(command, args)


def run_job(args):
    if isinstance(args, dict):  # the mixed load
        time.sleep(args["sleep_ms"] / 1000)
    elif args:  # the latency probe
        started = time.time()
        record_start(args[0], args[1], started)


def work(batch, threads=1):
    """Claim ``batch`` jobs per statement, run them, mark them done; forever.

    With ``threads`` > 1 a batch's jobs run on that many threads, and the
    next claim waits for the whole batch.
    """
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    connection = connect(autocommit=False)
    listener = connect()
    listener.execute(f"LISTEN {CHANNEL}")
    while True:
        with connection.transaction():
            jobs = connection.execute(CLAIM, [batch]).fetchall()
        if not jobs:
            _wait_for_notify(listener)
            continue
        if pool is None:
            for _id, args in jobs:
                run_job(args)
        else:
            list(pool.map(run_job, [args for _id, args in jobs]))
        with connection.transaction():
            connection.execute(FINISH, [[job_id for job_id, _ in jobs]])


def _wait_for_notify(listener):
    # Sleep until PostgreSQL sends a notification or the poll interval ends.
    for _ in listener.notifies(timeout=POLL_INTERVAL, stop_after=1):
        pass


if __name__ == "__main__":
    main(BaselineAdapter())
