"""manage.py djtasks resume QUEUE | --task PATH: its READY jobs are claimable again."""

from djtasks.cli._common import backend_of
from djtasks.cli._controls import add_target, operator, target
from djtasks.control import queues
from djtasks.models import ControlKind

HELP = "Resume a paused queue or task: its READY jobs are claimable at once."


def add_arguments(parser) -> None:
    add_target(parser, "resume")


def run(options, out) -> int:
    database = backend_of(options).database
    kind, name = target(options, database)
    resume = queues.resume_queue if kind == ControlKind.QUEUE else queues.resume_task
    control = resume(name, by=operator(), database=database)
    out.write(f"Resumed {kind} {name} (by {control.changed_by}).")
    return 0
