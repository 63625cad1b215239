"""The Worker row: registered at start, touched by heartbeats, stopped at exit.

A worker whose heartbeat is older than STALE_AFTER is taken for dead and
its RUNNING jobs are rescued (djtasks.worker.rescue), so a process must beat
well within that time: HEARTBEAT_INTERVAL defaults to a sixth of it.
"""

import os
import socket

from django.utils import timezone

from djtasks.models import Worker


def register(database: str, worker_id: str, *, backend: str, queues, concurrency: int) -> None:
    """Create (or revive) this process's Worker row."""
    Worker.objects.using(database).update_or_create(
        id=worker_id,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "backend": backend,
            "queues": list(queues),
            "concurrency": concurrency,
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


def unregister(database: str, worker_id: str) -> None:
    """Mark the Worker row stopped (kept for the admin's history)."""
    Worker.objects.using(database).filter(id=worker_id).update(stopped_at=timezone.now())
