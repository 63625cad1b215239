"""The admin's per-backend views: two TASKS aliases on one database (tests.settings)."""

import pytest
from django.urls import reverse

from djtasks.admin.backends import djtasks_aliases
from djtasks.models import Worker
from tests import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs_of_both():
    return {
        "default": tasks.add.enqueue(1, 1).id,
        "second": tasks.add.using(backend="second").enqueue(2, 2).id,
    }


def listed_ids(response) -> set[str]:
    return {str(job.pk) for job in response.context["cl"].result_list}


def test_the_djtasks_aliases_are_the_settings():
    assert djtasks_aliases() == ["default", "second"]


def test_the_job_list_filters_by_backend(admin_client, jobs_of_both):
    url = reverse("admin:djtasks_job_changelist")

    everything = admin_client.get(url)
    second = admin_client.get(url, {"backend": "second"})

    assert listed_ids(everything) == set(jobs_of_both.values())
    assert listed_ids(second) == {jobs_of_both["second"]}
    assert "?backend=second" in everything.content.decode()


def test_the_backend_filter_is_hidden_with_one_alias(admin_client, settings, jobs_of_both):
    settings.TASKS = {"default": settings.TASKS["default"]}

    response = admin_client.get(reverse("admin:djtasks_job_changelist"))

    assert "?backend=" not in response.content.decode()


def test_the_dashboard_counts_one_backend_when_asked(admin_client, jobs_of_both):
    url = reverse("admin:djtasks_dashboard")
    tasks.add.using(backend="second").enqueue(3, 3)

    everything = admin_client.get(url).context
    second = admin_client.get(url, {"backend": "second"}).context

    def ready(context):
        return dict(context["status_totals"])["READY"]

    assert (ready(everything), ready(second)) == (3, 2)
    assert [row["ready"] for row in second["oldest_ready"]] == [2]
    assert second["backends"] == ["default", "second"]
    body = admin_client.get(url, {"backend": "second"}).content.decode()
    assert "status__exact=READY&amp;backend=second" in body


def test_the_dashboard_refuses_an_unknown_backend(admin_client):
    response = admin_client.get(reverse("admin:djtasks_dashboard"), {"backend": "nowhere"})

    assert response.status_code == 404


def test_the_worker_list_filters_by_backend(admin_client):
    Worker.objects.create(id="w-default", hostname="h", pid=1, backend="default")
    Worker.objects.create(id="w-second", hostname="h", pid=2, backend="second")

    response = admin_client.get(reverse("admin:djtasks_worker_changelist"), {"backend": "second"})

    assert [worker.pk for worker in response.context["cl"].result_list] == ["w-second"]


@pytest.fixture
def second_elsewhere(settings):
    """The alias "second" keeps its jobs in another database (never read here)."""
    settings.TASKS = {
        **settings.TASKS,
        "second": {**settings.TASKS["second"], "OPTIONS": {"DATABASE": "elsewhere"}},
    }


def test_a_backend_on_another_database_is_no_choice_but_named(admin_client, second_elsewhere):
    # The admin reads the default database only: a "second" choice would
    # always list nothing.
    assert djtasks_aliases() == ["default"]
    jobs = admin_client.get(reverse("admin:djtasks_job_changelist")).content.decode()
    assert "?backend=" not in jobs

    dashboard = admin_client.get(reverse("admin:djtasks_dashboard"))

    assert dashboard.context["backends_elsewhere"] == [("second", "elsewhere")]
    assert "manage.py djtasks status --backend second" in dashboard.content.decode()
    refused = admin_client.get(reverse("admin:djtasks_dashboard"), {"backend": "second"})
    assert refused.status_code == 404
