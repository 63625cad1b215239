"""The procrastinate driver for bench/common.py (runs in its own venv)."""

import atexit
import os
import sys

import psycopg

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
from bench_procrastinate import app, noop, probe, sleep  # noqa: E402
from common import Adapter, main  # noqa: E402


class ProcrastinateAdapter(Adapter):
    def __init__(self):
        app.open()  # the sync connector that defer() uses
        atexit.register(app.close)
        # Counting and cleaning up go around procrastinate, straight to SQL.
        self.connection = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)

    def setup(self):
        app.schema_manager.apply_schema()

    def reset(self):
        self.connection.execute("TRUNCATE procrastinate_jobs CASCADE")

    def enqueue_noop(self):
        noop.defer()

    def bulk_noop(self, count):
        noop.batch_defer(*([{}] * count))

    def bulk_sleep(self, millis):
        sleep.batch_defer(*({"millis": ms} for ms in millis))

    def enqueue_probe(self, path, index):
        probe.defer(path=path, index=index)

    def failed(self):
        return self.connection.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'"
        ).fetchone()[0]

    def remaining(self):
        return self.connection.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        ).fetchone()[0]


if __name__ == "__main__":
    main(ProcrastinateAdapter())
