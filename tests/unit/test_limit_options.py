"""Rate limit and concurrency key options: parsing and validation."""

import pytest
from django.test import override_settings

from djtasks import task
from djtasks.checks import check_queue_rate_limits
from djtasks.compat import InvalidTask
from djtasks.limits import Rate, concurrency_of, parse_rate, queue_rate_limits
from djtasks.worker.claim_limited import _room_again
from tests import tasks


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/m", Rate(100, 60)), ("1/s", Rate(1, 1)), (" 5 / h ", Rate(5, 3600))],
)
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["100/x", "0/m", "-1/s", "1.5/s", "100", "/m", "", None, 10])
def test_parse_rate_refuses_bad_values(text):
    with pytest.raises(ValueError, match="is not a rate limit"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": "100/x"}, "rate_limit"),
        ({"rate_limit": "0/s"}, "rate_limit"),
        ({"concurrency_limit": 0}, "concurrency_limit"),
        ({"concurrency_limit": -2}, "concurrency_limit"),
        ({"concurrency_limit": True}, "concurrency_limit"),
        ({"concurrency_key": ""}, "concurrency_key"),
        ({"concurrency_key": 42}, "concurrency_key"),
    ],
)
def test_bad_limits_fail_at_definition_and_in_using(options, message):
    with pytest.raises(InvalidTask, match=message):
        task(tasks.noop.func, **options)
    with pytest.raises(InvalidTask, match=message):
        tasks.noop.using(**options)


def test_concurrency_defaults():
    assert concurrency_of(tasks.noop, [], {}) == (None, None)
    # A limit alone keys on the task; a key alone allows one at a time.
    assert concurrency_of(tasks.noop.using(concurrency_limit=3), [], {}) == ("tests.tasks.noop", 3)
    assert concurrency_of(tasks.noop.using(concurrency_key="k"), [], {}) == ("k", 1)


def test_a_callable_key_gets_the_job_arguments():
    assert concurrency_of(tasks.per_customer, [42], {"seconds": 1}) == ("customer:42", 2)


def test_a_callable_key_must_return_a_string():
    bad = tasks.noop.using(concurrency_key=lambda: None)
    with pytest.raises(ValueError, match="must return a string"):
        concurrency_of(bad, [], {})


def test_queue_rate_limits_setting():
    with override_settings(DJTASKS={"QUEUE_RATE_LIMITS": {"emails": "10/s"}}):
        assert queue_rate_limits() == {"emails": Rate(10, 1)}
        assert check_queue_rate_limits() == []
    with override_settings(DJTASKS={"QUEUE_RATE_LIMITS": {"emails": "10/week"}}):
        [error] = check_queue_rate_limits()
    assert error.id == "djtasks.E004"
    assert "'emails'" in error.msg


def test_a_full_window_has_room_again_when_its_oldest_needed_start_leaves():
    rate = Rate(3, 1)
    assert _room_again([[0, 1], [100, 1]], rate) is None
    room = _room_again([[0, 2], [500_000, 1]], rate)
    # Three starts in the window: room once the two at 0 are a second old.
    assert room.timestamp() == 1.0


def test_a_rate_prints_as_it_is_written():
    assert [str(parse_rate(text)) for text in ("100/m", "5/s", "2/h")] == ["100/m", "5/s", "2/h"]
