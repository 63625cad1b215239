"""The workers admin: state from the heartbeat, running jobs."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from djtasks.admin.workers import ALIVE, STALE, STOPPED, state_of
from djtasks.conf import settings
from djtasks.models import Job, JobStatus, Worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def workers():
    now = timezone.now()
    stale_age = timedelta(seconds=settings.STALE_AFTER + 5)
    return {
        ALIVE: Worker.objects.create(
            id="alive-1", hostname="web1", pid=11, queues=["default", "emails"], concurrency=4
        ),
        STALE: Worker.objects.create(
            id="stale-1", hostname="web2", pid=22, last_heartbeat_at=now - stale_age
        ),
        STOPPED: Worker.objects.create(id="stopped-1", hostname="web3", pid=33, stopped_at=now),
    }


def test_state_of_each_worker(workers):
    for state, worker in workers.items():
        assert state_of(worker) == state


def test_list_shows_host_pid_queues_state_and_running_count(admin_client, workers):
    Job.objects.create(
        task_path="tests.tasks.noop", status=JobStatus.RUNNING, worker=workers[ALIVE]
    )
    response = admin_client.get(reverse("admin:djtasks_worker_changelist"))
    body = response.content.decode()
    assert "web1" in body and "default, emails" in body
    rows = {worker.pk: worker for worker in response.context["cl"].result_list}
    assert rows["alive-1"].running == 1
    assert rows["stale-1"].running == 0
    for state in (ALIVE, STALE, STOPPED):
        assert f">{state}</span>" in body


@pytest.mark.parametrize("state", [ALIVE, STALE, STOPPED])
def test_state_filter(admin_client, workers, state):
    response = admin_client.get(reverse("admin:djtasks_worker_changelist"), {"state": state})
    assert [w.pk for w in response.context["cl"].result_list] == [workers[state].pk]


def test_detail_lists_the_running_jobs(admin_client, workers):
    running = Job.objects.create(
        task_path="tests.tasks.sleeping", status=JobStatus.RUNNING, worker=workers[ALIVE]
    )
    Job.objects.create(
        task_path="tests.tasks.noop", status=JobStatus.SUCCESSFUL, worker=workers[ALIVE]
    )
    page = admin_client.get(reverse("admin:djtasks_worker_change", args=["alive-1"]))
    body = page.content.decode()
    assert reverse("admin:djtasks_job_change", args=[running.pk]) in body
    assert body.count("tests.tasks.") == 1
    assert 'name="_save"' not in body


def test_records_of_stopped_workers_can_be_deleted(admin_client, workers):
    admin_client.post(
        reverse("admin:djtasks_worker_changelist"),
        {"action": "delete_selected", "_selected_action": ["stopped-1"], "post": "yes"},
    )
    assert not Worker.objects.filter(pk="stopped-1").exists()


def test_a_live_worker_cannot_be_deleted_but_a_stopped_one_can(admin_client, workers):
    alive_delete = reverse("admin:djtasks_worker_delete", args=[workers[ALIVE].pk])
    assert admin_client.post(alive_delete, {"post": "yes"}).status_code == 403
    stopped_delete = reverse("admin:djtasks_worker_delete", args=[workers[STOPPED].pk])
    assert admin_client.post(stopped_delete, {"post": "yes"}).status_code == 302
    assert set(Worker.objects.values_list("pk", flat=True)) == {"alive-1", "stale-1"}


def test_the_bulk_delete_action_refuses_a_selection_with_a_live_worker(admin_client, workers):
    def delete(selected):
        return admin_client.post(
            reverse("admin:djtasks_worker_changelist"),
            {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
        )

    delete([worker.pk for worker in workers.values()])
    assert Worker.objects.count() == 3
    delete([workers[STALE].pk, workers[STOPPED].pk])
    assert list(Worker.objects.values_list("pk", flat=True)) == ["alive-1"]
