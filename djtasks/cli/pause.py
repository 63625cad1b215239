"""manage.py djtasks pause QUEUE | --task PATH: no worker claims its READY jobs."""

from djtasks.cli._common import backend_of
from djtasks.cli._controls import add_target, operator, target
from djtasks.control import queues
from djtasks.models import ControlKind

HELP = "Pause a queue, or a task across queues: its READY jobs wait; running ones finish."


def add_arguments(parser) -> None:
    add_target(parser, "pause")


def run(options, out) -> int:
    database = backend_of(options).database
    kind, name = target(options, database)
    pause = queues.pause_queue if kind == ControlKind.QUEUE else queues.pause_task
    control = pause(name, by=operator(), database=database)
    out.write(
        f"Paused {kind} {name} (by {control.changed_by}). Workers stop claiming its jobs "
        "within a second; jobs already running finish."
    )
    return 0
