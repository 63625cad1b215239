"""DatabaseBackend: the django.tasks backend that stores jobs as rows."""

import hashlib
import json
import uuid
from datetime import datetime, timedelta

from django.conf import settings as django_settings
from django.core import checks
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from . import registry
from .compat import (
    BaseTaskBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    is_module_level_function,
    signals,
)
from .conf import settings
from .models import Job, JobStatus
from .payload import prepare_arguments
from .results import to_task_result
from .retry import policy_of
from .task import DatabaseTask, expires_at


class DatabaseBackend(BaseTaskBackend):
    """Stores each enqueued call as a Job row in the project's database.

    OPTIONS:
        DATABASE: the database alias that holds the jobs (default "default").
    """

    task_class = DatabaseTask

    # Jobs may be deferred with run_after.
    supports_defer = True
    # Coroutine functions run on the worker's event loop.
    supports_async_task = True
    # Results are rows, readable from any process.
    supports_get_result = True
    # The claim orders ready jobs by priority.
    supports_priority = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.database = self.options.get("DATABASE", "default")

    def validate_task(self, task):
        # The documentation allows a timedelta run_after, but the standard
        # check calls timezone.is_aware() on it; make it absolute first. The
        # task is frozen, and this runs inside its own __post_init__.
        if isinstance(task.run_after, timedelta):
            object.__setattr__(task, "run_after", timezone.now() + task.run_after)
        if task.run_after is not None and not isinstance(task.run_after, datetime):
            raise InvalidTask("run_after must be a datetime or a timedelta.")
        super().validate_task(task)
        if is_module_level_function(task.func):
            registry.register(task)

    def enqueue(self, task, args, kwargs):
        """Insert one job in the caller's transaction and return its result."""
        self.validate_task(task)
        job = self._build_job(task, args, kwargs, timezone.now())
        if job.unique_key is None:
            job.save(force_insert=True, using=self.database)
        else:
            job = self._save_unique(job)
        # A duplicate of a unique job may be another task that shares the key.
        same_task = job.task_path == task.module_path
        result = to_task_result(job, task if same_task else None)
        signals.task_enqueued.send(type(self), task_result=result)
        return result

    def bulk_enqueue(self, calls):
        """Insert many jobs with one INSERT; ``calls`` is (task, args, kwargs)."""
        calls = list(calls)
        now = timezone.now()
        jobs = []
        tasks = []
        for task, args, kwargs in calls:
            self.validate_task(task)
            jobs.append(self._build_job(task, args, kwargs, now))
            tasks.append(task)
        if any(job.unique_key for job in jobs):
            # A unique job may turn out to be a duplicate; insert those one at
            # a time so each can fall back to the job already there.
            with transaction.atomic(using=self.database):
                return [self.enqueue(*call) for call in calls]
        Job.objects.using(self.database).bulk_create(jobs)
        results = [to_task_result(job, task) for job, task in zip(jobs, tasks)]
        for result in results:
            signals.task_enqueued.send(type(self), task_result=result)
        return results

    def get_result(self, result_id):
        """Read a job's current state as a TaskResult."""
        try:
            job = Job.objects.using(self.database).get(pk=uuid.UUID(str(result_id)))
        except (ValueError, Job.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        try:
            return to_task_result(job)
        except registry.UnknownTask as error:
            raise InvalidTask(
                f"Job {job.id} names {job.task_path!r}, which is not a registered "
                f"task (was it renamed or removed?)."
            ) from error

    def check(self, **kwargs):
        yield from super().check(**kwargs)
        if self.database not in django_settings.DATABASES:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS']['DATABASE'] names the "
                f"database {self.database!r}, which is not in DATABASES.",
                id="djtasks.E001",
            )
            return
        connection = connections[self.database]
        transaction_mode = connection.settings_dict.get("OPTIONS", {}).get("transaction_mode")
        if connection.vendor == "sqlite" and transaction_mode != "IMMEDIATE":
            yield checks.Warning(
                "Workers on SQLite may fail with 'database is locked' unless "
                "writes take the lock at BEGIN.",
                hint=(
                    f"Set DATABASES[{self.database!r}]['OPTIONS'] = "
                    "{'transaction_mode': 'IMMEDIATE', 'timeout': 20}."
                ),
                id="djtasks.W001",
            )

    def _build_job(self, task, args, kwargs, now):
        path = task.module_path
        args, kwargs = prepare_arguments(path, args, kwargs, settings.MAX_PAYLOAD_BYTES)
        return Job(
            id=uuid.uuid4(),
            task_path=path,
            backend=self.alias,
            queue_name=task.queue_name,
            priority=task.priority,
            args=args,
            kwargs=kwargs,
            status=JobStatus.READY,
            enqueued_at=now,
            run_after=task.run_after,
            available_at=task.run_after or now,
            expires_at=expires_at(task, now),
            max_attempts=getattr(task, "max_attempts", 1),
            retry_policy=policy_of(task),
            timeout=getattr(task, "timeout", None),
            unique_key=unique_key_of(task, path, args, kwargs),
        )

    def _save_unique(self, job):
        """Insert ``job``, or return the live job that already holds its key."""
        for _ in range(3):
            try:
                # A savepoint, so a duplicate does not break the caller's
                # transaction.
                with transaction.atomic(using=self.database):
                    job.save(force_insert=True, using=self.database)
                return job
            except IntegrityError:
                existing = (
                    Job.objects.using(self.database)
                    .filter(
                        unique_key=job.unique_key,
                        status__in=[JobStatus.READY, JobStatus.RUNNING],
                    )
                    .first()
                )
                if existing is not None:
                    return existing
                # The holder finished between our INSERT and our SELECT: the
                # key is free again, so try once more.
        raise IntegrityError(f"Could not enqueue unique job {job.unique_key!r}.")


def unique_key_of(task, path, args, kwargs):
    """The task's unique key: given, derived from the call, or None."""
    key = getattr(task, "unique_key", None)
    if key is not None:
        return key
    if not getattr(task, "unique", False):
        return None
    call = json.dumps([path, args, kwargs], sort_keys=True)
    return f"{path}:{hashlib.sha256(call.encode()).hexdigest()[:32]}"
