"""Helpers for testing code that enqueues jobs, with django.test or pytest.

``run_jobs()`` runs the due jobs in the calling thread through the worker's
own path (claim -> executor -> completion), so it sees the test's rows even
inside ``django.test.TestCase``, whose whole test is one transaction on one
connection. ``assert_enqueued()``, ``assert_not_enqueued()`` and
``captured_jobs()`` read the Job table, so they see what was enqueued by
any code path, including ``bulk_enqueue`` and beat.

Each helper serves one TASKS alias, as a worker does: several aliases may
share a database, and only the rows enqueued through that alias count.
"""

import json
from contextlib import contextmanager

from django.utils import timezone

from djtasks import controls, registry
from djtasks.compat import normalize_json, task_backends
from djtasks.enqueue.api import resolve_task
from djtasks.models import Job, JobStatus
from djtasks.results import to_task_result
from djtasks.worker.claim import claim
from djtasks.worker.executor import Executor
from djtasks.worker.outcomes import record

# The worker id recorded on jobs that run_jobs() runs (no Worker row needed).
TEST_WORKER_ID = "djtasks-testing"
# Jobs claimed per round.
BATCH = 100
# A run_jobs() call gives up after this many attempts: a task that enqueues
# itself again every time would otherwise never let it return.
MAX_RUNS = 10_000
# Jobs listed in a failure message; the rest are counted.
SHOWN = 20


class JobFailed(AssertionError):  # noqa: N818 - reads better in a failing test
    """``run_jobs(propagate=True)`` ran jobs that ended FAILED."""


def run_jobs(*, queues=None, now=None, backend: str = "default", propagate: bool = False):
    """Run every due job of TASKS[``backend``], in this thread, until none is due.

    Returns their results. Jobs of other aliases sharing the database are
    left alone, as that alias's worker would. Jobs enqueued by the jobs that
    run are run too. ``now`` is the time the
    claim sees: pass a later time to run jobs deferred with run_after, and
    retries whose backoff ends before it. Returns one TaskResult per job
    that ran, in the order they first ran, as the jobs stand at the end.
    With ``propagate`` a job that ended FAILED raises JobFailed with its
    traceback.
    """
    task_backend = _backend(backend)
    database = task_backend.database
    queues = list(queues or sorted(task_backend.queues) or ["default"])
    executor = Executor(TEST_WORKER_ID, type(task_backend))
    ran, attempts = {}, 0
    try:
        # The stored controls (paused queues and tasks, limits) as they are
        # now, read each round: a change made in the test's transaction is
        # obeyed at once.
        while jobs := claim(
            backend,
            TEST_WORKER_ID,
            queues,
            BATCH,
            now or timezone.now(),
            stored=controls.read(database),
        ):
            record(database, TEST_WORKER_ID, [executor.run(job) for job in jobs])
            ran.update(dict.fromkeys(job.id for job in jobs))
            attempts += len(jobs)
            if attempts >= MAX_RUNS:
                raise RuntimeError(
                    f"run_jobs() ran {attempts} attempts and jobs are still due: "
                    f"does a task enqueue itself on every run?"
                )
    finally:
        executor.close()
    rows = Job.objects.using(database).in_bulk(list(ran))
    finished = [rows[job_id] for job_id in ran if job_id in rows]
    if propagate:
        _raise_failures(finished)
    return [to_task_result(job) for job in finished if registry.is_registered(job.task_path)]


def assert_enqueued(
    task, args=None, kwargs=None, *, count=None, queue_name=None, jobs=None, backend=None
):
    """Fail unless ``task`` was enqueued with these arguments; return the jobs.

    ``task`` is a Task or its dotted path. ``args`` and ``kwargs`` must
    equal the job's exactly (unittest.mock.ANY matches anything); leave
    one out (None) to accept any. ``count`` asks for exactly that many
    matching jobs (default: at least one). Jobs of every status count, of
    the TASKS alias ``backend`` (default: the task's own).
    """
    path, matching, candidates = _match(task, args, kwargs, queue_name, jobs, backend)
    wanted = f"{count} job(s)" if count is not None else "a job"
    if (count is None and matching) or len(matching) == count:
        return matching
    raise AssertionError(
        f"Expected {wanted} of {path} with {_describe(args, kwargs, queue_name)}; "
        f"found {len(matching)}.\n{_listing(path, candidates)}"
    )


def assert_not_enqueued(task, args=None, kwargs=None, *, queue_name=None, jobs=None, backend=None):
    """Fail if ``task`` was enqueued with these arguments (None: any) through ``backend``."""
    path, matching, _ = _match(task, args, kwargs, queue_name, jobs, backend)
    if matching:
        raise AssertionError(
            f"Expected no job of {path} with {_describe(args, kwargs, queue_name)}; "
            f"found {len(matching)}:\n{_lines(matching)}"
        )


