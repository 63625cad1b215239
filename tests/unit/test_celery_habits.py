"""Celery habits on a djtasks task fail with a message naming the djtasks way."""

import copy

import pytest

import djtasks
from tests import tasks


@pytest.mark.parametrize("task", [tasks.add, tasks.std_add], ids=["djtasks.task", "standard"])
def test_delay_names_enqueue(task):
    with pytest.raises(AttributeError, match=r"'delay'.*write task\.enqueue\(\*args, \*\*kwargs\)"):
        task.delay(1, 2)


def test_apply_async_names_using_run_after():
    with pytest.raises(AttributeError, match=r"task\.using\(run_after=timedelta\(seconds=60\)"):
        tasks.add.apply_async((1, 2), countdown=60)


def test_celerys_methods_are_not_added():
    assert not hasattr(tasks.add, "delay")
    assert not hasattr(tasks.add, "apply_async")


def test_other_missing_attributes_fail_as_usual():
    with pytest.raises(AttributeError) as raised:
        tasks.add.no_such_thing  # noqa: B018 - the lookup is the test

    assert str(raised.value) == "'DatabaseTask' object has no attribute 'no_such_thing'"
    assert raised.value.name == "no_such_thing"


def test_a_task_still_copies():
    # copy looks up optional dunder methods (__copy__, ...), which must
    # still be missing rather than answered.
    assert copy.copy(tasks.add) == tasks.add


@pytest.mark.parametrize(
    ("option", "value", "instead"),
    [
        ("countdown", 60, r"Celery's countdown= is run_after=timedelta\(seconds=\.\.\.\)"),
        ("eta", "tomorrow", r"Celery's eta= is run_after=<an aware datetime>"),
        ("queue", "emails", r"Celery's queue= is queue_name="),
    ],
)
def test_using_with_a_celery_option_names_the_djtasks_option(option, value, instead):
    with pytest.raises(TypeError, match=rf"Unknown task option\(s\): {option}\. {instead}"):
        tasks.add.using(**{option: value})


def test_the_decorator_names_the_djtasks_option_too():
    with pytest.raises(TypeError, match=r"max_retries= is max_attempts=\.\.\. \(retries \+ 1\)"):

        @djtasks.task(max_retries=3)
        def charge():
            pass


def test_an_unknown_option_that_is_no_celery_habit_gets_the_plain_message():
    with pytest.raises(TypeError) as raised:
        tasks.add.using(colour="blue")

    assert str(raised.value) == "Unknown task option(s): colour."
