"""manage.py djtasks enqueue PATH [ARGS]: enqueue one call of a registered task."""

import inspect
import json

from djtasks import registry
from djtasks.cli import BadInput
from djtasks.compat import FRAMEWORKS
from djtasks.management.arguments import duration

HELP = "Enqueue one call of a registered task, e.g. enqueue myapp.tasks.add '[1, 2]'."

# What a task's using() and enqueue() raise for a call they refuse (an
# unknown queue, a priority out of range, arguments that are not JSON).
REFUSED = (*(framework["InvalidTask"] for framework in FRAMEWORKS), TypeError, ValueError)


def add_arguments(parser) -> None:
    parser.add_argument("path", metavar="PATH", help="Dotted path of a registered task.")
    # dest is not "args": Django keeps that option name for the command's own *args.
    parser.add_argument("json_args", nargs="?", default="[]", metavar="ARGS", help="A JSON array.")
    parser.add_argument("--kwargs", default="{}", metavar="JSON", help="A JSON object.")
    parser.add_argument("--queue", metavar="QUEUE", help="Queue (default: the task's).")
    parser.add_argument("--priority", type=int, help="-100..100 (default: the task's).")
    parser.add_argument(
        "--delay", type=duration, metavar="DURATION", help="Run no sooner than this (e.g. 30s)."
    )


def run(options, out) -> int:
    task = _task(options["path"])
    args = _json(options["json_args"], list, "ARGS", "a JSON array, e.g. '[1, \"two\"]'")
    kwargs = _json(options["kwargs"], dict, "--kwargs", "a JSON object, e.g. '{\"to\": 1}'")
    _check_signature(task, args, kwargs)
    overrides = {
        name: value
        for name, value in (
            ("queue_name", options["queue"]),
            ("priority", options["priority"]),
            ("run_after", options["delay"]),
        )
        if value is not None
    }
    try:
        result = (task.using(**overrides) if overrides else task).enqueue(*args, **kwargs)
    except REFUSED as error:
        raise BadInput(f"Cannot enqueue {task.module_path}: {error}") from None
    out.write(f"Enqueued {task.module_path} as job {result.id} on queue {result.task.queue_name}.")
    return 0


def _task(path: str):
    registry.autodiscover()
    try:
        return registry.get(path)
    except registry.UnknownTask:
        raise BadInput(
            f"{path!r} is not a registered task (defined with @task in an installed app)."
        ) from None


def _json(text: str, kind: type, name: str, expected: str):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"{name} is not valid JSON ({error}): give {expected}.") from None
    if not isinstance(value, kind):
        raise BadInput(f"{name} must be {expected}, not {type(value).__name__}.")
    return value


def _check_signature(task, args, kwargs) -> None:
    """Refuse arguments the function cannot take, before a job is made that could only fail."""
    signature = inspect.signature(task.func)
    if task.takes_context:
        # The worker passes the context first; the caller gives the rest.
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        raise BadInput(f"Arguments do not fit {task.module_path}: {error}.") from None
