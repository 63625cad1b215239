"""manage.py djtasks limit QUEUE | --task PATH [--rate R] [--concurrency N]: live limits.

A value is stored and wins over the settings in code until it is cleared
with ``default``. Without --rate or --concurrency it prints the limits in
force and where each comes from.
"""

from djtasks import controls
from djtasks.cli import BadInput
from djtasks.cli._common import backend_of
from djtasks.cli._controls import add_target, operator, target
from djtasks.control import queues
from djtasks.models import ControlKind

HELP = (
    "Change a queue's rate and concurrency limits, or a task's rate limit, live "
    '("default" clears a stored value).'
)
# The value that clears an override (back to the settings in code).
DEFAULT = "default"


def add_arguments(parser) -> None:
    add_target(parser, "limit")
    parser.add_argument(
        "--rate", metavar="RATE", help='e.g. 100/m (per s, m or h), or "default" to clear'
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        help='most RUNNING jobs of the queue across all workers, or "default" to clear',
    )


def run(options, out) -> int:
    database = backend_of(options).database
    kind, name = target(options, database)
    rate, concurrency = options.get("rate"), options.get("concurrency")
    if kind == ControlKind.TASK and concurrency is not None:
        raise BadInput("--concurrency limits a queue; a task's own is its concurrency_key option.")
    if rate is None and concurrency is None:
        out.write(_limits_in_force(kind, name, database))
        return 0
    changes = {}
    if rate is not None:
        changes["rate_limit"] = None if rate == DEFAULT else rate
    if concurrency is not None:
        changes["concurrency_limit"] = None if concurrency == DEFAULT else _count(concurrency)
    try:
        if kind == ControlKind.QUEUE:
            queues.limit_queue(name, by=operator(), database=database, **changes)
        else:
            queues.limit_task(name, changes["rate_limit"], by=operator(), database=database)
    except queues.ControlError as error:
        raise BadInput(str(error)) from None
    in_force = _limits_in_force(kind, name, database)
    out.write(f"{kind} {name}: {queues.describe(changes)}.\n" + in_force)
    return 0


def _count(value: str) -> int:
    try:
        return queues.check_concurrency(int(value))
    except ValueError:
        raise BadInput(
            f"{value!r} is not a concurrency limit: give a whole number >= 1, or {DEFAULT!r}."
        ) from None


def _limits_in_force(kind, name, database) -> str:
    stored = controls.read(database)
    if kind == ControlKind.TASK:
        rate = stored.task_rates.get(name)
        return f"rate limit: {rate if rate else 'from the task (default)'}"
    default_rate = controls.NONE.queue_rates().get(name)
    override = stored.queue_rate_overrides.get(name)
    concurrency = stored.queue_concurrency.get(name)
    rate_line = (
        f"{override} (stored; default {default_rate if default_rate else 'none'})"
        if override
        else f"{default_rate if default_rate else 'none'} (default)"
    )
    concurrency_line = f"{concurrency} (stored)" if concurrency else "none (default)"
    return f"rate limit: {rate_line}\nconcurrency limit: {concurrency_line}"
