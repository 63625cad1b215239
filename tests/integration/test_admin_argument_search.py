"""Searching the job list by a value in the arguments: arg:VALUE and kwarg:NAME=VALUE."""

import pytest

from djtasks.models import Job

pytestmark = pytest.mark.django_db

LIST = "/admin/djtasks/job/"


@pytest.fixture
def admin(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def jobs():
    made = {
        "number": Job.objects.create(task_path="tests.tasks.echo", args=[7, 42]),
        "string": Job.objects.create(task_path="tests.tasks.echo", args=["42", "ada@example.com"]),
        "keyword": Job.objects.create(task_path="tests.tasks.echo", kwargs={"user_id": 42}),
        "nested": Job.objects.create(task_path="tests.tasks.echo", kwargs={"contains": "x"}),
        "other": Job.objects.create(task_path="tests.tasks.echo", args=[1], kwargs={"user_id": 9}),
    }
    return {name: job.pk for name, job in made.items()}


def found(admin, term) -> set:
    response = admin.get(LIST, {"q": term})
    assert response.status_code == 200
    return {job.pk for job in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("arg:42", {"number"}),  # the number, in the second position
        ('arg:"42"', {"string"}),  # the string
        ("arg:ada@example.com", {"string"}),  # not JSON: a string
        ("kwarg:user_id=42", {"keyword"}),
        ("kwarg:user_id=9", {"other"}),
        ("kwarg:contains=x", {"nested"}),  # a key named like a lookup is a key
        ("arg:1000", set()),
    ],
)
def test_a_value_in_the_arguments_finds_its_jobs(admin, jobs, term, expected):
    assert found(admin, term) == {jobs[name] for name in expected}


def test_a_keyword_search_without_a_value_says_how_to_write_it(admin, jobs):
    response = admin.get(LIST, {"q": "kwarg:user_id"}, follow=True)

    assert not response.context["cl"].result_list
    assert "kwarg:NAME=VALUE" in response.content.decode()


def test_other_searches_still_work(admin, jobs):
    assert found(admin, "echo") == set(jobs.values())
