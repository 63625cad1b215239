"""manage.py runbeat: parse the arguments, then run djtasks.beat.scheduler.Beat."""

from django.core.management.base import BaseCommand

from djtasks.beat.scheduler import Beat
from djtasks.management.arguments import database_backend, positive_float


class Command(BaseCommand):
    help = "Run a djtasks beat: enqueue the due runs of schedules (several beats may run)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--backend",
            default="default",
            help="TASKS alias whose database holds the schedules (default: default).",
        )
        parser.add_argument(
            "--tick-max",
            type=positive_float,
            default=None,
            help="Longest sleep between ticks, in seconds (default: DJTASKS['BEAT_MAX_SLEEP']).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Run one tick (sync declared schedules, enqueue due runs), then exit.",
        )

    def handle(self, *args, backend, tick_max, once, **options):
        database_backend(backend)
        beat = Beat(backend=backend, max_sleep=tick_max)
        beat.install_signal_handlers()
        beat.run(once=once)
