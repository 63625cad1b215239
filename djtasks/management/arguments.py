"""Argument types and checks shared by the management commands."""

import argparse
from datetime import timedelta

from django.core.management.base import CommandError

from djtasks.compat import task_backends


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number of seconds")
    return number


def database_backend(alias: str):
    """The djtasks backend of TASKS[alias], or a CommandError saying why not."""
    try:
        backend = task_backends[alias]
    except Exception as error:
        raise CommandError(f"Unknown task backend {alias!r}: {error}") from error
    if not hasattr(backend, "database"):
        raise CommandError(
            f"TASKS[{alias!r}] is {type(backend).__name__}, not djtasks.backend.DatabaseBackend."
        )
    return backend


# Units of duration(): seconds, minutes, hours, days, weeks.
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: str):
    """A span like "90s", "15m", "12h", "7d" or "2w" as a timedelta (at least zero)."""
    text = value.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:])
    try:
        number = float(text[:-1]) if unit else None
    except ValueError:
        number = None
    if number is None or not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration: give a number and a unit, e.g. 90s, 15m, 12h, 7d, 2w"
        )
    return timedelta(seconds=number * unit)
