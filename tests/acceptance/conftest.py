"""Acceptance helpers: real ``manage.py runworker`` processes on the test database.

``start_worker("--processes", "2")`` starts the command in its own process
group with settings that make the clock-driven parts fast (heartbeat,
rescue, polling, cancel grace) and the test database as DATABASE_URL, so
the child sees the rows the test writes. Tests read outcomes from the
database with ``wait_for`` (a deadline, never a fixed sleep as assertion)
and need ``@pytest.mark.django_db(transaction=True)``: the worker only sees
committed rows.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

# Settings the worker processes use on top of tests.settings: short
# intervals so crash recovery and cancellation happen within seconds.
FAST_SETTINGS = """
from tests.settings import *  # noqa: F403

DJTASKS = {
    "POLL_INTERVAL": 0.2,
    "HEARTBEAT_INTERVAL": 0.25,
    "STALE_AFTER": 2.0,
    "RESCUE_INTERVAL": 0.25,
    "CANCEL_GRACE": 1.0,
}
"""


def database_url(settings_dict) -> str:
    """A DATABASE_URL naming the database ``settings_dict`` describes."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{quote(password)}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    if settings_dict["ENGINE"].endswith("mysql"):
        port = settings_dict.get("PORT") or 3306
        return f"mysql://{auth}{host}:{port}/{settings_dict['NAME']}"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def fast_settings_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("worker_settings")
    (directory / "worker_acceptance_settings.py").write_text(FAST_SETTINGS)
    return directory


def worker_environment(settings_dir: Path, url: str, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="worker_acceptance_settings",
        DATABASE_URL=url,
        PYTHONPATH=os.pathsep.join([str(settings_dir), str(ROOT)]),
        DJTASKS_LOG_LEVEL="DEBUG",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class RunningWorker:
    """A ``manage.py runworker`` subprocess and its log."""

    def __init__(self, args, env, log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log_file = open(log_path, "wb")  # noqa: SIM115 - closed in cleanup()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runworker", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Its own process group: teardown can kill it with its children.
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runworker did not exit within {timeout}s; log:\n{self.log()}")

    def wait_for_log(self, text: str, timeout: float = 20, count: int = 1) -> None:
        wait_for(lambda: self.log().count(text) >= count, timeout, f"{text!r} in log", self)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.kill_group()
        else:
            # The supervisor exited; make sure no child outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log_file.close()


def wait_for(predicate, timeout: float = 20, what: str = "condition", worker=None):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = ""
            workers = worker if isinstance(worker, list) else [worker] if worker else []
            for running in workers:
                logs += f"\n--- runworker {running.args} log ---\n{running.log()}"
            pytest.fail(f"timed out after {timeout}s waiting for {what}{logs}")
        time.sleep(0.05)


@pytest.fixture
def start_worker(transactional_db, fast_settings_dir, tmp_path):
    """Start ``manage.py runworker *args`` on the test database.

    Depends on transactional_db so the workers are killed before the
    database is flushed.
    """
    started = []

    def start(*args, database_url_override=None, **env_extra):
        url = database_url_override or database_url(connection.settings_dict)
        env = worker_environment(fast_settings_dir, url, **env_extra)
        worker = RunningWorker(list(args), env, tmp_path / f"runworker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.cleanup()
