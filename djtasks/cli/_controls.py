"""What pause, resume and limit share: the QUEUE | --task PATH target, --backend, who acts."""

import getpass

from djtasks.cli import BadInput, _common
from djtasks.control import queues
from djtasks.models import ControlKind


def add_target(parser, verb: str) -> None:
    parser.add_argument("queue", nargs="?", metavar="QUEUE", help=f"the queue to {verb}")
    parser.add_argument("--task", metavar="PATH", help=f"{verb} this task (a dotted path) instead")
    # Controls are rows of the jobs' database, read by the workers of the
    # backends there: a backend on another database has controls of its own.
    _common.add_backend_argument(parser)


def target(options, database: str) -> tuple[str, str]:
    """(kind, name) from the options; BadInput unless exactly one was given.

    A queue must be one a backend on ``database`` serves.
    """
    queue, task = options.get("queue"), options.get("task")
    if bool(queue) == bool(task):
        raise BadInput("Give a QUEUE or --task PATH (one of them).")
    try:
        if task:
            return ControlKind.TASK, queues.check_task(task)
        return ControlKind.QUEUE, queues.check_queue(queue, database)
    except queues.ControlError as error:
        raise BadInput(str(error)) from None


def operator() -> str:
    """Who runs the command, as stored on the control and logged."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "cli"
