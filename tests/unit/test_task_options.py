"""DatabaseTask: djtasks' options on the standard Task, through both decorators."""

from datetime import timedelta

import django
import pytest

import djtasks
from djtasks.compat import InvalidTask, Task
from djtasks.enqueue.task import DatabaseTask
from tests import tasks


def test_both_decorators_make_a_standard_task_with_djtasks_options():
    with_options = [tasks.std_with_options] if tasks.std_with_options is not None else []
    for task in (tasks.add, tasks.std_add, tasks.with_options, *with_options):
        assert isinstance(task, DatabaseTask)
        assert isinstance(task, Task)


def test_only_django_6_0s_standard_decorator_refuses_djtasks_options():
    # Django 6.1 and the backport forward extra options to the task class.
    assert (tasks.std_with_options is None) == (django.VERSION[:2] == (6, 0))


def test_option_defaults():
    task = tasks.noop

    assert (task.max_attempts, task.backoff, task.timeout, task.expires) == (1, None, None, None)
    assert (task.retry_on, task.unique, task.unique_key, task.jitter) == ((), False, None, True)


def test_options_given_to_the_decorator():
    task = tasks.with_options

    assert task.max_attempts == 5
    assert task.retry_on == (ValueError,)
    assert task.expires == timedelta(minutes=5)


def test_retry_on_accepts_one_class_or_a_list():
    assert tasks.noop.using(retry_on=KeyError).retry_on == (KeyError,)
    assert tasks.noop.using(retry_on=[KeyError, OSError]).retry_on == (KeyError, OSError)


def test_using_keeps_the_other_options():
    changed = tasks.with_options.using(priority=3, max_attempts=2)

    assert (changed.priority, changed.max_attempts, changed.timeout) == (3, 2, 30)
    assert tasks.with_options.max_attempts == 5


@pytest.mark.parametrize("hook", ["on_success", "on_failure", "on_retry"])
def test_using_refuses_hooks_which_the_worker_takes_from_the_definition(hook):
    with pytest.raises(TypeError, match=f"{hook} cannot be set with .using.*task definition"):
        tasks.noop.using(**{hook: print})


def test_decorator_validates_options():
    with pytest.raises(InvalidTask, match="max_attempts"):
        djtasks.task(max_attempts=0)(tasks.not_a_task)


def test_decorator_refuses_functions_not_at_module_level():
    def inner():
        pass

    with pytest.raises(InvalidTask, match="module level"):
        djtasks.task(inner)
