"""Tasks defined through the django-tasks backport, as some libraries (Wagtail)
do even on Django 6. Imported only by tests/integration/test_backport_tasks.py."""

from django_tasks import task
from django_tasks.base import Task


@task
def multiply(a, b):
    return a * b


@task(takes_context=True)
def attempt_number(context):
    return context.attempt


def fails():
    raise ValueError("backport task failed on purpose")


# A Task of the backport's own class (what a backend whose task_class is the
# backport's gives), not djtasks' DatabaseTask.
fails_task = Task(func=fails, backend="default")
