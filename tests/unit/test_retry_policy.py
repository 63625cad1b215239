"""The retry policy kept on the row and the backoff it gives."""

import pytest
from django.test import override_settings

from djtasks.retry import backoff_delay, policy_of, should_retry
from tests import tasks


def test_policy_of_a_task_with_options():
    assert policy_of(tasks.with_options) == {
        "backoff": 2,
        "backoff_max": 60,
        "jitter": False,
        "retry_on": ["builtins.ValueError"],
    }


def test_policy_of_a_plain_task_is_empty():
    assert policy_of(tasks.noop) == {}
    assert policy_of(tasks.std_add) == {}


def test_exponential_backoff_without_jitter_is_capped():
    policy = {"backoff": 2, "backoff_max": 10, "jitter": False}

    assert [backoff_delay(policy, attempt) for attempt in range(1, 6)] == [2, 4, 8, 10, 10]


def test_jitter_stays_between_half_and_all_of_the_delay():
    delays = [backoff_delay({"backoff": 8}, 1) for _ in range(200)]

    assert all(4 <= delay <= 8 for delay in delays)
    assert len(set(delays)) > 1


def test_default_backoff_comes_from_the_settings():
    with override_settings(DJTASKS={"BACKOFF_BASE": 3, "BACKOFF_MAX": 5}):
        assert backoff_delay({"jitter": False}, 1) == 3
        assert backoff_delay({"jitter": False}, 4) == 5


@pytest.mark.parametrize(
    ("error", "expected"),
    [(ValueError(), True), (KeyError(), False), (UnicodeError(), True)],
)
def test_retry_on_matches_subclasses(error, expected):
    assert should_retry({"retry_on": ["builtins.ValueError"]}, error) is expected


def test_no_retry_on_retries_everything():
    assert should_retry({}, KeyError())


def test_retry_on_never_imports_a_module_named_in_a_row():
    import sys

    from djtasks.retry import should_retry

    assert "antigravity" not in sys.modules
    policy = {"retry_on": ["antigravity.Nothing", "os.system", "builtins.ValueError"]}
    assert should_retry(policy, ValueError("x"))
    assert not should_retry(policy, KeyError("x"))
    assert "antigravity" not in sys.modules
