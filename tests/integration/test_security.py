"""A row is untrusted: only registered tasks run; no pickle; the admin escapes what rows hold."""

import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

import djtasks
from djtasks.beat.scheduler import Beat
from djtasks.compat import InvalidTask
from djtasks.models import Job, JobStatus, Schedule, Worker
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
    assert job.errors[0]["exception_class_path"] == "djtasks.exceptions.UnknownTask"
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


# --- no pickle; the admin; escaping; payload limits -------------------------------

DJTASKS_SOURCE = Path(djtasks.__file__).parent
# Modules that turn bytes into live objects: a row must never reach one.
UNSAFE_LOADERS = re.compile(
    r"^\s*(?:import|from)\s+(?:c?pickle|_pickle|marshal|shelve|dill|cloudpickle|jsonpickle)\b"
    r"|yaml\.(?:unsafe_)?load\(|\beval\(|\bexec\(",
    re.MULTILINE,
)


def test_no_pickle_marshal_shelve_or_eval_anywhere_in_djtasks():
    sources = sorted(DJTASKS_SOURCE.rglob("*.py"))
    assert len(sources) > 30  # the package really was read

    offenders = [
        f"{path.relative_to(DJTASKS_SOURCE)}: {match.group(0).strip()}"
        for path in sources
        for match in UNSAFE_LOADERS.finditer(path.read_text())
    ]

    assert offenders == []


def test_a_row_naming_os_system_retried_from_the_admin_still_never_runs(
    admin_client, run_jobs, os_system_spy
):
    job = Job.objects.create(task_path="os.system", args=["touch /tmp/pwned"])
    run_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED

    admin_client.post(
        reverse("admin:djtasks_job_changelist"),
        {"action": "retry_jobs", "_selected_action": [str(job.pk)]},
    )
    admin_client.post(reverse("admin:djtasks_job_operate", args=[job.pk, "run-now"]))
    run_jobs(now=timezone.now() + timedelta(hours=1))

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert all(e["exception_class_path"] == "djtasks.exceptions.UnknownTask" for e in job.errors)
    assert os_system_spy == []


def test_a_schedule_row_naming_os_system_never_enqueues(admin_client, os_system_spy):
    now = timezone.now()
    schedule = Schedule.objects.create(
        name="evil", task_path="os.system", args=["id"], cron="* * * * *", next_run_at=now
    )
    admin_client.post(
        reverse("admin:djtasks_schedule_changelist"),
        {"action": "run_now", "_selected_action": [str(schedule.pk)]},
    )
    beat = Beat(clock=lambda: now)
    beat.synced = True
    beat.enqueue_due(now)

    assert not Job.objects.exists()
    schedule.refresh_from_db()
    assert "not a registered task" in schedule.last_error
    assert os_system_spy == []


SCRIPT = "<script>alert('djtasks')</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror=alert(1)>'


def test_script_payloads_are_escaped_on_every_admin_page(admin_client):
    evil = f"{SCRIPT}{ATTRIBUTE_BREAK}"
    now = timezone.now()
    worker = Worker.objects.create(id=evil[:64], hostname=evil, pid=1, queues=[evil])
    schedule = Schedule.objects.create(
        name=evil,
        task_path="tests.tasks.echo",
        args=[evil],
        kwargs={evil: evil},
        cron="* * * * *",
        last_error=evil,
    )
    job = Job.objects.create(
        task_path=evil,
        args=[evil],
        kwargs={"k": evil},
        status=JobStatus.FAILED,
        worker=worker,
        worker_ids=[evil],
        unique_key=evil[:255],
        errors=[
            {
                "exception_class_path": evil,
                "traceback": f"Traceback (most recent call last):\n{evil}\n",
                "attempt": 1,
                "worker_id": evil,
                "failed_at": now.isoformat(),
            }
        ],
        return_value={"html": evil},
        progress={"current": 1, "total": 2, "message": evil},
        schedule=schedule,
        finished_at=now,
    )
    pages = [
        reverse("admin:djtasks_job_changelist"),
        reverse("admin:djtasks_job_changelist") + "?q=" + SCRIPT,
        reverse("admin:djtasks_job_change", args=[job.pk]),
        reverse("admin:djtasks_dashboard"),
        reverse("admin:djtasks_schedule_changelist"),
        reverse("admin:djtasks_schedule_change", args=[schedule.pk]),
        reverse("admin:djtasks_worker_changelist"),
        reverse("admin:djtasks_worker_change", args=[worker.pk]),
    ]

    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        body = response.content.decode()
        assert SCRIPT not in body, page
        assert ATTRIBUTE_BREAK not in body, page
    # The payload is shown, escaped, on the job page (not just dropped).
    body = admin_client.get(reverse("admin:djtasks_job_change", args=[job.pk])).content.decode()
    assert "&lt;script&gt;alert(&#x27;djtasks&#x27;)&lt;/script&gt;" in body


def test_the_payload_limit_holds_for_schedules_too():
    now = timezone.now()
    schedule = Schedule.objects.create(
        name="huge",
        task_path="tests.tasks.echo",
        args=["x" * 500],
        cron="* * * * *",
        next_run_at=now,
    )
    beat = Beat(clock=lambda: now)
    beat.synced = True

    with override_settings(DJTASKS={"MAX_PAYLOAD_BYTES": 100}):
        beat.enqueue_due(now)

    assert not Job.objects.exists()
    schedule.refresh_from_db()
    assert "more than the limit of 100" in schedule.last_error
