"""Jobs of a task this worker does not have: left for a worker that has it.

During a rolling deploy the web servers with the new code enqueue tasks
that the old workers, still running, do not have. Every worker lists the
tasks it has on its Worker row (djtasks.worker.heartbeat). A worker that
claims a job of a task it lacks hands it back, its attempt not counted:

- if a live worker of the job's queue has the task, at once, and this
  process leaves the task out of its claims for STALE_AFTER seconds
  (LeftToOthers, passed to djtasks.worker.claim as ``skip_tasks``), so the
  worker that has it gets the job however often this one claims. (A delay
  alone is not enough: the old worker, woken exactly when the delay ends,
  would win the job again and again.)
- otherwise not claimable for HAND_BACK_DELAY seconds, so old workers do
  not spin on it while a worker with the task comes up. The job fails with
  UnknownTask only once no live worker has had its task for
  UNKNOWN_TASK_GRACE, counted from the job's enqueue (or run_after) at the
  earliest. A typo in a task path still fails, just not at once.

A worker of a version that did not list its tasks (Worker.tasks NULL)
counts as having none of them: it would fail such a job at once anyway.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from djtasks.conf import settings, unknown_task_grace
from djtasks.errors import error_entry
from djtasks.exceptions import UnknownTask
from djtasks.models import Worker
from djtasks.worker import rescue
from djtasks.worker.outcomes import Outcome, attempt_outcome

logger = logging.getLogger("djtasks")

# Seconds a handed-back job waits before any worker may claim it again.
HAND_BACK_DELAY = 5.0


@dataclass(frozen=True)
class WorkerTasks:
    """What one recent worker said it runs."""

    worker_id: str
    tasks: frozenset
    queues: frozenset
    live: bool
    # When it was last known to be up: its stop, or its last heartbeat.
    last_seen: datetime


class TaskKnowledge:
    """Which recent workers have which tasks, read once for a batch of jobs."""

    def __init__(self, workers: list[WorkerTasks]):
        self.workers = workers

    @classmethod
    def read(cls, database: str, now: datetime, exclude_digest: str = "") -> "TaskKnowledge":
        """Read the workers seen within the grace; ``exclude_digest``: skip workers with that list.

        A worker skips its own digest: workers with its task list lack the
        task as it does.
        """
        live_after = now - timedelta(seconds=settings.STALE_AFTER)
        rows = Worker.objects.using(database).filter(
            last_heartbeat_at__gte=live_after - timedelta(seconds=unknown_task_grace())
        )
        if exclude_digest:
            rows = rows.exclude(task_digest=exclude_digest)
        return cls(
            [
                WorkerTasks(
                    worker_id=worker_id,
                    tasks=frozenset(tasks or ()),
                    queues=frozenset(queues or ()),
                    live=stopped_at is None and heartbeat_at >= live_after,
                    last_seen=stopped_at or heartbeat_at,
                )
                for worker_id, tasks, queues, stopped_at, heartbeat_at in rows.values_list(
                    "id", "tasks", "queues", "stopped_at", "last_heartbeat_at"
                )
            ]
        )

    def live_runners(self, task_path: str, queue: str) -> list[str]:
        """The live workers that have the task and take the queue."""
        return [
            w.worker_id
            for w in self.workers
            if w.live and task_path in w.tasks and queue in w.queues
        ]

    def last_runner(self, task_path: str, queue: str) -> WorkerTasks | None:
        """The worker that had the task and took the queue, seen last; or None."""
        knew = [w for w in self.workers if task_path in w.tasks and queue in w.queues]
        return max(knew, key=lambda w: w.last_seen, default=None)


@dataclass(frozen=True)
class Verdict:
    """Whether a job of a task this worker lacks may still find a worker."""

    runners: list[str]
    # None while a live worker has the task.
    deadline: datetime | None
    fails: bool
    message: str


def verdict(job, knowledge: TaskKnowledge, now: datetime, grace: float) -> Verdict:
    """Decide for ``job`` (a claimed job or a Job row) whose task this worker lacks."""
    path = job.task_path
    runners = knowledge.live_runners(path, job.queue_name)
    if runners:
        return Verdict(runners, None, False, f"live worker(s) {', '.join(runners)} have {path}")
    last = knowledge.last_runner(path, job.queue_name)
    since = job.run_after or job.enqueued_at
    if last is not None:
        since = max(since, last.last_seen)
        seen = f"worker {last.worker_id} had it until {last.last_seen.isoformat()}"
    else:
        seen = f"no worker on queue {job.queue_name!r} seen lately had it"
    deadline = since + timedelta(seconds=grace)
    fails = now >= deadline
    message = f"{path!r} is not a registered task of any live worker of its queue ({seen}); " + (
        f"none had it for UNKNOWN_TASK_GRACE ({grace:g} s). Check the task path, "
        "or deploy workers with the code that defines it."
        if fails
        else f"the job fails at {deadline.isoformat()} unless a worker with it starts."
    )
    return Verdict([], deadline, fails, message)


class LeftToOthers:
    """The tasks one worker process leaves out of its claims, each until a deadline.

    Shared by the process's claim threads (they have the same tasks). A
    task is left for STALE_AFTER seconds: a worker that has it and dies is
    only known dead after that long, and then this worker claims the job
    again, to hand it back with a delay or to fail it after the grace.
    """

    def __init__(self):
        # {task path: time.monotonic() when to claim its jobs again}
        self._until = {}
        self._lock = threading.Lock()

    def leave(self, task_paths) -> None:
        until = time.monotonic() + settings.STALE_AFTER
        with self._lock:
            for path in task_paths:
                self._until[path] = until

    def current(self) -> frozenset:
        """The tasks to leave out of the next claim (read on every claim: cheap when none)."""
        if not self._until:
            return frozenset()
        now = time.monotonic()
        # The lock: claim threads add and drop entries concurrently.
        with self._lock:
            for path in [path for path, until in self._until.items() if until <= now]:
                del self._until[path]
            return frozenset(self._until)


def settle(database: str, worker_id: str, jobs, exclude_digest: str, left=None) -> list[Outcome]:
    """Hand back the jobs a worker with their task may still run; FAILED outcomes for the rest.

    Writes the hand-backs itself (committed before it returns); the FAILED
    outcomes go with the claim thread's other outcomes. ``left`` (a
    LeftToOthers) learns the tasks that a live worker has.
    """
    now = timezone.now()
    knowledge = TaskKnowledge.read(database, now, exclude_digest)
    grace = unknown_task_grace()
    failed, waiting, handed_over = [], [], []
    for job in jobs:
        found = verdict(job, knowledge, now, grace)
        if found.fails:
            failed.append(_failed(job, found.message, worker_id, now))
        else:
            (handed_over if found.runners else waiting).append(job)
            # Debug per job: a backlog of such jobs comes back every few seconds.
            logger.debug(
                "job %s task=%s queue=%s: task not known to worker %s; handed back (%s)",
                job.id,
                job.task_path,
                job.queue_name,
                worker_id,
                found.message,
            )
    if handed_over:
        tasks = sorted({job.task_path for job in handed_over})
        if left is not None:
            # Before the hand-back commits: from then on the job is
            # claimable, and this process's next claim must not take it.
            left.leave(tasks)
        logger.info(
            "worker %s handed back %d job(s) of task(s) it lacks (%s) to the live workers "
            "that have them; it leaves them out of its claims for %g s",
            worker_id,
            len(handed_over),
            ", ".join(tasks),
            settings.STALE_AFTER,
        )
        rescue.hand_back(database, worker_id, [job.id for job in handed_over])
    if waiting:
        logger.info(
            "worker %s handed back %d job(s) of task(s) no live worker has (%s) for %g s",
            worker_id,
            len(waiting),
            ", ".join(sorted({job.task_path for job in waiting})),
            HAND_BACK_DELAY,
        )
        retry_at = now + timedelta(seconds=HAND_BACK_DELAY)
        rescue.hand_back(database, worker_id, [job.id for job in waiting], available_at=retry_at)
    return failed


def _failed(job, message: str, worker_id: str, now: datetime) -> Outcome:
    logger.error("job %s task=%s cannot run: %s", job.id, job.task_path, message)
    error = UnknownTask(message)
    entry = error_entry(error, job.attempts, worker_id, now, f"{message}\n")
    return attempt_outcome(job, "FAILED", now, error=entry)
