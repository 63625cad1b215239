"""manage.py djtasks as a shell runs it: exit statuses, and `health` against a real worker."""

import subprocess
import sys

import pytest
from django.db import connection

from djtasks.models import Job, Worker
from tests.acceptance.conftest import ROOT, database_url, wait_for, worker_environment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def djtasks_command(fast_settings_dir):
    """Run ``manage.py djtasks *args`` in a subprocess with the workers' settings."""

    def run(*args, url=None):
        env = worker_environment(fast_settings_dir, url or database_url(connection.settings_dict))
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "djtasks", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "tests.tasks.nope"], "is not a registered task"),
        (["enqueue", "tests.tasks.add", "[1,"], "is not valid JSON"),
        (["enqueue", "tests.tasks.add", "[1, 2]", "--queue", "nope"], "'nope' is not valid"),
        (["retry", "--status", "BROKEN"], "invalid choice"),
        (["cancel", "--queue", "nope"], "Unknown queue 'nope'"),
        (["delete", "--since", "soon"], "is not a duration"),
        (["delete"], "Give at least one filter"),
        (["status", "--backend", "nope"], "Unknown task backend"),
    ],
)
def test_bad_input_exits_two_with_its_reason_and_changes_nothing(djtasks_command, args, message):
    Job.objects.create(task_path="tests.tasks.noop", status="FAILED")

    finished = djtasks_command(*args)

    assert finished.returncode == 2, finished
    assert message in finished.stderr
    assert "Traceback" not in finished.stderr
    assert list(Job.objects.values_list("status", flat=True)) == ["FAILED"]


def test_enqueue_and_retry_exit_zero(djtasks_command):
    enqueued = djtasks_command("enqueue", "tests.tasks.add", "[2, 3]")
    retried = djtasks_command("retry", "--status", "FAILED")

    assert enqueued.returncode == 0, enqueued
    assert Job.objects.get().args == [2, 3]
    assert (retried.returncode, retried.stdout.strip()) == (0, "Retried 0 jobs.")


def test_health_follows_a_live_worker_and_its_sigkill(djtasks_command, start_worker):
    before = djtasks_command("health")
    assert before.returncode == 1, before
    assert before.stdout.startswith("unhealthy: no worker process on host")

    worker = start_worker("--processes", "1")
    wait_for(lambda: Worker.objects.filter(stopped_at__isnull=True).exists(), 30, "a worker row")
    alive = djtasks_command("health")
    assert alive.returncode == 0, (alive, worker.log())
    assert alive.stdout.startswith("healthy: worker")

    worker.kill_group()  # supervisor and child: nobody marks the row stopped

    # STALE_AFTER is 2 s in the workers' settings: health turns 1 once it passes.
    def unhealthy():
        finished = djtasks_command("health")
        return finished if finished.returncode == 1 else None

    dead = wait_for(unhealthy, 60, "health to report the killed worker")
    assert "beat within STALE_AFTER (2s)" in dead.stdout
    assert djtasks_command("health", "--any-host").returncode == 1


def test_health_is_one_when_the_database_does_not_answer(djtasks_command):
    # Port 1: nothing listens there, the connection is refused at once.
    finished = djtasks_command("health", url="postgres://postgres@127.0.0.1:1/nothing")

    assert finished.returncode == 1, finished
    assert finished.stdout.startswith("unhealthy: the database did not answer")
    assert len(finished.stdout.strip().splitlines()) == 1
