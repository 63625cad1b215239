"""Argument checks: JSON only, with the bad argument named, and a size limit."""

import math
from decimal import Decimal

import pytest

from djtasks.exceptions import ArgumentNotSerializable, PayloadTooLarge
from djtasks.payload import prepare_arguments


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
