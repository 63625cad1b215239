"""What Django's tasks documentation promises, checked against djtasks.

Every test uses only the standard API (Task, TaskResult, TaskContext,
signals, checks) on tasks made with djtasks.task and with the standard
decorator; jobs run through the real claim -> executor -> record path.
"""

import logging
from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.test import override_settings
from django.utils import timezone

from djtasks.backend import DatabaseBackend
from djtasks.compat import (
    PRIMARY,
    BaseTaskBackend,
    TaskContext,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from djtasks.models import Job
from tests import tasks

pytestmark = pytest.mark.django_db

Status = TaskResultStatus
# djtasks.compat does not re-export it; both frameworks name it the same.
TaskResultMismatch = import_module(f"{PRIMARY['package']}.exceptions").TaskResultMismatch


# --- @task ------------------------------------------------------------------


@pytest.mark.parametrize("task", [tasks.std_add, tasks.add], ids=["standard", "djtasks"])
def test_bare_decorator_gives_a_task_with_the_documented_defaults(task):
    assert task.priority == 0
    assert task.queue_name == "default"
    assert task.backend == "default"
    assert task.run_after is None
    assert task.takes_context is False
    assert task.name == "add" or task.name == "std_add"
    assert task.module_path == f"tests.tasks.{task.name}"
    assert isinstance(task.get_backend(), DatabaseBackend)


@pytest.mark.parametrize("task", [tasks.std_send, tasks.send_email], ids=["standard", "djtasks"])
def test_decorator_with_options_keeps_them(task):
    assert task.queue_name == "emails"
    assert task.priority in (5, 10)


@pytest.mark.parametrize("task", [tasks.std_add, tasks.add], ids=["standard", "djtasks"])
def test_task_can_still_be_called_directly(task):
    assert task.call(2, 3) == 5


def test_decorator_refuses_run_after():
    with pytest.raises(TypeError, match="run_after"):
        tasks.standard_task(run_after=timezone.now())(tasks.not_a_task)


# --- enqueue / aenqueue -------------------------------------------------------


@pytest.mark.parametrize("task", [tasks.std_add, tasks.add], ids=["standard", "djtasks"])
def test_enqueue_returns_a_ready_result_stored_as_a_row(task):
    result = task.enqueue(2, b=3)

    assert result.status == Status.READY
    assert result.args == [2]
    assert result.kwargs == {"b": 3}
    assert result.backend == "default"
    assert result.task.func is task.func
    assert result.enqueued_at is not None and timezone.is_aware(result.enqueued_at)
    assert result.started_at is None and result.finished_at is None
    assert result.last_attempted_at is None
    assert result.errors == [] and result.worker_ids == [] and result.attempts == 0
    assert result.is_finished is False
    job = Job.objects.get(pk=result.id)
    assert job.task_path == task.module_path
    assert job.status == "READY"


@pytest.mark.parametrize("task", [tasks.std_add, tasks.add], ids=["standard", "djtasks"])
def test_aenqueue_stores_the_job_too(task):
    result = async_to_sync(task.aenqueue)(4, 5)

    assert result.status == Status.READY
    assert Job.objects.get(pk=result.id).args == [4, 5]


def test_arguments_are_normalised_to_json_like_the_standard():
    result = tasks.echo.enqueue((1, 2), {"t": (3,)}, when="x")

    assert result.args == [[1, 2], {"t": [3]}]
    assert result.kwargs == {"when": "x"}


# --- using() ------------------------------------------------------------------


@pytest.mark.parametrize("task", [tasks.std_noop, tasks.noop], ids=["standard", "djtasks"])
def test_using_priority_and_queue_name(task):
    result = task.using(priority=-20, queue_name="emails").enqueue()

    assert result.task.priority == -20
    assert result.task.queue_name == "emails"
    job = Job.objects.get(pk=result.id)
    assert (job.priority, job.queue_name) == (-20, "emails")
    # using() makes a new Task; the original keeps its defaults.
    assert (task.priority, task.queue_name) == (0, "default")


@pytest.mark.parametrize("task", [tasks.std_noop, tasks.noop], ids=["standard", "djtasks"])
def test_using_run_after_aware_datetime_defers_the_job(task, run_jobs):
    run_after = timezone.now() + timedelta(minutes=10)
    result = task.using(run_after=run_after).enqueue()

    assert result.task.run_after == run_after
    assert Job.objects.get(pk=result.id).available_at == run_after
    assert run_jobs() == []  # not due yet
    assert len(run_jobs(now=run_after + timedelta(seconds=1))) == 1
    result.refresh()
    assert result.status == Status.SUCCESSFUL


@pytest.mark.parametrize("task", [tasks.std_noop, tasks.noop], ids=["standard", "djtasks"])
def test_using_run_after_timedelta_becomes_an_aware_datetime(task, run_jobs):
    before = timezone.now()
    result = task.using(run_after=timedelta(minutes=5)).enqueue()
    after = timezone.now()

    run_after = result.task.run_after
    assert timezone.is_aware(run_after)
    assert before + timedelta(minutes=5) <= run_after <= after + timedelta(minutes=5)
    assert run_jobs() == []


def test_run_after_in_another_time_zone_is_the_same_instant(run_jobs):
    run_after = datetime(2000, 1, 1, 12, tzinfo=UTC)
    result = tasks.noop.using(run_after=run_after.astimezone(timezone.get_fixed_timezone(-300)))
    enqueued = result.enqueue()

    assert Job.objects.get(pk=enqueued.id).available_at == run_after
    assert len(run_jobs()) == 1  # long due


def test_higher_priority_runs_first(run_jobs):
    low = tasks.noop.using(priority=-5).enqueue()
    high = tasks.noop.using(priority=50).enqueue()
    middle = tasks.std_noop.enqueue()

    order = [str(run_jobs(limit=1)[0].job_id) for _ in range(3)]

    assert order == [high.id, middle.id, low.id]


# --- results ----------------------------------------------------------------


@pytest.mark.parametrize("task", [tasks.std_add, tasks.add], ids=["standard", "djtasks"])
def test_get_result_and_refresh_follow_the_job_to_success(task, run_jobs):
    result = task.enqueue(20, 22)
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value

    run_jobs()

    # The result in hand is a snapshot until refreshed.
    assert result.status == Status.READY
    result.refresh()
    assert result.status == Status.SUCCESSFUL
    assert result.return_value == 42
    assert result.is_finished
    assert result.worker_ids == ["test-worker"]
    assert result.attempts == 1
    assert result.started_at <= result.last_attempted_at <= result.finished_at
    fetched = task.get_result(result.id)
    assert fetched.id == result.id
    assert fetched.return_value == 42
    assert fetched.task.func is task.func
    assert task.get_backend().get_result(result.id).status == Status.SUCCESSFUL


def test_aget_result_and_arefresh(run_jobs):
    result = tasks.add.enqueue(1, 1)
    run_jobs()

    fetched = async_to_sync(tasks.add.aget_result)(result.id)
    async_to_sync(result.arefresh)()

    assert fetched.return_value == 2
    assert result.return_value == 2


def test_return_value_none_is_a_value(run_jobs):
    result = tasks.noop.enqueue()
    run_jobs()
    result.refresh()

    assert result.status == Status.SUCCESSFUL
    assert result.return_value is None


@pytest.mark.parametrize(
    ("task", "exception", "message"),
    [(tasks.std_failing, KeyError, "std boom"), (tasks.failing, ValueError, "boom")],
    ids=["standard", "djtasks"],
)
def test_failure_is_stored_as_errors(task, exception, message, run_jobs):
    result = task.enqueue()
    run_jobs()
    result = task.get_result(result.id)

    assert result.status == Status.FAILED
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class_path == f"builtins.{exception.__name__}"
    assert error.exception_class is exception
    assert message in error.traceback
    assert f"in {task.name}" in error.traceback  # the task's own frame
    assert result.finished_at is not None
    assert result.attempts == 1


def test_unserialisable_return_value_fails_the_job(run_jobs):
    result = tasks.returns_unserialisable.enqueue()
    run_jobs()
    result.refresh()

    assert result.status == Status.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"
    assert "JSON" in result.errors[0].traceback


@pytest.mark.parametrize(
    "task", [tasks.std_async_add, tasks.async_add], ids=["standard", "djtasks"]
)
def test_async_task_runs(task, run_jobs):
    result = task.enqueue(3, 4)
    run_jobs()
    result.refresh()

    assert result.status == Status.SUCCESSFUL
    assert result.return_value == 7


def test_async_task_failure(run_jobs):
    result = tasks.async_failing.enqueue()
    run_jobs()
    result.refresh()

    assert result.status == Status.FAILED
    assert result.errors[0].exception_class_path == "builtins.RuntimeError"
    assert "async boom" in result.errors[0].traceback


def test_get_result_of_unknown_id_raises_does_not_exist():
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result("00000000-0000-0000-0000-000000000000")
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_backend().get_result("not-a-uuid")


def test_get_result_of_another_task_raises_mismatch():
    result = tasks.add.enqueue(1, 2)

    with pytest.raises(TaskResultMismatch):
        tasks.noop.get_result(result.id)
    with pytest.raises(TaskResultMismatch):
        async_to_sync(tasks.std_add.aget_result)(result.id)


def test_result_task_reflects_the_using_options():
    result = tasks.noop.using(priority=7, queue_name="other").enqueue()

    fetched = tasks.noop.get_result(result.id)

    assert (fetched.task.priority, fetched.task.queue_name) == (7, "other")


# --- TaskContext --------------------------------------------------------------


def test_takes_context_gets_a_task_context_starting_at_attempt_1(run_jobs):
    result = tasks.takes_context.enqueue("x")
    run_jobs()
    result.refresh()

    value = result.return_value
    assert value["attempt"] == 1
    assert value["aware"] is True
    assert value["id"] == result.id
    assert value["worker_ids"] == ["test-worker"]
    assert value["args"] == ["x"]
    assert value["context_class"] == f"{TaskContext.__module__}.{TaskContext.__qualname__}"


def test_standard_takes_context(run_jobs):
    result = tasks.std_takes_context.enqueue()
    run_jobs()

    assert tasks.std_takes_context.get_result(result.id).return_value == {
        "attempt": 1,
        "id": result.id,
    }


def test_context_attempt_counts_retries(run_jobs, later):
    result = tasks.retry_once.enqueue(delay=5)
    run_jobs()
    run_jobs(now=later)
    result.refresh()

    assert result.return_value == 2  # the second attempt saw attempt == 2
    assert result.attempts == 2
    assert len(result.worker_ids) == 2


# --- signals --------------------------------------------------------------------


def test_signals_are_sent_with_the_backend_class_as_sender(signal_log, run_jobs):
    result = tasks.add.enqueue(1, 2)
    run_jobs()

    assert [(entry["signal"], entry["status"]) for entry in signal_log] == [
        ("task_enqueued", "READY"),
        ("task_started", "RUNNING"),
        ("task_finished", "SUCCESSFUL"),
    ]
    assert all(entry["sender"] is DatabaseBackend for entry in signal_log)
    assert all(entry["id"] == result.id for entry in signal_log)


def test_results_sent_with_signals_carry_aware_timestamps(signal_log, run_jobs):
    tasks.add.enqueue(1, 2)
    run_jobs()

    started = [entry for entry in signal_log if entry["signal"] == "task_started"]
    assert len(started) == 1
    times = started[0]["timestamps"]
    assert all(value is not None for value in times.values()), times
    assert all(timezone.is_aware(value) for value in times.values()), times


def test_task_finished_of_a_failure_is_sent_inside_the_except_block(signal_log, run_jobs):
    tasks.failing.enqueue("signal boom")
    run_jobs()

    finished = [entry for entry in signal_log if entry["signal"] == "task_finished"]
    assert len(finished) == 1
    assert finished[0]["status"] == "FAILED"
    assert finished[0]["exception"] is ValueError


def test_standard_logging_receiver_logs_the_traceback_of_a_failure(caplog, framework, run_jobs):
    logger_name = "django.tasks" if framework["package"] == "django.tasks" else "django_tasks"
    tasks.failing.enqueue("logged boom")

    with caplog.at_level(logging.INFO, logger=logger_name):
        run_jobs()

    failures = [r for r in caplog.records if r.name == logger_name and r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert failures[0].exc_info[0] is ValueError
    assert "logged boom" in caplog.text


def test_enqueue_signal_for_enqueue_and_for_aenqueue(signal_log):
    tasks.noop.enqueue()
    async_to_sync(tasks.noop.aenqueue)()

    assert [entry["signal"] for entry in signal_log] == ["task_enqueued", "task_enqueued"]


# --- backend features and checks ------------------------------------------------


def test_all_supports_flags_are_true(backend):
    flags = [name for name in dir(BaseTaskBackend) if name.startswith("supports_")]

    assert set(flags) >= {
        "supports_defer",
        "supports_async_task",
        "supports_get_result",
        "supports_priority",
    }
    assert {name: getattr(backend, name) for name in flags} == dict.fromkeys(flags, True)


def test_system_checks_pass_on_the_test_settings():
    problems = [m for m in checks.run_checks() if m.id and m.id.startswith("djtasks.")]

    assert problems == []


def test_system_check_reports_an_unknown_database_alias():
    tasks_setting = {
        "default": {
            "BACKEND": "djtasks.backend.DatabaseBackend",
            "QUEUES": ["default", "emails", "other"],
            "OPTIONS": {"DATABASE": "nowhere"},
        }
    }
    with override_settings(TASKS=tasks_setting):
        ids = [message.id for message in checks.run_checks()]

    assert "djtasks.E001" in ids


@pytest.mark.sqlite
def test_system_check_warns_about_sqlite_without_immediate_transactions(monkeypatch, backend):
    from django.db import connections

    settings_dict = connections[backend.database].settings_dict
    monkeypatch.setitem(settings_dict, "OPTIONS", {"timeout": 20})

    messages = list(backend.check())

    assert [m.id for m in messages] == ["djtasks.W001"]
    assert "transaction_mode" in messages[0].hint


def test_system_check_reports_djtasks_missing_from_installed_apps(backend):
    from django.conf import settings

    without_djtasks = [app for app in settings.INSTALLED_APPS if app not in ("djtasks", "tests")]
    with override_settings(INSTALLED_APPS=without_djtasks):
        messages = list(backend.check())

    [missing] = [m for m in messages if m.id == "djtasks.E005"]
    assert missing.level == checks.ERROR
    assert "'djtasks' is not in INSTALLED_APPS" in missing.msg
    assert "Add 'djtasks' to INSTALLED_APPS" in missing.hint
    assert [m.id for m in backend.check()] == []  # installed again


def test_backend_check_is_also_reachable_through_the_standard_check(monkeypatch):
    # The standard framework registers a check that calls every backend's check().
    seen = []
    monkeypatch.setattr(DatabaseBackend, "check", lambda self, **kw: seen.append(self) or [])

    checks.run_checks()

    assert seen and all(isinstance(backend, DatabaseBackend) for backend in seen)


def test_system_check_requires_use_tz():
    from djtasks.checks import check_time_zone_support

    assert check_time_zone_support() == []
    with override_settings(USE_TZ=False):
        assert [m.id for m in check_time_zone_support()] == ["djtasks.E003"]
