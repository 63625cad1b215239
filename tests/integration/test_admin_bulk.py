"""The admin's "retry / cancel / delete all matching": every job of the filter, in batches."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from djtasks.control import bulk
from djtasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db

LIST = "/admin/djtasks/job/"
MATCHING = "status__exact=FAILED&task=tests.tasks.failing"


def bulk_url(operation, query=MATCHING):
    return reverse("admin:djtasks_job_bulk", args=[operation]) + "?" + query


@pytest.fixture
def admin(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def failed_jobs(count):
    """``count`` failed jobs of one task, and two jobs the filter must leave alone."""
    now = timezone.now()
    Job.objects.bulk_create(
        Job(task_path="tests.tasks.failing", status=JobStatus.FAILED, finished_at=now)
        for _ in range(count)
    )
    Job.objects.bulk_create(
        [Job(task_path="tests.tasks.noop", status=JobStatus.FAILED, finished_at=now)]
        + [Job(task_path="tests.tasks.failing", status=JobStatus.SUCCESSFUL, finished_at=now)]
    )


@pytest.fixture
def five_thousand():
    failed_jobs(5_000)


@pytest.fixture
def some_failed():
    failed_jobs(20)


def test_the_confirmation_states_how_many_jobs_match(admin, five_thousand):
    response = admin.get(bulk_url("retry"))

    assert response.status_code == 200
    text = response.content.decode()
    assert "Retry all <strong>5000</strong> jobs matching this filter?" in text
    assert "task: tests.tasks.failing" in text
    assert Job.objects.filter(status=JobStatus.READY).count() == 0  # a GET changes nothing


def test_confirming_retries_every_matching_job_in_batches(admin, five_thousand, monkeypatch):
    batches = []
    real = bulk.apply_in_batches

    def counted(jobs, operation, **options):
        def spy(batch):
            batches.append(batch.count())
            return operation(batch)

        return real(jobs, spy, **options)

    monkeypatch.setattr("djtasks.admin.bulk.apply_in_batches", counted)

    response = admin.post(bulk_url("retry"), {"confirm": "yes"}, follow=True)

    assert "5000 jobs put back to ready." in response.content.decode()
    assert Job.objects.filter(task_path="tests.tasks.failing", status="READY").count() == 5_000
    assert batches == [1000] * 5
    # Outside the filter: untouched.
    assert Job.objects.get(task_path="tests.tasks.noop").status == JobStatus.FAILED
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 1
    assert response.redirect_chain[-1][0] == LIST + "?" + MATCHING


def test_cancel_all_matching(admin):
    Job.objects.bulk_create(
        Job(task_path="tests.tasks.noop", queue_name="emails") for _ in range(30)
    )
    Job.objects.bulk_create(Job(task_path="tests.tasks.noop") for _ in range(3))

    admin.post(bulk_url("cancel", "queue=emails"), {"confirm": "yes"})

    assert Job.objects.filter(status="CANCELLED", queue_name="emails").count() == 30
    assert Job.objects.filter(status="READY").count() == 3


def test_delete_all_matching_a_search(admin):
    Job.objects.bulk_create(Job(task_path="tests.tasks.echo", status="FAILED") for _ in range(12))
    Job.objects.create(task_path="tests.tasks.noop", status="FAILED")

    admin.post(bulk_url("delete", "q=echo"), {"confirm": "yes"})

    assert list(Job.objects.values_list("task_path", flat=True)) == ["tests.tasks.noop"]


def test_without_a_filter_nothing_is_offered_or_done(admin):
    Job.objects.create(task_path="tests.tasks.noop", status="FAILED")

    assert "Retry all matching" not in admin.get(LIST).content.decode()
    response = admin.post(bulk_url("delete", ""), {"confirm": "yes"}, follow=True)

    assert "Choose a filter or a search first" in response.content.decode()
    assert Job.objects.count() == 1


def test_the_filtered_list_links_to_the_bulk_pages(admin, some_failed):
    text = admin.get(LIST + "?" + MATCHING).content.decode()

    for operation in ("retry", "cancel", "delete"):
        assert bulk_url(operation).replace("&", "&amp;") in text


def test_a_bad_filter_is_refused_without_changes(admin, some_failed):
    response = admin.post(bulk_url("delete", "no_such_field=1"), {"confirm": "yes"}, follow=True)

    assert "not one the job list offers" in response.content.decode()
    assert Job.objects.count() == 22


def test_viewers_may_not_act_and_see_no_links(client, django_user_model, some_failed):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)

    assert "all matching" not in client.get(LIST + "?" + MATCHING).content.decode()
    for operation in ("retry", "cancel", "delete"):
        assert client.get(bulk_url(operation)).status_code == 403
        assert client.post(bulk_url(operation), {"confirm": "yes"}).status_code == 403
    assert Job.objects.filter(status="FAILED").count() == 21


def test_change_permission_alone_does_not_delete(client, django_user_model, some_failed):
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_job"))
    client.force_login(user)

    text = client.get(LIST + "?" + MATCHING).content.decode()
    assert "Retry all matching" in text and "Delete all matching" not in text
    assert client.post(bulk_url("delete"), {"confirm": "yes"}).status_code == 403
    assert Job.objects.count() == 22


def test_an_unknown_operation_is_not_found(admin):
    assert admin.get(bulk_url("explode")).status_code == 404
