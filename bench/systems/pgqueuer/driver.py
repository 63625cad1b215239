"""The PgQueuer driver for bench/common.py (runs in its own venv).

Enqueues go through PgQueuer's synchronous ``SyncQueries`` on a psycopg
connection (what a sync web app would use); counting and cleaning up go
straight to SQL. PgQueuer deletes a job's row when it finishes, so every
row of its ``pgqueuer`` table is unfinished.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from pgqueuer.db import SyncPsycopgDriver
from pgqueuer.queries import SyncQueries

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
from common import Adapter, main  # noqa: E402


class PgQueuerAdapter(Adapter):
    def __init__(self):
        self.connection = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        self.queries = SyncQueries(SyncPsycopgDriver(self.connection))

    def setup(self):
        # Several PgQueuer configurations share one database: install once.
        if self.connection.execute("SELECT to_regclass('pgqueuer')").fetchone()[0] is None:
            pgq = str(Path(sys.executable).parent / "pgq")
            subprocess.run(
                [pgq, "--pg-dsn", os.environ["DATABASE_URL"], "install"],
                check=True,
                capture_output=True,
            )

    def reset(self):
        self.connection.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")

    def enqueue_noop(self):
        self.queries.enqueue("noop", None)

    def bulk_noop(self, count):
        self.queries.enqueue(["noop"] * count, [None] * count, [0] * count)

    def bulk_sleep(self, millis):
        count = len(millis)
        self.queries.enqueue(["sleep"] * count, [str(ms).encode() for ms in millis], [0] * count)

    def enqueue_probe(self, path, index):
        self.queries.enqueue("probe", json.dumps([path, index]).encode())

    def failed(self):
        return self.connection.execute(
            "SELECT count(*) FROM pgqueuer_log WHERE status = 'exception'"
        ).fetchone()[0]

    def remaining(self):
        return self.connection.execute("SELECT count(*) FROM pgqueuer").fetchone()[0]


if __name__ == "__main__":
    main(PgQueuerAdapter())
