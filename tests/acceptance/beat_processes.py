"""Start and stop real ``manage.py runbeat`` processes on the test database."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings

from tests.acceptance.conftest import database_url

ROOT = Path(__file__).resolve().parents[2]


def database_env() -> dict:
    """Environment that points a child process at the test database."""
    url = database_url(settings.DATABASES["default"])
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJTASKS_LOG_LEVEL": "INFO",
    }


class BeatProcess:
    """One ``manage.py runbeat`` child; its output goes to a temporary file."""

    def __init__(self, *args: str):
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runbeat", "--tick-max", "0.2", *args],
            cwd=ROOT,
            env=database_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(15)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)
        self.log.close()


def wait_for(condition, timeout: float, interval: float = 0.1):
    """Poll ``condition`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {condition.__doc__ or condition}")
