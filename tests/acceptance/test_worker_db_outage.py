"""The database goes away mid-load and comes back: the worker carries on.

Uses a throwaway PostgreSQL server that this test starts itself (initdb and
pg_ctl on a free port, in a temporary directory), never the shared one.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, RunningWorker, wait_for, worker_environment

PG_BIN = Path(os.environ.get("DJTASKS_PG_BIN", "/usr/lib/postgresql/15/bin"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PG_BIN / "initdb").exists(),
        reason=f"needs PostgreSQL server binaries in {PG_BIN} (set DJTASKS_PG_BIN)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory, run as a non-root user."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="djtasks-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command):
        # initdb refuses to run as root: use the postgres account then.
        if os.geteuid() == 0:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self):
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N"
        )

    def start(self):
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode="fast"):
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def query(self, sql, params=()):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()

    def destroy(self):
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def throwaway_postgres():
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


def manage(env, *args):
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


ENQUEUE = """
from tests import tasks
tasks.ledger_retried.get_backend().bulk_enqueue(
    [(tasks.ledger_retried, (f"load-{i}",), {"seconds": 0.02}) for i in range(300)]
)
"""


def test_worker_survives_a_database_restart(throwaway_postgres, fast_settings_dir, tmp_path):
    server = throwaway_postgres
    env = worker_environment(fast_settings_dir, server.url)
    manage(env, "migrate", "-v", "0")
    manage(env, "shell", "-c", ENQUEUE)
    worker = RunningWorker(["--processes", "1", "--threads", "2"], env, tmp_path / "runworker.log")
    try:
        done = "SELECT count(*) FROM djtasks_job WHERE status = 'SUCCESSFUL'"
        wait_for(lambda: server.query(done)[0][0] >= 30, 30, "some jobs done", worker)

        server.stop("fast")  # every connection of the worker breaks
        worker.wait_for_log("database error", timeout=20)
        assert worker.process.poll() is None, "the worker exited with the database gone"
        server.start()

        wait_for(lambda: server.query(done)[0][0] == 300, 60, "all jobs done", worker)
        worker.wait_for_log("database reachable again")
        left = server.query("SELECT count(*) FROM djtasks_job WHERE status <> 'SUCCESSFUL'")
        assert left[0][0] == 0
        # At least once: every job ran (one may run again if the outage cut
        # its outcome's write short and its attempt was rescued).
        ran = server.query("SELECT count(DISTINCT job_id) FROM tests_ledger")[0][0]
        assert ran == 300
        assert worker.process.poll() is None
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    finally:
        worker.cleanup()
