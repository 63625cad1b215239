"""DatabaseBackend: the django.tasks backend that stores jobs as rows."""

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.conf import settings as django_settings
from django.contrib.contenttypes.models import ContentType
from django.core import checks
from django.db import IntegrityError, connections, models, transaction
from django.utils import timezone

from . import registry
from .compat import (
    BaseTaskBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    is_module_level_function,
    signals_of,
)
from .conf import settings
from .insert import insert_job, insert_jobs
from .limits import concurrency_of
from .models import Job, JobStatus
from .payload import prepare_arguments
from .results import to_task_result
from .retry import policy_of
from .task import DatabaseTask, absolute_run_after, expires_at

# The state of a job that has not run yet, for building its TaskResult.
NOT_STARTED = {
    "started_at": None,
    "last_attempted_at": None,
    "finished_at": None,
    "worker_ids": [],
    "errors": [],
    "return_value": None,
}


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
        # Tasks this backend validated, by id(); see _validate_once.
        self._validated = {}

    def validate_task(self, task):
        # The documentation allows a timedelta run_after, but the standard
        # check calls timezone.is_aware() on it; make it absolute first. The
        # task is frozen, and this runs inside its own __post_init__.
        if isinstance(task.run_after, timedelta):
            object.__setattr__(task, "run_after", absolute_run_after(task.run_after))
        if task.run_after is not None and not isinstance(task.run_after, datetime):
            raise InvalidTask("run_after must be a datetime or a timedelta.")
        super().validate_task(task)
        if is_module_level_function(task.func):
            registry.register(task)

    def _validate_once(self, task):
        """validate_task, skipped for a task object this backend validated.

        A Task is frozen, so its verdict cannot change; and validating
        inspects the function's signature, a fair part of an enqueue's
        Python time. The task objects themselves are kept, so an id is
        never reused while it is in here; the set is bounded because
        ``.using()`` makes a new task per call.
        """
        if self._validated.get(id(task)) is task:
            return
        self.validate_task(task)
        if len(self._validated) >= 1024:
            self._validated.clear()
        self._validated[id(task)] = task

    def enqueue(self, task, args, kwargs):
        """Insert one job in the caller's transaction and return its result."""
        self._validate_once(task)
        values = self._job_values(task, args, kwargs, timezone.now())
        if values["unique_key"] is None:
            insert_job(self.database, values)
            job = SimpleNamespace(**NOT_STARTED, **values)
        else:
            job = self._save_unique(values)
        # A duplicate of a unique job may be another task that shares the key.
        same_task = job.task_path == task.module_path
        result = to_task_result(job, task if same_task else None)
        signals_of(result.task).task_enqueued.send(type(self), task_result=result)
        return result

    def bulk_enqueue(self, calls):
        """Insert many jobs in one statement; ``calls`` is (task, args, kwargs)."""
        calls = list(calls)
        now = timezone.now()
        max_bytes = settings.MAX_PAYLOAD_BYTES
        rows = []
        for task, args, kwargs in calls:
            self._validate_once(task)
            rows.append(self._job_values(task, args, kwargs, now, max_bytes))
        if any(row["unique_key"] for row in rows):
            # A unique job may turn out to be a duplicate; insert those one at
            # a time so each can fall back to the job already there.
            with transaction.atomic(using=self.database):
                return [self.enqueue(*call) for call in calls]
        insert_jobs(self.database, rows)
        results = [
            to_task_result(SimpleNamespace(**NOT_STARTED, **row), call[0])
            for row, call in zip(rows, calls)
        ]
        for result in results:
            signals_of(result.task).task_enqueued.send(type(self), task_result=result)
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

    def _job_values(self, task, args, kwargs, now, max_bytes=None) -> dict:
        """The fields of a new job row for this call, validated."""
        path = task.module_path
        if max_bytes is None:
            max_bytes = settings.MAX_PAYLOAD_BYTES
        args, kwargs = prepare_arguments(path, args, kwargs, max_bytes)
        return {
            "id": uuid.uuid4(),
            "task_path": path,
            "backend": self.alias,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "args": args,
            "kwargs": kwargs,
            "status": JobStatus.READY,
            "enqueued_at": now,
            "run_after": task.run_after,
            "available_at": task.run_after or now,
            "expires_at": expires_at(task, now),
            "max_attempts": getattr(task, "max_attempts", 1),
            "retry_policy": policy_of(task),
            "timeout": getattr(task, "timeout", None),
            "unique_key": unique_key_of(task, path, args, kwargs),
            **limit_values(task, args, kwargs),
            **self._about(getattr(task, "about", None)),
        }

    def _about(self, instance) -> dict:
        """The content_type/object_id columns for ``.using(about=instance)``."""
        if instance is None:
            return {}
        if not isinstance(instance, models.Model) or instance.pk is None:
            raise InvalidTask("about must be a saved model instance.")
        content_type = ContentType.objects.db_manager(self.database).get_for_model(instance)
        return {"content_type_id": content_type.pk, "object_id": str(instance.pk)}

    def _save_unique(self, values):
        """Insert a unique job, or return the live job that holds its key."""
        for _ in range(3):
            try:
                # A savepoint, so a duplicate does not break the caller's
                # transaction.
                with transaction.atomic(using=self.database):
                    insert_job(self.database, values)
                return SimpleNamespace(**NOT_STARTED, **values)
            except IntegrityError:
                existing = (
                    Job.objects.using(self.database)
                    .filter(
                        unique_key=values["unique_key"],
                        status__in=[JobStatus.READY, JobStatus.RUNNING],
                    )
                    .first()
                )
                if existing is not None:
                    return existing
                # The holder finished between our INSERT and our SELECT: the
                # key is free again, so try once more.
        raise IntegrityError(f"Could not enqueue unique job {values['unique_key']!r}.")


def limit_values(task, args, kwargs) -> dict:
    """The limit columns of a new job (none for a task without limits)."""
    rate_limit = getattr(task, "rate_limit", None)
    try:
        key, limit = concurrency_of(task, args, kwargs)
    except ValueError as error:
        raise InvalidTask(str(error)) from None
    if rate_limit is None and key is None:
        return {}
    return {
        "rate_limit": rate_limit,
        "concurrency_key": key,
        "concurrency_limit": limit,
        "limited": True,
    }


def unique_key_of(task, path, args, kwargs):
    """The task's unique key: given, derived from the call, or None."""
    key = getattr(task, "unique_key", None)
    if key is not None:
        return key
    if not getattr(task, "unique", False):
        return None
    call = json.dumps([path, args, kwargs], sort_keys=True)
    return f"{path}:{hashlib.sha256(call.encode()).hexdigest()[:32]}"
