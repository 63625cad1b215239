"""manage.py runworker: parse the arguments, then run djtasks.worker."""

from django.core.management.base import BaseCommand, CommandError

from djtasks.compat import task_backends
from djtasks.worker import WorkerProcess


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def queue_list(value: str) -> list[str]:
    queues = [name.strip() for name in value.split(",") if name.strip()]
    if not queues:
        raise ValueError(value)
    return queues


class Command(BaseCommand):
    help = "Run a djtasks worker: claim jobs from the database and run them."

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default", help="TASKS alias (default: default).")
        parser.add_argument(
            "--queues",
            type=queue_list,
            default=None,
            help="Comma-separated queues to serve (default: every queue of the backend).",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="Threads per worker process (default: 1).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Run until the queues are empty, then exit.",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=None,
            help="Seconds between polls when idle (default: DJTASKS['POLL_INTERVAL']).",
        )

    def handle(self, *args, backend, queues, threads, burst, poll_interval, **options):
        try:
            configured = task_backends[backend]
        except Exception as error:
            raise CommandError(f"Unknown task backend {backend!r}: {error}") from error
        if not hasattr(configured, "database"):
            raise CommandError(
                f"TASKS[{backend!r}] is {type(configured).__name__}, not "
                "djtasks.backend.DatabaseBackend."
            )
        unknown = set(queues or []) - configured.queues if configured.queues else set()
        if unknown:
            raise CommandError(
                f"Queue(s) {', '.join(sorted(unknown))} are not in "
                f"TASKS[{backend!r}]['QUEUES'] ({', '.join(sorted(configured.queues))})."
            )
        WorkerProcess(
            backend=backend,
            queues=queues,
            threads=threads,
            burst=burst,
            poll_interval=poll_interval,
        ).run()
