"""manage.py prunejobs: parse the arguments, then run djtasks.prune.prune."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from djtasks.management.arguments import database_backend, duration, positive_int
from djtasks.models import FINISHED_STATUSES
from djtasks.prune import job_retention, prune


class Command(BaseCommand):
    help = (
        "Delete finished jobs older than their retention (DJTASKS['RETENTION']) and "
        "old worker rows, in short batches."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--backend",
            default="default",
            help="TASKS alias whose database holds the jobs (default: default).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing.",
        )
        parser.add_argument(
            "--older-than",
            type=duration,
            default=None,
            metavar="DURATION",
            help="Delete jobs finished longer ago than this (e.g. 12h, 7d, 2w) instead of "
            "the configured retention.",
        )
        parser.add_argument(
            "--status",
            action="append",
            type=str.upper,
            choices=[str(status) for status in FINISHED_STATUSES],
            metavar="STATUS",
            help="Prune only jobs of this status (repeatable): "
            f"{', '.join(FINISHED_STATUSES)}. Default: all four.",
        )
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Keep the worker rows (by default those past WORKER_RETENTION go too).",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=None,
            help="Rows deleted per transaction (default: DJTASKS['PRUNE_BATCH']).",
        )

    def handle(self, *args, backend, dry_run, older_than, status, no_workers, batch_size, **opts):
        database = database_backend(backend).database
        try:
            retention = job_retention(status, older_than)
            pruned = prune(
                database,
                statuses=status,
                older_than=older_than,
                workers=not no_workers,
                batch_size=batch_size,
                dry_run=dry_run,
            )
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        self._report(pruned, retention, workers=not no_workers)

    def _report(self, pruned, retention, *, workers):
        verb = "Would delete" if pruned.dry_run else "Deleted"
        for status, keep_for in retention.items():
            if keep_for is None:
                self.stdout.write(f"{status:<11} kept (retention None)")
            else:
                count, span = pruned.jobs[status], _span(keep_for)
                self.stdout.write(f"{status:<11} {count:>8}  finished more than {span} ago")
        if workers:
            self.stdout.write(f"{'workers':<11} {pruned.workers:>8}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {pruned.total_jobs} job(s) and {pruned.workers} worker row(s)."
            )
        )


def _span(delta) -> str:
    """A retention in its largest whole unit: "7 days", "12 hours", "90 seconds"."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{delta.total_seconds():g} seconds"
