"""djtasks' own tasks; workers find them like any app's (registry.autodiscover)."""

from djtasks.compat import task_backends
from djtasks.enqueue.task import task
from djtasks.prune import prune


def _chore_queue() -> str:
    """The queue of djtasks' own tasks: "default", if the default backend serves it.

    A task is validated against its backend's QUEUES as it is defined, so a
    fixed "default" would break every import of this module in a project
    whose queues are, say, ["high", "low"].
    """
    try:
        queues = task_backends["default"].queues
    except Exception:  # noqa: BLE001 - no usable default backend: the task fails later, clearly
        return "default"
    if not queues or "default" in queues:
        return "default"
    return sorted(queues)[0]


@task(takes_context=True, queue_name=_chore_queue())
def prune_jobs(context) -> dict:
    """Delete finished jobs and old worker rows past their retention.

    Prunes the database of the backend this job was enqueued on; the
    built-in schedule "djtasks.prune" runs it (see djtasks.prune).
    """
    database = task_backends[context.task_result.backend].database
    return prune(database).as_dict()
