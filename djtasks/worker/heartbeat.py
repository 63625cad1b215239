"""The Worker row: registered at start, touched by heartbeats, stopped at exit.

A worker whose heartbeat is older than STALE_AFTER is taken for dead and
its RUNNING jobs are rescued (djtasks.worker.rescue), so a process must beat
well within that time: HEARTBEAT_INTERVAL defaults to a sixth of it.
"""

import hashlib
import os
import socket

from django.utils import timezone

from djtasks.models import Worker


def task_digest(tasks) -> str:
    """A short digest of a sorted list of task paths: equal lists, equal digests."""
    return hashlib.sha256("\n".join(tasks).encode()).hexdigest()[:16]


def register(
    database: str, worker_id: str, *, backend: str, queues, concurrency: int, tasks=None
) -> None:
    """Create (or revive) this process's Worker row.

    ``tasks``: the sorted paths of the tasks it can run (None: not reported).
    """
    Worker.objects.using(database).update_or_create(
        id=worker_id,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "backend": backend,
            "queues": list(queues),
            "concurrency": concurrency,
            "tasks": None if tasks is None else list(tasks),
            "task_digest": "" if tasks is None else task_digest(tasks),
            "last_heartbeat_at": timezone.now(),
            "stopped_at": None,
        },
    )


def beat(database: str, worker_id: str) -> bool:
    """Say this worker is alive; False if its row is gone or marked stopped."""
    updated = (
        Worker.objects.using(database)
        .filter(id=worker_id, stopped_at__isnull=True)
        .update(last_heartbeat_at=timezone.now())
    )
    return updated == 1


def update_tasks(database: str, worker_id: str, tasks) -> None:
    """Record that this worker can now run ``tasks`` (it imported more of them)."""
    Worker.objects.using(database).filter(id=worker_id).update(
        tasks=list(tasks), task_digest=task_digest(tasks)
    )


def unregister(database: str, worker_id: str) -> None:
    """Mark the Worker row stopped (kept for the admin's history)."""
    Worker.objects.using(database).filter(id=worker_id).update(stopped_at=timezone.now())
