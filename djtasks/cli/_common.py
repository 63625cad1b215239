"""What several subcommands share: the backend option, queue names, job filters."""

from django.conf import settings as django_settings
from django.core.management.base import CommandError
from django.utils import timezone

from djtasks import registry
from djtasks.cli import BadInput
from djtasks.management.arguments import database_backend, duration
from djtasks.models import Job, JobStatus, Worker


def add_backend_argument(parser) -> None:
    parser.add_argument(
        "--backend",
        default="default",
        help="TASKS alias whose database holds the jobs (default: default).",
    )


def backend_of(options):
    """The djtasks backend named by --backend, or BadInput."""
    try:
        return database_backend(options["backend"])
    except CommandError as error:
        raise BadInput(str(error)) from None


def jobs_database(options) -> str:
    """The database alias of --backend's jobs, without building the backend if it can.

    Building a djtasks backend imports the enqueue path (psycopg among it),
    a fair part of a probe's start-up on SQLite; the TASKS entry of the
    plain DatabaseBackend says all `health` needs. Anything else (a
    subclass, another backend) is built and checked as usual.
    """
    config = getattr(django_settings, "TASKS", {}).get(options["backend"])
    if config is not None and config.get("BACKEND") == "djtasks.backend.DatabaseBackend":
        return (config.get("OPTIONS") or {}).get("DATABASE", "default")
    return backend_of(options).database


def known_queues(backend) -> set[str]:
    """The backend's QUEUES, and those served by a recorded worker."""
    served = Worker.objects.using(backend.database).values_list("queues", flat=True)
    return set(backend.queues or ()) | {queue for queues in served for queue in queues or ()}


def check_queue(backend, queue: str) -> str:
    """``queue`` if the backend knows it (any name when it lists no QUEUES), else BadInput."""
    if not backend.queues:
        return queue
    known = known_queues(backend)
    if queue not in known:
        raise BadInput(f"Unknown queue {queue!r}; known queues: {', '.join(sorted(known))}.")
    return queue


def check_task_filter(jobs, path: str) -> str:
    """``path`` if a task is registered there or a stored job has it, else BadInput.

    A stored path is enough: the failures of a task since removed can still
    be deleted.
    """
    # An index lookup (djtasks_job_task), however many jobs there are.
    if registry.is_registered(path) or jobs.filter(task_path=path).exists():
        return path
    raise BadInput(f"Unknown task {path!r}: no registered task and no job has this path.")


def add_filter_arguments(parser) -> None:
    """--status, --task, --queue, --since: which jobs a bulk subcommand acts on."""
    parser.add_argument(
        "--status",
        action="append",
        type=str.upper,
        choices=list(JobStatus.values),
        metavar="STATUS",
        help=f"Only jobs of this status (repeatable): {', '.join(JobStatus.values)}.",
    )
    parser.add_argument("--task", metavar="PATH", help="Only jobs of this task (dotted path).")
    parser.add_argument("--queue", metavar="QUEUE", help="Only jobs of this queue.")
    parser.add_argument(
        "--since",
        type=duration,
        metavar="DURATION",
        help="Only jobs enqueued within this span before now (e.g. 15m, 1h, 7d).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="Count the jobs it would change; change nothing."
    )
    add_backend_argument(parser)


def matching_jobs(options, backend):
    """The jobs the filters select; BadInput when none is given or one names nothing known."""
    if not any(options.get(name) for name in ("status", "task", "queue", "since")):
        raise BadInput(
            "Give at least one filter (--status, --task, --queue or --since): "
            "acting on every job is never the default."
        )
    jobs = Job.objects.using(backend.database).all()
    if options.get("status"):
        jobs = jobs.filter(status__in=options["status"])
    if options.get("task"):
        jobs = jobs.filter(task_path=check_task_filter(jobs, options["task"]))
    if options.get("queue"):
        jobs = jobs.filter(queue_name=check_queue(backend, options["queue"]))
    if options.get("since") is not None:
        jobs = jobs.filter(enqueued_at__gte=timezone.now() - options["since"])
    return jobs


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")
