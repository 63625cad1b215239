"""The yardstick on MariaDB: the plain-SQL queue of ../baseline, in MySQLdb.

The same job table as far as MariaDB allows: it has no partial index, so
the index of ready rows is a full one led by ``status`` (the claim reads
the ``status = 'ready'`` range of it in id order and stops); no
``UPDATE ... RETURNING``, so a claim is ``SELECT ... FOR UPDATE SKIP
LOCKED`` and an ``UPDATE`` by key in one transaction; no LISTEN/NOTIFY, so
an idle worker polls every POLL_INTERVAL seconds. READ COMMITTED, as
djtasks runs there (no gap locks on the scanned range). MySQLdb
(mysqlclient) is the driver djtasks uses through Django on MariaDB.

    driver.py COMMAND ...        the bench/common.py commands
    driver.py worker BATCH       a worker claiming BATCH jobs per statement

BENCH_POLL_INTERVAL: the idle worker's poll interval (default 1.0 s, the
default of djtasks' POLL_INTERVAL). BENCH_COUNT_DIR: count the statements
(bench/mysql_count.py).
"""

import json
import os
import sys
import time
from urllib.parse import unquote, urlsplit

import MySQLdb

sys.path[:0] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")]
import mysql_count  # noqa: E402
from common import Adapter, main, record_start  # noqa: E402

POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL") or 1.0)

SCHEMA = [
    "DROP TABLE IF EXISTS bench_job",
    """
    CREATE TABLE bench_job (
        id bigint AUTO_INCREMENT PRIMARY KEY,
        status varchar(16) NOT NULL DEFAULT 'ready',
        args json NOT NULL DEFAULT '[]',
        enqueued_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        started_at datetime(6) NULL,
        finished_at datetime(6) NULL,
        -- The ready rows are one range of it, in id order; the unfinished
        -- count reads two ranges of it.
        INDEX bench_job_status (status, id)
    ) ENGINE=InnoDB
    """,
]

CLAIM = """
SELECT id, args FROM bench_job WHERE status = 'ready'
ORDER BY id LIMIT %s
FOR UPDATE SKIP LOCKED
"""


def connect():
    """A connection to DATABASE_URL (mysql://user:password@host:port/name), autocommit."""
    url = urlsplit(os.environ["DATABASE_URL"])
    connection = MySQLdb.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/"),
        charset="utf8mb4",
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    )
    connection.autocommit(True)
    return connection


def _marks(count):
    return ", ".join(["%s"] * count)


class BaselineAdapter(Adapter):
    def __init__(self):
        self.connection = connect()
        self.cursor = self.connection.cursor()

    def setup(self):
        for statement in SCHEMA:
            self.cursor.execute(statement)

    def reset(self):
        self.cursor.execute("TRUNCATE bench_job")

    def enqueue_noop(self):
        self.cursor.execute("INSERT INTO bench_job (args) VALUES ('[]')")

    def bulk_noop(self, count):
        # MySQLdb sends an executemany of an INSERT as multi-row INSERTs:
        # MariaDB's nearest to COPY. One transaction, as COPY is.
        self.cursor.execute("START TRANSACTION")
        self.cursor.executemany("INSERT INTO bench_job (args) VALUES (%s)", [("[]",)] * count)
        self.cursor.execute("COMMIT")

    def enqueue_probe(self, path, index):
        self.cursor.execute("INSERT INTO bench_job (args) VALUES (%s)", [json.dumps([path, index])])

    def remaining(self):
        self.cursor.execute("SELECT count(*) FROM bench_job WHERE status <> 'done'")
        return self.cursor.fetchone()[0]

    def extra(self, command, args):
        if command == "worker":
            work(int(args[0]))
        else:
            super().extra(command, args)


def run_job(args):
    args = json.loads(args)
    if args:  # the latency probe
        started = time.time()
        record_start(args[0], args[1], started)


def claim(cursor, batch):
    """Lock up to ``batch`` ready rows, mark them running; one transaction.

    START TRANSACTION and COMMIT as statements: two round trips, where
    switching autocommit off and on again around a commit would be three.
    """
    cursor.execute("START TRANSACTION")
    cursor.execute(CLAIM, [batch])
    jobs = cursor.fetchall()
    if jobs:
        cursor.execute(
            "UPDATE bench_job SET status = 'running', started_at = NOW(6) "
            f"WHERE id IN ({_marks(len(jobs))})",
            [job_id for job_id, _ in jobs],
        )
    cursor.execute("COMMIT")
    return jobs


def work(batch):
    """Claim ``batch`` jobs per statement, run them, mark them done; forever."""
    connection = connect()
    cursor = connection.cursor()
    while True:
        jobs = claim(cursor, batch)
        if not jobs:
            time.sleep(POLL_INTERVAL)
            continue
        for _id, args in jobs:
            run_job(args)
        # Autocommit: one statement, its own transaction.
        cursor.execute(
            "UPDATE bench_job SET status = 'done', finished_at = NOW(6) "
            f"WHERE id IN ({_marks(len(jobs))})",
            [job_id for job_id, _ in jobs],
        )


if __name__ == "__main__":
    mysql_count.install()
    main(BaselineAdapter())
