"""The row of a new job: every column an enqueued call fills in, validated.

Shared by every way a job is made (enqueue, bulk enqueue, workflow steps,
the beat's scheduled runs), so a job looks the same whoever enqueued it.
"""

import hashlib
import json
from types import SimpleNamespace

from django.contrib.contenttypes.models import ContentType
from django.db import models

from djtasks.compat import InvalidTask
from djtasks.conf import settings
from djtasks.enqueue.payload import prepare_arguments
from djtasks.enqueue.task import expires_at
from djtasks.ids import new_job_id
from djtasks.limits import concurrency_of
from djtasks.models import JobStatus
from djtasks.retry import policy_of

# The state of a job that has not run yet, for building its TaskResult.
NOT_STARTED = {
    "started_at": None,
    "last_attempted_at": None,
    "finished_at": None,
    "worker_ids": [],
    "errors": [],
    "return_value": None,
}


def not_started(row: dict) -> SimpleNamespace:
    """A job-like object for a row just inserted, to build its TaskResult from."""
    return SimpleNamespace(**NOT_STARTED, **row)


def job_row(backend, task, args, kwargs, now, max_bytes=None) -> dict:
    """The fields of a new job row for this call of ``task`` through ``backend``, validated."""
    return call_row(task_columns(backend, task, now), task, args, kwargs, max_bytes)


def job_rows(backend, calls, now, max_bytes=None) -> list[dict]:
    """The rows of many ``(task, args, kwargs)`` calls, as job_row makes them.

    What depends on the task alone is worked out once per task, not per call:
    it is most of a row, and a bulk enqueue is mostly calls of one task.
    """
    columns_of = {}  # id(task) -> its columns; the tasks live in ``calls``
    rows = []
    for task, args, kwargs in calls:
        columns = columns_of.get(id(task))
        if columns is None:
            columns = columns_of[id(task)] = task_columns(backend, task, now)
        rows.append(call_row(columns, task, args, kwargs, max_bytes))
    return rows


def task_columns(backend, task, now) -> dict:
    """The columns every job of ``task`` enqueued now through ``backend`` shares."""
    return {
        "task_path": task.module_path,
        "backend": backend.alias,
        "queue_name": task.queue_name,
        "priority": task.priority,
        "status": JobStatus.READY,
        "enqueued_at": now,
        "run_after": task.run_after,
        "available_at": task.run_after or now,
        "expires_at": expires_at(task, now),
        "max_attempts": getattr(task, "max_attempts", 1),
        "retry_policy": policy_of(task),
        "timeout": getattr(task, "timeout", None),
        **about_columns(backend.database, getattr(task, "about", None)),
    }


def call_row(columns: dict, task, args, kwargs, max_bytes=None) -> dict:
    """The row of one call: the task's ``columns`` and what the arguments decide."""
    path = columns["task_path"]
    if max_bytes is None:
        max_bytes = settings.MAX_PAYLOAD_BYTES
    args, kwargs = prepare_arguments(path, args, kwargs, max_bytes)
    return {
        "id": new_job_id(),
        **columns,
        "args": args,
        "kwargs": kwargs,
        "unique_key": unique_key_of(task, path, args, kwargs),
        **limit_values(task, args, kwargs),
    }


def about_columns(database: str, instance) -> dict:
    """The content_type/object_id columns for ``.using(about=instance)``."""
    if instance is None:
        return {}
    if not isinstance(instance, models.Model) or instance.pk is None:
        raise InvalidTask("about must be a saved model instance.")
    content_type = ContentType.objects.db_manager(database).get_for_model(instance)
    return {"content_type_id": content_type.pk, "object_id": str(instance.pk)}


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


def is_unique(task) -> bool:
    """Whether the jobs of ``task`` carry a unique key (see unique_key_of)."""
    return getattr(task, "unique_key", None) is not None or getattr(task, "unique", False)


def unique_key_of(task, path, args, kwargs):
    """The task's unique key: given, derived from the call, or None."""
    key = getattr(task, "unique_key", None)
    if key is not None:
        return key
    if not getattr(task, "unique", False):
        return None
    call = json.dumps([path, args, kwargs], sort_keys=True)
    return f"{path}:{hashlib.sha256(call.encode()).hexdigest()[:32]}"
