"""manage.py djtasks pause / resume / limit: what they store, and their bad-input paths."""

import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from djtasks.models import Control, ControlKind
from tests.acceptance.conftest import ROOT

pytestmark = pytest.mark.django_db

NOOP = "tests.tasks.noop"


def djtasks_command(*args) -> str:
    out = io.StringIO()
    call_command("djtasks", *args, stdout=out)
    return out.getvalue()


def test_pause_and_resume_a_queue():
    assert "Paused queue emails" in djtasks_command("pause", "emails")
    control = Control.objects.get(kind=ControlKind.QUEUE, name="emails")
    assert control.paused and control.changed_by.startswith("cli")

    assert "Resumed queue emails" in djtasks_command("resume", "emails")
    assert not Control.objects.get(kind=ControlKind.QUEUE, name="emails").paused


def test_pause_and_resume_a_task():
    djtasks_command("pause", "--task", NOOP)
    assert Control.objects.get(kind=ControlKind.TASK, name=NOOP).paused
    djtasks_command("resume", "--task", NOOP)
    assert not Control.objects.get(kind=ControlKind.TASK, name=NOOP).paused


def test_limit_sets_shows_and_clears_a_queues_overrides(settings):
    settings.DJTASKS = {"QUEUE_RATE_LIMITS": {"emails": "50/m"}}

    out = djtasks_command("limit", "emails", "--concurrency", "3", "--rate", "100/m")

    assert "rate limit: 100/m (stored; default 50/m)" in out
    assert "concurrency limit: 3 (stored)" in out
    control = Control.objects.get(kind=ControlKind.QUEUE, name="emails")
    assert (control.rate_limit, control.concurrency_limit) == ("100/m", 3)

    out = djtasks_command("limit", "emails", "--rate", "default")
    assert "rate limit: 50/m (default)" in out
    assert "concurrency limit: 3 (stored)" in out

    djtasks_command("limit", "emails", "--concurrency", "default")
    assert "concurrency limit: none (default)" in djtasks_command("limit", "emails")


def test_limit_a_tasks_rate():
    out = djtasks_command("limit", "--task", NOOP, "--rate", "10/s")
    assert "rate limit: 10/s" in out
    assert Control.objects.get(kind=ControlKind.TASK, name=NOOP).rate_limit == "10/s"


def test_backend_picks_the_database_of_the_controls():
    # "second" shares the default database (tests.settings): one control
    # row, which the workers of both backends read.
    assert "Paused queue emails" in djtasks_command("pause", "emails", "--backend", "second")
    assert Control.objects.get(kind=ControlKind.QUEUE, name="emails").paused
    out = djtasks_command("limit", "emails", "--rate", "5/s", "--backend", "second")
    assert "rate limit: 5/s (stored" in out


def test_a_queue_served_only_on_another_database_is_refused(settings):
    # Its workers read the controls of their own database: a row here
    # would steer nobody.
    settings.TASKS = {
        **settings.TASKS,
        "second": {
            **settings.TASKS["second"],
            "QUEUES": ["reports"],
            "OPTIONS": {"DATABASE": "elsewhere"},
        },
    }

    with pytest.raises(CommandError, match="backends on database .default. serve: de") as raised:
        djtasks_command("pause", "reports")

    assert raised.value.returncode == 2
    assert not Control.objects.exists()


BAD_INPUT = [
    (("pause", "nope"), "Unknown queue 'nope'"),
    (("pause",), "Give a QUEUE or --task PATH"),
    (("pause", "emails", "--task", NOOP), "Give a QUEUE or --task PATH"),
    (("resume", "--task", "os.system"), "'os.system' is not a registered task"),
    (("resume", "nope"), "Unknown queue 'nope'"),
    (("limit", "nope", "--rate", "1/s"), "Unknown queue 'nope'"),
    (("limit", "emails", "--rate", "fast"), "'fast' is not a rate limit"),
    (("limit", "emails", "--rate", "0/m"), "is not a rate limit"),
    (("limit", "emails", "--concurrency", "0"), "not a concurrency limit"),
    (("limit", "emails", "--concurrency", "many"), "'many' is not a concurrency limit"),
    (("limit", "--task", NOOP, "--concurrency", "2"), "--concurrency limits a queue"),
    (("limit", "--task", "tests.tasks.nothing", "--rate", "1/s"), "not a registered task"),
    (("pause", "emails", "--backend", "nope"), "Unknown task backend 'nope'"),
    (("limit", "emails", "--backend", "nope"), "Unknown task backend 'nope'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_refused_with_status_2_and_changes_nothing(args, message):
    with pytest.raises(CommandError, match=message) as raised:
        djtasks_command(*args)
    assert raised.value.returncode == 2
    assert not Control.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_real_command_exits_2_with_the_message(tmp_path):
    from django.db import connection

    from tests.acceptance.conftest import database_url

    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "djtasks", "pause", "no-such-queue"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Unknown queue 'no-such-queue'" in done.stderr
