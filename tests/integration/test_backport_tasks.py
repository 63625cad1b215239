"""On Django 6, tasks defined through the django_tasks backport run on djtasks too.

Both frameworks read the same TASKS setting, so a project on Django 6 can
hold tasks of both kinds (Wagtail defines its tasks with the backport). The
backport's @task asks the backend for its task_class, so it makes djtasks
DatabaseTasks; a Task of the backport's own class runs as well, with the
backport's TaskResult and signals. On Django 5.2 the backport *is* the
standard API, which the rest of the suite covers.
"""

import pytest

pytest.importorskip("django.tasks", reason="Django 6 only: on 5.2 the backport is the standard")
django_tasks = pytest.importorskip("django_tasks", reason="the django-tasks backport is needed")

from django_tasks.signals import task_enqueued, task_finished  # noqa: E402

from djtasks.backend import DatabaseBackend  # noqa: E402
from djtasks.models import Job, JobStatus  # noqa: E402
from tests import backport_tasks  # noqa: E402

pytestmark = pytest.mark.django_db


def test_a_task_from_the_backport_decorator_is_stored_run_and_read_back(run_jobs):
    result = backport_tasks.multiply.enqueue(6, 7)

    assert Job.objects.get(pk=result.id).task_path == "tests.backport_tasks.multiply"
    run_jobs()
    result.refresh()
    # The backport's statuses compare equal to the standard ones.
    assert result.status == django_tasks.TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert backport_tasks.multiply.get_result(result.id).return_value == 42


def test_a_backport_decorated_task_gets_a_context(run_jobs):
    result = backport_tasks.attempt_number.enqueue()
    run_jobs()
    assert backport_tasks.attempt_number.get_result(result.id).return_value == 1


def test_a_task_of_the_backport_class_gets_backport_results_and_signals(run_jobs):
    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, type(task_result), str(task_result.status)))

    task_enqueued.connect(receiver)
    task_finished.connect(receiver)
    try:
        result = backport_tasks.fails_task.enqueue()
        run_jobs()
    finally:
        task_enqueued.disconnect(receiver)
        task_finished.disconnect(receiver)

    assert isinstance(result, django_tasks.TaskResult)
    assert seen == [
        (DatabaseBackend, django_tasks.TaskResult, "READY"),
        (DatabaseBackend, django_tasks.TaskResult, "FAILED"),
    ]
    job = Job.objects.get(pk=result.id)
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["exception_class_path"] == "builtins.ValueError"
    result.refresh()
    assert isinstance(result.errors[0], django_tasks.base.TaskError)
