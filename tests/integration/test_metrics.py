"""The Prometheus endpoint: its figures, read from the rows, and who may read it."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from djtasks.models import Job, Worker

pytestmark = pytest.mark.django_db

URL = "/djtasks/metrics"
SECRET_ARGUMENT = "do-not-leak-4f1c"


def samples(text: str) -> dict:
    """{(sample name, frozenset of labels): value}"""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def staff_client(client):
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def some_jobs():
    now = timezone.now()
    worker = Worker.objects.create(id="w1", hostname="alpha", pid=1)
    Worker.objects.create(
        id="w2", hostname="beta", pid=2, last_heartbeat_at=now - timedelta(minutes=10)
    )
    Job.objects.bulk_create(
        [
            Job(
                task_path="tests.tasks.echo",
                queue_name="emails",
                args=[SECRET_ARGUMENT],
                kwargs={"token": SECRET_ARGUMENT},
                available_at=now - timedelta(seconds=90),
            ),
            Job(task_path="tests.tasks.echo", queue_name="emails"),
            Job(task_path="tests.tasks.noop", status="RUNNING", worker=worker),
            *[
                Job(
                    task_path="tests.tasks.add",
                    status=status,
                    last_attempted_at=now - timedelta(seconds=seconds),
                    finished_at=now,
                )
                for status, seconds in [("SUCCESSFUL", 0.02), ("SUCCESSFUL", 2), ("FAILED", 20)]
            ],
            # Finished before the window: not in the recent counts.
            Job(
                task_path="tests.tasks.add",
                status="FAILED",
                last_attempted_at=now - timedelta(hours=2),
                finished_at=now - timedelta(hours=1),
            ),
        ]
    )


def test_staff_read_the_figures_of_every_host(staff_client, some_jobs):
    response = staff_client.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    found = samples(text)

    def value(name, **labels):
        return found[(name, frozenset(labels.items()))]

    assert value("djtasks_jobs", queue="emails", status="READY") == 2
    assert value("djtasks_jobs", queue="default", status="RUNNING") == 1
    assert value("djtasks_jobs", queue="other", status="READY") == 0  # a configured queue
    assert value("djtasks_jobs_due", queue="emails") == 2
    assert 85 < value("djtasks_oldest_ready_age_seconds", queue="emails") < 300
    assert value("djtasks_workers_alive", host="alpha") == 1
    assert value("djtasks_workers_alive", host="beta") == 0
    assert value("djtasks_jobs_finished_recent", task="tests.tasks.add", status="SUCCESSFUL") == 2
    assert value("djtasks_jobs_finished_recent", task="tests.tasks.add", status="FAILED") == 1
    histogram = {"task": "tests.tasks.add"}
    assert value("djtasks_attempt_duration_seconds_count", **histogram) == 3
    assert value("djtasks_attempt_duration_seconds_bucket", le="0.05", **histogram) == 1
    assert value("djtasks_attempt_duration_seconds_bucket", le="5.0", **histogram) == 2
    assert value("djtasks_attempt_duration_seconds_bucket", le="+Inf", **histogram) == 3
    assert 21.9 < value("djtasks_attempt_duration_seconds_sum", **histogram) < 22.2
    assert SECRET_ARGUMENT not in text


def test_anonymous_and_non_staff_users_are_refused(client, some_jobs):
    assert client.get(URL).status_code == 401
    client.force_login(User.objects.create_user("someone", password="pw"))
    response = client.get(URL)
    assert response.status_code == 401
    assert b"djtasks_jobs" not in response.content


def test_the_bearer_token_admits_a_scraper(client, settings, some_jobs):
    settings.DJTASKS = {"METRICS_TOKEN": "s3cret-token"}

    assert client.get(URL, headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert client.get(URL, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(URL, headers={"Authorization": "s3cret-token"}).status_code == 401
    assert client.get(URL).status_code == 401


def test_no_token_is_configured_by_default_so_an_empty_bearer_is_refused(client):
    assert client.get(URL, headers={"Authorization": "Bearer "}).status_code == 401


def test_backend_picks_the_database_whose_figures_are_shown(staff_client, some_jobs):
    # "second" shares the default database (tests.settings): the same rows
    # counted (its QUEUES, the idle queues shown, differ).
    second = staff_client.get(URL, {"backend": "second"})

    assert second.status_code == 200
    ready_emails = ("djtasks_jobs", frozenset({"queue": "emails", "status": "READY"}.items()))
    assert samples(second.content.decode())[ready_emails] == 2
    assert staff_client.get(URL, {"backend": "nowhere"}).status_code == 404
    # The settings are not told to whoever may not read the figures.
    assert Client().get(URL, {"backend": "nowhere"}).status_code == 401


def test_only_get_is_served(staff_client):
    assert staff_client.post(URL).status_code == 405


def test_paused_queues_and_tasks_are_shown(staff_client):
    from djtasks.control import queues

    queues.pause_queue("emails", by="test")
    queues.pause_task("tests.tasks.add", by="test")

    found = samples(staff_client.get(URL).content.decode())

    assert found[("djtasks_queue_paused", frozenset({("queue", "emails")}))] == 1
    assert found[("djtasks_queue_paused", frozenset({("queue", "default")}))] == 0
    assert found[("djtasks_task_paused", frozenset({("task", "tests.tasks.add")}))] == 1
