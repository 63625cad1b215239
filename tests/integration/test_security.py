"""A row is untrusted: only registered tasks run, whatever task_path it names."""

import os
import uuid

import pytest

from djtasks.compat import InvalidTask
from djtasks.models import Job
from tests import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def os_system_spy(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args) or 0)
    return calls


@pytest.mark.parametrize(
    "path",
    [
        "os.system",
        "tests.tasks.not_a_task",
        "tests.tasks.FORBIDDEN_CALLS.append",
        "builtins.exec",
        "no.such.module",
    ],
)
def test_row_naming_a_non_task_path_is_failed_and_never_called(path, run_jobs, os_system_spy):
    tasks.FORBIDDEN_CALLS.clear()
    job = Job.objects.create(id=uuid.uuid4(), task_path=path, args=["touch /tmp/pwned"])

    outcomes = run_jobs()

    assert [o.status for o in outcomes] == ["FAILED"]
    assert os_system_spy == []
    assert tasks.FORBIDDEN_CALLS == []
    job.refresh_from_db()
    assert job.status == "FAILED"
    assert job.max_attempts == 1 and job.attempts == 1
    assert job.errors[0]["exception_class_path"] == "djtasks.registry.UnknownTask"
    assert "not a registered task" in job.errors[0]["traceback"]


def test_unrunnable_row_is_not_retried_even_with_attempts_left(run_jobs, later):
    job = Job.objects.create(id=uuid.uuid4(), task_path="os.system", max_attempts=5)

    run_jobs()
    run_jobs(now=later)

    job.refresh_from_db()
    assert (job.status, job.attempts, len(job.errors)) == ("FAILED", 1, 1)


def test_result_of_such_a_row_gives_a_clear_error(backend):
    job = Job.objects.create(id=uuid.uuid4(), task_path="os.system")

    with pytest.raises(InvalidTask, match="not a registered task"):
        backend.get_result(str(job.id))


def test_a_row_naming_a_real_task_still_runs(run_jobs):
    # The same path a view would enqueue, written straight into the table
    # (as the admin or a script might).
    job = Job.objects.create(id=uuid.uuid4(), task_path="tests.tasks.add", args=[2, 2])

    run_jobs()

    job.refresh_from_db()
    assert (job.status, job.return_value) == ("SUCCESSFUL", 4)
