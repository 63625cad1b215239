"""Every bad enqueue fails at once, with a clear error, and leaves no job."""

import math
from datetime import datetime, timedelta

import pytest
from django.test import override_settings

import djtasks
from djtasks.compat import InvalidTask
from djtasks.models import Job
from djtasks.registry import UnknownTask
from tests import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_job_left():
    yield
    assert Job.objects.count() == 0


@pytest.mark.parametrize("task", [tasks.echo, tasks.std_add], ids=["djtasks", "standard"])
def test_non_json_positional_argument_is_named(task):
    with pytest.raises(djtasks.ArgumentNotSerializable, match=r"Argument 1 of tests\.tasks\."):
        task.enqueue(1, object())


def test_non_json_keyword_argument_is_named():
    with pytest.raises(djtasks.ArgumentNotSerializable, match=r"Keyword argument 'when'"):
        tasks.echo.enqueue(when=datetime(2030, 1, 1))


def test_non_json_value_nested_in_an_argument():
    with pytest.raises(djtasks.ArgumentNotSerializable, match=r"Argument 0 .*set"):
        tasks.echo.enqueue({"ids": {1, 2}})


def test_non_json_argument_is_also_an_invalid_task_and_a_type_error():
    with pytest.raises(InvalidTask):
        tasks.echo.enqueue(object())
    with pytest.raises(TypeError):
        djtasks.enqueue("tests.tasks.echo", object())


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(djtasks.ArgumentNotSerializable, match="Argument 0"):
        tasks.echo.enqueue(value)


def test_unknown_queue():
    with pytest.raises(InvalidTask, match="nowhere"):
        tasks.noop.using(queue_name="nowhere").enqueue()
    with pytest.raises(InvalidTask, match="nowhere"):
        tasks.std_noop.using(queue_name="nowhere")


@pytest.mark.parametrize("priority", [-101, 101, 1000])
def test_priority_out_of_range(priority):
    with pytest.raises(InvalidTask, match="priority"):
        tasks.noop.using(priority=priority).enqueue()


@pytest.mark.parametrize("priority", [-100, 100])
def test_priority_bounds_are_accepted(priority):
    result = tasks.noop.using(priority=priority).enqueue()

    assert Job.objects.get(pk=result.id).priority == priority
    Job.objects.all().delete()  # for no_job_left


def test_naive_run_after_with_use_tz():
    with pytest.raises(InvalidTask, match="aware"):
        tasks.noop.using(run_after=datetime(2030, 1, 1, 12)).enqueue()
    with pytest.raises(InvalidTask, match="aware"):
        tasks.std_noop.using(run_after=datetime(2030, 1, 1, 12))


def test_run_after_of_the_wrong_type():
    with pytest.raises((InvalidTask, TypeError)):
        tasks.noop.using(run_after="tomorrow").enqueue()


def test_plain_function_is_not_a_task():
    with pytest.raises(TypeError, match=r"not_a_task is not a task"):
        djtasks.enqueue(tasks.not_a_task, 1)
    with pytest.raises(TypeError, match="not a task"):
        djtasks.bulk_enqueue(tasks.not_a_task, [((), {})])
    assert tasks.FORBIDDEN_CALLS == []


@pytest.mark.parametrize(
    "path",
    [
        "tests.tasks.not_a_task",  # a plain function in an installed app
        "tests.tasks.missing",  # nothing there
        "os.system",  # a dangerous callable outside any app
        "nomodule.at_all",
        "nodots",
    ],
)
def test_dotted_path_that_is_not_a_registered_task(path):
    with pytest.raises(UnknownTask, match="not a registered task"):
        djtasks.enqueue(path)


def test_payload_above_the_configured_limit():
    with (
        override_settings(DJTASKS={"MAX_PAYLOAD_BYTES": 100}),
        pytest.raises(djtasks.PayloadTooLarge, match=r"more than the limit of 100"),
    ):
        tasks.echo.enqueue("x" * 200)


def test_payload_limit_counts_keyword_arguments_and_bulk():
    with override_settings(DJTASKS={"MAX_PAYLOAD_BYTES": 100}):
        with pytest.raises(djtasks.PayloadTooLarge):
            tasks.echo.enqueue(text="y" * 200)
        with pytest.raises(djtasks.PayloadTooLarge):
            djtasks.bulk_enqueue(tasks.echo, [(("small",), {}), (("z" * 200,), {})])


def test_payload_just_under_the_limit_is_accepted():
    with override_settings(DJTASKS={"MAX_PAYLOAD_BYTES": 100}):
        result = tasks.echo.enqueue("x" * 50)

    assert Job.objects.filter(pk=result.id).exists()
    Job.objects.all().delete()  # for no_job_left


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"timeout": -1},
        {"backoff": "soon"},
        {"expires": timedelta(0)},
        {"retry_on": ["ValueError"]},
        {"unique_key": ""},
    ],
)
def test_bad_djtasks_options(options):
    with pytest.raises(InvalidTask):
        tasks.noop.using(**options)


def test_hook_that_is_not_callable():
    # Hooks are set on the definition only (.using() refuses them).
    with pytest.raises(InvalidTask, match="on_success must be callable"):
        djtasks.task(on_success="not callable")(tasks.not_a_task)


def test_unknown_option_in_using_or_decorator():
    with pytest.raises(TypeError, match="retries"):
        tasks.noop.using(retries=3)
    with pytest.raises(TypeError, match="retries"):
        djtasks.task(retries=3)
    with pytest.raises(TypeError, match="run_after"):
        djtasks.task(run_after=timedelta(1))
