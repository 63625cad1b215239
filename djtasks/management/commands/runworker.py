"""manage.py runworker: parse and check the arguments, then run djtasks.worker.supervisor."""

import argparse
import os

from django.core.management.base import BaseCommand, CommandError

from djtasks.management.arguments import database_backend, positive_float, positive_int
from djtasks.worker.supervisor import Supervisor


def queue_list(value: str) -> list[str]:
    queues = [name.strip() for name in value.split(",") if name.strip()]
    if not queues:
        raise argparse.ArgumentTypeError("give at least one queue name, e.g. default,emails")
    return queues


class Command(BaseCommand):
    help = "Run djtasks worker processes: claim jobs from the database and run them."

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default).")
        parser.add_argument(
            "--queues",
            type=queue_list,
            default=None,
            help="Comma-separated queues to serve (default: every queue of the backend).",
        )
        parser.add_argument(
            "--processes",
            type=positive_int,
            default=os.cpu_count() or 1,
            help="Worker processes (default: the number of CPUs).",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="Claim threads per worker process (default: 1).",
        )
        parser.add_argument(
            "--beat",
            action="store_true",
            help="Also run the beat (periodic schedules) in a supervised process, "
            "for small deployments.",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Run the jobs that are due, then exit when the queues are empty.",
        )
        parser.add_argument(
            "--poll-interval",
            type=positive_float,
            default=None,
            help="Seconds between polls when idle (default: DJTASKS['POLL_INTERVAL']).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=positive_float,
            default=25.0,
            help="Seconds running jobs get to finish after SIGTERM/SIGINT (default: 25).",
        )
        parser.add_argument(
            "--max-tasks-per-child",
            type=positive_int,
            default=None,
            help="Replace a worker process after it ran this many jobs.",
        )
        parser.add_argument(
            "--max-memory-per-child",
            type=positive_int,
            default=None,
            metavar="KB",
            help="Replace a worker process once its resident memory exceeds this many KB.",
        )

    def handle(self, *args, **options):
        backend = options["backend"]
        self._check_backend(backend, options["queues"])
        if options["beat"] and options["burst"]:
            raise CommandError("--beat runs schedules for ever; it cannot go with --burst.")
        status = Supervisor(
            processes=options["processes"],
            beat=options["beat"],
            shutdown_timeout=options["shutdown_timeout"],
            backend=backend,
            queues=options["queues"],
            threads=options["threads"],
            burst=options["burst"],
            poll_interval=options["poll_interval"],
            max_tasks=options["max_tasks_per_child"],
            max_memory_kb=options["max_memory_per_child"],
        ).run()
        if status:
            raise SystemExit(status)

    def _check_backend(self, backend, queues):
        configured = database_backend(backend)
        unknown = set(queues or []) - configured.queues if configured.queues else set()
        if unknown:
            raise CommandError(
                f"Queue(s) {', '.join(sorted(unknown))} are not in "
                f"TASKS[{backend!r}]['QUEUES'] ({', '.join(sorted(configured.queues))})."
            )
