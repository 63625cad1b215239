"""Search the job list by a value in the arguments: ``arg:VALUE`` or ``kwarg:NAME=VALUE``.

VALUE is read as JSON when it parses (``arg:42`` finds the number 42,
``arg:"42"`` the string), else taken as a string (``arg:ada@example.com``).

On PostgreSQL both are JSON containment (``args @> '[42]'``,
``kwargs @> '{"user_id": 42}'``): a positional argument is found in any
position. SQLite has no containment: a keyword argument is compared by
key, and a positional one only in the first SQLITE_POSITIONS positions.
Either way the arguments have no index of their own (one would cost every
enqueue), so the search reads the rows the other filters leave: combine it
with a task or status filter on a large table.
"""

import json

from django.db import connections
from django.db.models import Q
from django.db.models.fields.json import KeyTransform

# Positions of args compared on SQLite, which cannot ask "anywhere in the array".
SQLITE_POSITIONS = 10

POSITIONAL, KEYWORD = "arg:", "kwarg:"
MALFORMED = "A keyword argument search needs a name and a value: kwarg:NAME=VALUE."


def is_argument_search(term: str) -> bool:
    return term.startswith((POSITIONAL, KEYWORD))


def search(jobs, term: str):
    """``jobs`` narrowed by an ``arg:`` / ``kwarg:`` term; None if the term is malformed."""
    containment = connections[jobs.db].features.supports_json_field_contains
    if term.startswith(POSITIONAL):
        value = _value(term[len(POSITIONAL) :])
        if containment:
            return jobs.filter(args__contains=[value])
        return jobs.filter(_any_position(value))
    name, equals, text = term[len(KEYWORD) :].partition("=")
    if not name or not equals:
        return None
    value = _value(text)
    if containment:
        return jobs.filter(kwargs__contains={name: value})
    # The key as one expression, so a name like "contains" or "a__b" is a
    # key, never read as a lookup or a nested path.
    return jobs.alias(djtasks_kwarg=KeyTransform(name, "kwargs")).filter(djtasks_kwarg=value)


def _any_position(value) -> Q:
    found = Q()
    for position in range(SQLITE_POSITIONS):
        found |= Q(**{f"args__{position}": value})
    return found


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