@contextmanager
def captured_jobs(task=None, *, backend: str | None = None):
    """Collect the jobs enqueued inside the ``with`` block (of ``task``, if given).

    Only jobs of the TASKS alias ``backend`` are collected (default: the
    task's own, or "default" without a task).

    ::

        with captured_jobs() as jobs:
            client.post("/signup/", {...})
        jobs.assert_enqueued(send_welcome, args=["ada@example.com"])
    """
    alias = _alias_of(task, backend) if task else (backend or "default")
    captured = CapturedJobs(alias, _path(task) if task else None)
    try:
        yield captured
    finally:
        captured.freeze()


class CapturedJobs:
    """The Job rows enqueued since it was made: read live, frozen when the block ends."""

    def __init__(self, backend: str, task_path: str | None):
        self.backend = backend
        self.database = _backend(backend).database
        self.task_path = task_path
        self._before = set(self._rows().values_list("id", flat=True))
        self._frozen = None

    def freeze(self) -> None:
        self._frozen = self.jobs

    @property
    def jobs(self) -> list:
        if self._frozen is not None:
            return list(self._frozen)
        # Filtered here, not with id__in: the test's table may hold more ids
        # than a query may take parameters.
        return [job for job in self._rows().order_by("enqueued_at") if job.id not in self._before]

    def assert_enqueued(self, task, args=None, kwargs=None, **options):
        return assert_enqueued(task, args, kwargs, jobs=self.jobs, **options)

    def assert_not_enqueued(self, task, args=None, kwargs=None, **options):
        assert_not_enqueued(task, args, kwargs, jobs=self.jobs, **options)

    def __iter__(self):
        return iter(self.jobs)

    def __len__(self):
        return len(self.jobs)

    def __getitem__(self, index):
        return self.jobs[index]

    def __repr__(self):
        return f"<CapturedJobs: {len(self)} job(s)>"

    def _rows(self):
        rows = Job.objects.using(self.database).filter(backend=self.backend)
        return rows.filter(task_path=self.task_path) if self.task_path else rows


# --- internals -----------------------------------------------------------------------------


def _backend(alias: str):
    backend = task_backends[alias]
    if not hasattr(backend, "database"):
        raise TypeError(
            f"TASKS[{alias!r}] is {type(backend).__name__}, not djtasks.backend.DatabaseBackend."
        )
    return backend


def _path(task) -> str:
    return task if isinstance(task, str) else resolve_task(task).module_path


def _alias_of(task, backend) -> str:
    """The TASKS alias whose jobs to look at: given, else the task's own."""
    if backend is not None:
        return backend
    if isinstance(task, str):
        # A path names a registered task, enqueued through its own alias.
        return registry.get(task).backend if registry.is_registered(task) else "default"
    return task.backend


def _match(task, args, kwargs, queue_name, jobs, backend):
    """The task's path, its jobs matching the call, and all jobs looked at."""
    path = _path(task)
    if jobs is None:
        alias = _alias_of(task, backend)
        rows = Job.objects.using(_backend(alias).database).filter(backend=alias)
        jobs = list(rows.order_by("enqueued_at"))
    expected_args = None if args is None else _json(list(args))
    expected_kwargs = None if kwargs is None else _json(dict(kwargs))
    matching = [
        job
        for job in jobs
        if job.task_path == path
        and (expected_args is None or expected_args == job.args)
        and (expected_kwargs is None or expected_kwargs == job.kwargs)
        and (queue_name is None or job.queue_name == queue_name)
    ]
    return path, matching, jobs


def _json(value):
    """``value`` as it would be stored (tuples become lists); as given if not JSON."""
    try:
        return normalize_json(value)
    except TypeError:
        return value  # e.g. holds mock.ANY, which compares equal to anything


def _describe(args, kwargs, queue_name) -> str:
    parts = [
        "any args" if args is None else f"args={_show(list(args))}",
        "any kwargs" if kwargs is None else f"kwargs={_show(dict(kwargs))}",
    ]
    if queue_name is not None:
        parts.append(f"queue_name={queue_name!r}")
    return ", ".join(parts)


def _listing(path, jobs) -> str:
    same = [job for job in jobs if job.task_path == path]
    others = [job for job in jobs if job.task_path != path]
    if not jobs:
        return "No job was enqueued at all."
    text = f"Jobs of {path} ({len(same)}):\n{_lines(same) or '  (none)'}"
    if others:
        text += f"\nOther jobs ({len(others)}):\n{_lines(others)}"
    return text


def _lines(jobs) -> str:
    lines = [
        f"  {job.task_path} args={_show(job.args)} kwargs={_show(job.kwargs)} "
        f"queue={job.queue_name} status={job.status} id={job.id}"
        for job in jobs[:SHOWN]
    ]
    if len(jobs) > SHOWN:
        lines.append(f"  ... and {len(jobs) - SHOWN} more")
    return "\n".join(lines)


def _show(value) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return repr(value)


def _raise_failures(jobs) -> None:
    failed = [job for job in jobs if job.status == JobStatus.FAILED]
    if not failed:
        return
    details = "\n".join(
        f"job {job.id} ({job.task_path}) failed after {job.attempts} attempt(s):\n"
        f"{job.errors[-1]['traceback'] if job.errors else '(no traceback)'}"
        for job in failed
    )
    raise JobFailed(f"{len(failed)} job(s) failed.\n{details}")
