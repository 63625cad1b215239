"""manage.py djtasks health: exit 0 if a worker on this host beats, 1 if not (a probe)."""

import socket

from django.db import DatabaseError
from django.utils import timezone

from djtasks import figures
from djtasks.cli import _common
from djtasks.conf import settings

HELP = "Exit 0 when a worker process on this host (or --any-host) beat within STALE_AFTER."


def add_arguments(parser) -> None:
    parser.add_argument(
        "--any-host", action="store_true", help="A worker on any host will do (not only this one)."
    )
    _common.add_backend_argument(parser)


def run(options, out) -> int:
    database = _common.jobs_database(options)
    # The name workers record (djtasks.worker.process uses socket.gethostname()).
    hostname = None if options["any_host"] else socket.gethostname()
    where = "on any host" if hostname is None else f"on host {hostname}"
    now = timezone.now()
    try:
        worker = figures.alive_workers(database, now, hostname).first()
    except DatabaseError as error:
        out.write(f"unhealthy: the database did not answer ({error}).".replace("\n", " "))
        return 1
    if worker is None:
        out.write(
            f"unhealthy: no worker process {where} beat within STALE_AFTER "
            f"({settings.STALE_AFTER:g}s)."
        )
        return 1
    age = (now - worker.last_heartbeat_at).total_seconds()
    out.write(f"healthy: worker {worker.hostname}:{worker.pid} beat {age:.1f}s ago.")
    return 0
