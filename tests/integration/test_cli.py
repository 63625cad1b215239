"""manage.py djtasks SUBCOMMAND through call_command: what each one prints and changes.

Every refused input raises CommandError with returncode 2 (the exit status
a shell sees; tests/acceptance/test_cli_processes.py checks it for real) and
leaves the table as it was.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from djtasks.control import bulk
from djtasks.models import Job, JobStatus, Worker

pytestmark = pytest.mark.django_db


def djtasks(*args) -> str:
    out = StringIO()
    call_command("djtasks", *args, stdout=out)
    return out.getvalue()


def refused(*args) -> str:
    """The message of a refused command line, after checking it changed nothing."""
    before = snapshot()
    with pytest.raises(CommandError) as caught:
        djtasks(*args)
    assert snapshot() == before
    return str(caught.value)


def snapshot():
    return sorted(Job.objects.values_list("id", "status", "queue_name", "priority"))


def make(status, task="tests.tasks.noop", queue="default", count=1, **fields):
    now = timezone.now()
    if status in ("SUCCESSFUL", "FAILED", "CANCELLED", "EXPIRED"):
        fields.setdefault("finished_at", now)
    return Job.objects.bulk_create(
        Job(task_path=task, queue_name=queue, status=status, **fields) for _ in range(count)
    )


# --- status ---------------------------------------------------------------


def test_status_shows_queues_workers_and_recent_failures():
    now = timezone.now()
    make("READY", queue="emails", count=3, available_at=now - timedelta(minutes=5))
    make("READY", queue="emails", available_at=now + timedelta(hours=1))
    worker = Worker.objects.create(id="w1", hostname="alpha", pid=41)
    make("RUNNING", queue="default", count=2, worker=worker)
    make("FAILED", count=4)
    make("FAILED", finished_at=now - timedelta(hours=2))  # too old to count

    data = json.loads(djtasks("status", "--json"))

    emails = data["queues"]["emails"]
    assert (emails["ready"], emails["due"], emails["running"]) == (4, 3, 0)
    assert 290 < emails["oldest_due_age"] < 400
    assert data["queues"]["default"]["running"] == 2
    assert [(w["host"], w["pid"], w["running"], w["alive"]) for w in data["workers"]] == [
        ("alpha", 41, 2, True)
    ]
    assert data["failures_last_hour"] == 4
    text = djtasks("status")
    assert "emails" in text and "alpha:41" in text and "Failures in the last hour: 4" in text


def test_status_lists_idle_configured_queues():
    data = json.loads(djtasks("status", "--json"))

    assert sorted(data["queues"]) == ["default", "emails", "other"]
    assert data["queues"]["other"] == {
        "ready": 0, "due": 0, "oldest_due_age": None, "running": 0, "waiting": 0, "paused": False
    }  # fmt: skip


def test_status_counts_limited_ready_jobs_too():
    make("READY", queue="other", count=2, limited=True, rate_limit="1/s")
    make("READY", queue="other")

    data = json.loads(djtasks("status", "--json"))

    assert data["queues"]["other"]["ready"] == 3


# --- retry / cancel / delete ----------------------------------------------


def test_retry_puts_back_the_filtered_failed_jobs_only():
    target = make("FAILED", task="tests.tasks.failing", count=3)
    make("FAILED", task="tests.tasks.noop", count=2)
    make("FAILED", task="tests.tasks.failing", queue="emails")
    make("SUCCESSFUL", task="tests.tasks.failing")

    out = djtasks("retry", "--status", "failed", "--task", "tests.tasks.failing", "--queue=default")

    assert out.strip() == "Retried 3 jobs."
    ready = set(Job.objects.filter(status=JobStatus.READY).values_list("pk", flat=True))
    assert ready == {job.pk for job in target}


def test_since_keeps_only_recent_jobs():
    recent = make("FAILED")
    make("FAILED", enqueued_at=timezone.now() - timedelta(hours=3))

    assert djtasks("retry", "--since", "1h").strip() == "Retried 1 job."
    assert list(Job.objects.filter(status="READY").values_list("pk", flat=True)) == [recent[0].pk]


def test_dry_run_counts_and_changes_nothing():
    make("FAILED", count=5)
    before = snapshot()

    out = djtasks("retry", "--status", "FAILED", "--dry-run")

    assert "5 jobs would be changed" in out
    assert snapshot() == before


def test_cancel_cancels_ready_jobs_and_asks_running_ones_to_stop():
    make("READY", queue="emails", count=2)
    worker = Worker.objects.create(id="w1", hostname="h", pid=1)
    make("RUNNING", queue="emails", worker=worker)
    make("READY", queue="default")

    out = djtasks("cancel", "--queue", "emails")

    assert out.strip() == "Cancelled 2 jobs; asked 1 running job to stop."
    assert Job.objects.filter(status="CANCELLED", queue_name="emails").count() == 2
    assert Job.objects.get(status="RUNNING").cancel_requested_at is not None
    assert Job.objects.filter(status="READY", queue_name="default").count() == 1


def test_a_filter_that_matches_nothing_changes_nothing_and_says_so():
    make("READY", count=2)

    assert djtasks("cancel", "--queue", "emails").strip() == (
        "Cancelled 0 jobs; asked 0 running jobs to stop."
    )
    assert djtasks("retry", "--status", "FAILED").strip() == "Retried 0 jobs."
    assert Job.objects.filter(status="READY").count() == 2


def test_delete_removes_the_filtered_jobs():
    make("SUCCESSFUL", count=4)
    make("FAILED", count=1)

    assert djtasks("delete", "--status", "SUCCESSFUL").strip() == "Deleted 4 jobs."
    assert list(Job.objects.values_list("status", flat=True)) == ["FAILED"]


def test_bulk_subcommands_work_in_batches(monkeypatch):
    make("FAILED", count=25)
    batches = []
    real = bulk.apply_in_batches

    def spy(jobs, operation, **options):
        def counted(batch):
            batches.append(batch.count())
            return operation(batch)

        return real(jobs, counted, **{**options, "batch_size": 10})

    monkeypatch.setattr("djtasks.cli._bulk.apply_in_batches", spy)

    assert djtasks("retry", "--status", "FAILED").strip() == "Retried 25 jobs."
    assert batches == [10, 10, 5]


def test_a_removed_task_can_still_be_filtered_by_its_stored_path():
    make("FAILED", task="gone.tasks.old", count=2)

    assert djtasks("delete", "--task", "gone.tasks.old").strip() == "Deleted 2 jobs."


# --- enqueue --------------------------------------------------------------


def test_enqueue_makes_one_job_with_the_given_call():
    out = djtasks(
        "enqueue", "tests.tasks.echo", '[1, "two"]', "--kwargs", '{"x": null}',
        "--queue", "emails", "--priority", "7", "--delay", "10m",
    )  # fmt: skip

    job = Job.objects.get()
    assert str(job.pk) in out
    assert (job.task_path, job.args, job.kwargs) == ("tests.tasks.echo", [1, "two"], {"x": None})
    assert (job.queue_name, job.priority) == ("emails", 7)
    assert timedelta(minutes=9) < job.available_at - timezone.now() <= timedelta(minutes=10)


def test_enqueue_without_arguments_uses_the_task_defaults():
    djtasks("enqueue", "tests.tasks.noop")

    job = Job.objects.get()
    assert (job.args, job.kwargs, job.queue_name, job.priority) == ([], {}, "default", 0)


# --- bad input: exit status 2, a clear message, nothing changed -------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "tests.tasks.nope"], "is not a registered task"),
        (["enqueue", "os.system", '["true"]'], "is not a registered task"),
        (["enqueue", "tests.tasks.add", "[1,"], "ARGS is not valid JSON"),
        (["enqueue", "tests.tasks.add", '{"a": 1}'], "ARGS must be a JSON array"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--kwargs", "{x"], "--kwargs is not valid JSON"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--kwargs", "[]"], "must be a JSON object"),
        (["enqueue", "tests.tasks.add", "[1, 2, 3]"], "Arguments do not fit"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--queue", "nope"], "'nope' is not valid"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--priority", "500"], "priority"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--priority", "high"], "invalid int value"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--delay", "soon"], "is not a duration"),
        (["retry", "--status", "BROKEN"], "invalid choice: 'BROKEN'"),
        (["retry", "--queue", "nope"], "Unknown queue 'nope'"),
        (["cancel", "--task", "tests.tasks.nope"], "Unknown task 'tests.tasks.nope'"),
        (["delete", "--since", "yesterday"], "is not a duration"),
        (["delete"], "Give at least one filter"),
        (["retry", "--dry-run"], "Give at least one filter"),
        (["status", "--backend", "nope"], "Unknown task backend 'nope'"),
        (["health", "--backend", "nope"], "Unknown task backend 'nope'"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(args, message):
    make("FAILED", count=2)
    make("READY", count=2)

    assert message in refused(*args)


def test_refused_input_has_exit_status_two():
    with pytest.raises(CommandError) as caught:
        djtasks("delete")
    assert caught.value.returncode == 2


# --- health ---------------------------------------------------------------


def health(*args):
    out = StringIO()
    try:
        call_command("djtasks", "health", *args, stdout=out)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


def test_health_is_zero_with_a_beating_worker_on_this_host():
    import socket

    Worker.objects.create(id="w1", hostname=socket.gethostname(), pid=7)

    status, out = health()

    assert status == 0
    assert out.startswith("healthy: worker") and ":7 beat" in out


def test_health_is_one_without_a_worker_or_with_a_stale_or_stopped_one():
    import socket

    host = socket.gethostname()
    Worker.objects.create(
        id="stale", hostname=host, pid=1, last_heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    Worker.objects.create(id="stopped", hostname=host, pid=2, stopped_at=timezone.now())

    status, out = health()

    assert status == 1
    assert out.startswith("unhealthy: no worker process on host") and "STALE_AFTER" in out


def test_health_any_host_accepts_a_worker_elsewhere():
    Worker.objects.create(id="far", hostname="elsewhere.example", pid=3)

    assert health()[0] == 1
    assert health("--any-host")[0] == 0


def test_status_shows_paused_queues_and_tasks():
    from djtasks.control import queues

    queues.pause_queue("emails", by="test")
    queues.pause_task("tests.tasks.add", by="test")

    data = json.loads(djtasks("status", "--json"))

    assert data["queues"]["emails"]["paused"] is True
    assert data["queues"]["default"]["paused"] is False
    assert data["paused_tasks"] == ["tests.tasks.add"]
    text = djtasks("status")
    assert any(line.split()[0] == "emails" and "PAUSED" in line for line in text.splitlines())
    assert "Paused tasks: tests.tasks.add" in text
