"""Functions for views and scripts: enqueue by task or by dotted path."""

from djtasks import registry
from djtasks.compat import TASK_CLASSES


def resolve_task(task_or_path):
    """Return the Task object for a Task or the dotted path of one."""
    if isinstance(task_or_path, TASK_CLASSES):
        return task_or_path
    if isinstance(task_or_path, str):
        try:
            return registry.get(task_or_path)
        except registry.UnknownTask:
            raise registry.UnknownTask(
                f"{task_or_path!r} is not a registered task: define it with @task "
                f"in an installed app."
            ) from None
    name = getattr(task_or_path, "__qualname__", repr(task_or_path))
    raise TypeError(
        f"{name} is not a task: decorate it with @djtasks.task (or django.tasks' "
        f"@task) and enqueue the decorated object."
    )


def enqueue(task_or_path, *args, **kwargs):
    """Enqueue a call of a task (or a task's dotted path); return its TaskResult."""
    return resolve_task(task_or_path).enqueue(*args, **kwargs)


async def aenqueue(task_or_path, *args, **kwargs):
    """See enqueue()."""
    return await resolve_task(task_or_path).aenqueue(*args, **kwargs)


def bulk_enqueue(task_or_path, calls):
    """Enqueue many calls of one task with one INSERT.

    ``calls`` yields ``(args, kwargs)`` pairs, e.g. ``[((1,), {}), ((2,), {})]``.
    Returns the TaskResults in the same order. With a backend other than
    djtasks' the calls are enqueued one by one.
    """
    task = resolve_task(task_or_path)
    calls = [(task, tuple(args), dict(kwargs)) for args, kwargs in calls]
    backend = task.get_backend()
    if hasattr(backend, "bulk_enqueue"):
        return backend.bulk_enqueue(calls)
    return [backend.enqueue(*call) for call in calls]
