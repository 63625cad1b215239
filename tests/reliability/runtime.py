"""What the reliability runs share: worker settings, Django set-up for the commands, workers.

The runs drive real ``manage.py runworker`` processes (the acceptance
suite's RunningWorker) on a database, and read the outcome with the ORM.
Under pytest that database is the test database; as a command it is the
one ``--database-url`` names (a SQLite file under var/ by default).
"""

import os
import sys
import tempfile
from pathlib import Path

from tests.acceptance.conftest import ROOT, RunningWorker, worker_environment

# Short heartbeat and rescue intervals so a killed worker's jobs come back
# within seconds. STALE_AFTER leaves a loaded 2-core machine a margin: a
# live worker taken for dead would run a job twice without any kill.
SETTINGS = """
from tests.settings import *  # noqa: F403

# As in production: with DEBUG on, Django keeps the last 9,000 queries of
# every connection, which reads as a memory leak in a soak.
DEBUG = False

DJTASKS = {
    "POLL_INTERVAL": 0.2,
    "HEARTBEAT_INTERVAL": 0.25,
    "STALE_AFTER": 3.0,
    "RESCUE_INTERVAL": 0.25,
    "CANCEL_GRACE": 1.0,
    # The kills are random: a job may be hit three times by chance, which
    # the poison rule (tested on its own) would take for a poison job. The
    # chaos proves at-least-once delivery, so it gives the rule room.
    "MAX_LOST_ATTEMPTS": 100,
}
"""
STALE_AFTER = 3.0


def write_settings(directory: Path) -> Path:
    """Write the worker settings module into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "worker_acceptance_settings.py").write_text(SETTINGS)
    return directory


def setup_django(url: str) -> Path:
    """Configure Django in this process for ``url`` and migrate it (commands only)."""
    import django
    from django.core.management import call_command

    directory = write_settings(Path(tempfile.mkdtemp(prefix="djtasks-reliability-")))
    sys.path[:0] = [str(directory), str(ROOT)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "worker_acceptance_settings"
    os.environ["DATABASE_URL"] = url
    django.setup()
    call_command("migrate", verbosity=0)
    return directory


def default_url(name: str) -> str:
    """A fresh SQLite file under var/ for a command run without --database-url."""
    path = ROOT / "var" / f"{name}.sqlite3"
    path.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def empty_tables() -> None:
    """Start from no jobs, workers or ledger rows (commands use a scratch database)."""
    from djtasks.models import Job, Worker
    from tests.models import Ledger

    for model in (Job, Worker, Ledger):
        model.objects.all().delete()


class Workers:
    """The runworker processes of one run, started and restarted alike."""

    def __init__(self, settings_dir: Path, url: str, log_dir: Path, args):
        self.env = worker_environment(settings_dir, url, DJTASKS_LOG_LEVEL="INFO")
        self.log_dir = log_dir
        self.args = list(args)
        self.started: list[RunningWorker] = []

    def start(self) -> RunningWorker:
        log = self.log_dir / f"runworker-{len(self.started)}.log"
        worker = RunningWorker(self.args, self.env, log)
        self.started.append(worker)
        return worker

    def alive(self) -> list[RunningWorker]:
        return [worker for worker in self.started if worker.process.poll() is None]

    def cleanup(self) -> None:
        for worker in self.started:
            worker.cleanup()
