"""Argument types and checks shared by the management commands."""

import argparse

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
