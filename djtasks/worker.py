"""A worker process: threads that claim, run and record jobs in batches.

Each thread loops: stop requested? -> claim a batch -> run it -> record the
outcomes in one write -> wait when there was nothing to do. The main thread
keeps the Worker row's heartbeat.
"""

import logging
import os
import signal
import socket
import threading
import time

from django.db import connections
from django.utils import timezone
from django.utils.crypto import get_random_string

from . import registry
from .claim import claim
from .compat import task_backends
from .completion import record
from .conf import settings
from .executor import Executor
from .models import Worker

logger = logging.getLogger("djtasks")

# A thread claims as many jobs as it expects to finish within this many
# seconds (at least one, at most MAX_CLAIM_BATCH), judging by how long
# recent jobs took. Short jobs are claimed 100 at a time; slow ones one at a
# time, so no job waits long behind a slow one.
BATCH_TARGET_SECONDS = 0.05


class BatchSizer:
    """Sizes the next claim from the mean duration of recent jobs."""

    def __init__(self, maximum: int):
        self.maximum = maximum
        self.mean_seconds = BATCH_TARGET_SECONDS  # start cautiously: 1 job

    def next_size(self) -> int:
        if self.mean_seconds <= 0:
            return self.maximum
        fit = int(BATCH_TARGET_SECONDS / self.mean_seconds)
        return max(1, min(self.maximum, fit))

    def observe(self, jobs: int, seconds: float) -> None:
        if jobs:
            # An exponential mean, so one odd batch does not swing the size.
            self.mean_seconds = 0.7 * self.mean_seconds + 0.3 * (seconds / jobs)


class WorkerProcess:
    """One worker process with ``threads`` claiming threads."""

    def __init__(
        self,
        *,
        backend: str = "default",
        queues=None,
        threads: int = 1,
        burst: bool = False,
        poll_interval: float | None = None,
    ):
        self.backend = task_backends[backend]
        self.database = self.backend.database
        self.queues = list(queues or sorted(self.backend.queues) or ["default"])
        self.threads = threads
        self.burst = burst
        self.poll_interval = settings.POLL_INTERVAL if poll_interval is None else poll_interval
        self.worker_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(8)}"
        self.stopping = threading.Event()
        self.processed = 0
        self._count_lock = threading.Lock()

    def run(self) -> None:
        """Work until stopped (or, in burst mode, until the queues are empty)."""
        registry.autodiscover()
        self._install_signal_handlers()
        self._register()
        logger.info(
            "worker %s started: queues=%s threads=%d",
            self.worker_id,
            ",".join(self.queues),
            self.threads,
        )
        threads = [
            threading.Thread(target=self._work, name=f"djtasks-{index}", daemon=True)
            for index in range(self.threads)
        ]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                self._heartbeat()
                threads[0].join(timeout=settings.HEARTBEAT_INTERVAL)
                for thread in threads:
                    thread.join(timeout=0)
        finally:
            self._unregister()
            logger.info("worker %s stopped after %d jobs", self.worker_id, self.processed)

    def stop(self, *_args) -> None:
        """Stop claiming; threads finish the job in hand and exit."""
        self.stopping.set()

    def _work(self) -> None:
        executor = Executor(self.worker_id, type(self.backend))
        sizer = BatchSizer(settings.MAX_CLAIM_BATCH)
        try:
            while not self.stopping.is_set():
                jobs = claim(
                    self.database,
                    self.worker_id,
                    self.queues,
                    sizer.next_size(),
                    timezone.now(),
                )
                if not jobs:
                    if self.burst:
                        return
                    self.stopping.wait(self.poll_interval)
                    continue
                started = time.monotonic()
                outcomes = [executor.run(job) for job in jobs]
                sizer.observe(len(jobs), time.monotonic() - started)
                record(self.database, self.worker_id, outcomes)
                with self._count_lock:
                    self.processed += len(outcomes)
        finally:
            executor.close()
            connections.close_all()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)

    def _register(self) -> None:
        Worker.objects.using(self.database).create(
            id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            backend=self.backend.alias,
            queues=self.queues,
            concurrency=self.threads,
        )

    def _heartbeat(self) -> None:
        Worker.objects.using(self.database).filter(id=self.worker_id).update(
            last_heartbeat_at=timezone.now()
        )

    def _unregister(self) -> None:
        Worker.objects.using(self.database).filter(id=self.worker_id).update(
            stopped_at=timezone.now()
        )
