"""Argument checks: JSON only, with the bad argument named, and a size limit."""

import math
from decimal import Decimal

import pytest

from djtasks.enqueue.payload import prepare_arguments
from djtasks.exceptions import ArgumentNotSerializable, PayloadTooLarge


def test_tuples_and_nested_values_become_json_data():
    args, kwargs = prepare_arguments("t.p", (1, (2, 3)), {"k": {"x": (4,)}}, 1000)

    assert args == [1, [2, 3]]
    assert kwargs == {"k": {"x": [4]}}


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((1, object()), {}, "Argument 1 of t.p"),
        ((), {"amount": Decimal("1.5")}, "Keyword argument 'amount' of t.p"),
        ((math.nan,), {}, "Argument 0 of t.p"),
        ((), {"ids": {1}}, "Keyword argument 'ids' of t.p"),
    ],
)
def test_the_first_bad_argument_is_named(args, kwargs, named):
    with pytest.raises(ArgumentNotSerializable) as caught:
        prepare_arguments("t.p", args, kwargs, 1000)

    assert named in str(caught.value)


def test_size_limit_is_inclusive():
    args, _ = prepare_arguments("t.p", ["abc"], {}, len('[["abc"], {}]'))
    assert args == ["abc"]

    with pytest.raises(PayloadTooLarge, match="14 bytes"):
        prepare_arguments("t.p", ["abcd"], {}, len('[["abc"], {}]'))


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (("a\x00b",), {}, "Argument 0 of t.p"),
        ((1, ["ok", {"k": "\ud800"}]), {}, "Argument 1 of t.p"),
        ((), {"data": {"key\x00": 1}}, "Keyword argument 'data' of t.p"),
    ],
)
def test_nul_and_unpaired_surrogates_are_refused_on_every_database(args, kwargs, named):
    # PostgreSQL's jsonb cannot store them: a raw DataError at enqueue on
    # PostgreSQL only, before this check.
    with pytest.raises(ArgumentNotSerializable, match="NUL character or an unpaired") as caught:
        prepare_arguments("t.p", args, kwargs, 1000)

    assert named in str(caught.value)


@pytest.mark.parametrize("text", ["smile \U0001f600", "a literal \\ud800 and \\u0000", "é"])
def test_other_text_passes_the_check(text):
    assert prepare_arguments("t.p", [text], {}, 1000) == ([text], {})


def test_arguments_nested_too_deeply_are_a_clear_error():
    value = []
    for _ in range(5000):
        value = [value]

    with pytest.raises(ArgumentNotSerializable, match="nested too deeply"):
        prepare_arguments("t.p", [value], {}, 10**9)
