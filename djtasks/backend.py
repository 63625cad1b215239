"""DatabaseBackend: the django.tasks backend that stores jobs as rows."""

import uuid
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings as django_settings
from django.core import checks
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from djtasks import registry
from djtasks.compat import (
    BaseTaskBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    is_module_level_function,
    signals_of,
)
from djtasks.conf import settings
from djtasks.enqueue.insert import insert_job, insert_jobs
from djtasks.enqueue.rows import is_unique, job_row, job_rows, not_started
from djtasks.enqueue.task import DatabaseTask, absolute_run_after
from djtasks.models import Job, JobStatus
from djtasks.results import enqueued_result, to_task_result


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
        result = self._insert_row(task, job_row(self, task, args, kwargs, timezone.now()))
        signals_of(result.task).task_enqueued.send(type(self), task_result=result)
        return result

    def _insert_row(self, task, values):
        """Insert one job row (or find the live job of its unique key); return its TaskResult."""
        if values["unique_key"] is None:
            insert_job(self.database, values)
            return enqueued_result(task, values)
        job = self._save_unique(values)
        # A duplicate of a unique job may be another task that shares the key.
        same_task = job.task_path == task.module_path
        return to_task_result(job, task if same_task else None)

    def bulk_enqueue(self, calls):
        """Insert many jobs with one statement; ``calls`` is (task, args, kwargs)."""
        calls = list(calls)
        tasks = {id(task): task for task, _, _ in calls}.values()
        for task in tasks:
            self._validate_once(task)
        # Every call is checked before any SQL: a bad one inserts nothing.
        rows = job_rows(self, calls, timezone.now(), settings.MAX_PAYLOAD_BYTES)
        if any(is_unique(task) for task in tasks):
            # A unique job may turn out to be a duplicate; insert those one at
            # a time so each can fall back to the job already there.
            with transaction.atomic(using=self.database):
                results = [self._insert_row(call[0], row) for call, row in zip(calls, rows)]
            return self._announce(results)
        results = []

        def make_results(chunk):
            # The TaskResults of rows the database is inserting meanwhile.
            start = len(results)
            results.extend(
                enqueued_result(call[0], row)
                for call, row in zip(calls[start : start + len(chunk)], chunk, strict=True)
            )

        insert_jobs(self.database, rows, meanwhile=make_results)
        return self._announce(results)

    def _announce(self, results):
        """Send task_enqueued for each result, once every row is in (a receiver may read it)."""
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
        if not apps.is_installed("djtasks"):
            # Checked here, not in djtasks.checks: that module is loaded by
            # the app's ready(), which never runs for an app left out.
            yield checks.Error(
                f"TASKS[{self.alias!r}] uses djtasks.backend.DatabaseBackend, whose jobs "
                "are rows of the djtasks app's tables, but 'djtasks' is not in "
                "INSTALLED_APPS.",
                hint="Add 'djtasks' to INSTALLED_APPS, then run manage.py migrate.",
                id="djtasks.E005",
            )
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
        if connection.vendor == "mysql":
            yield from _check_mysql_isolation(self.alias, self.database, connection)

    def _save_unique(self, values):
        """Insert a unique job, or return the live job that holds its key."""
        for _ in range(3):
            try:
                # A savepoint, so a duplicate does not break the caller's
                # transaction.
                with transaction.atomic(using=self.database):
                    insert_job(self.database, values)
                return not_started(values)
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


def _check_mysql_isolation(alias, database, connection):
    """djtasks on MariaDB / MySQL needs READ COMMITTED, Django's default there.

    Under InnoDB's own default, REPEATABLE READ, a claim's FOR UPDATE SKIP
    LOCKED takes gap locks on the range of the ready index it reads, so an
    enqueue of a job into that range waits for the claim's commit, and two
    claims and an enqueue can deadlock; and a plain read in a transaction
    keeps seeing the rows as they were at its first read, so the check for
    a unique job's live holder after a conflict would not see it.
    """
    options = connection.settings_dict.get("OPTIONS", {})
    level = options.get("isolation_level", "read committed")
    if (level or "").lower() != "read committed":
        yield checks.Error(
            f"TASKS[{alias!r}] keeps its jobs in DATABASES[{database!r}], whose "
            f"connections use the isolation level {level or 'of the server'!r}; djtasks on MariaDB "
            "and MySQL needs 'read committed' (Django's default there).",
            hint=(
                f"Remove 'isolation_level' from DATABASES[{database!r}]['OPTIONS'], "
                "or set it to 'read committed'."
            ),
            id="djtasks.E008",
        )
