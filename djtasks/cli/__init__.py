"""The subcommands of ``manage.py djtasks``: one module each in this package.

A subcommand module defines::

    HELP = "one line for --help"

    def add_arguments(parser): ...          # an argparse (sub)parser

    def run(options: dict, out) -> int:     # out: the command's stdout; returns the exit status

and raises BadInput for input it refuses (an unknown queue, malformed JSON):
the command prints the message and exits with status 2, having changed
nothing. The command finds the modules itself, so adding a subcommand is
adding a module.
"""

import importlib
import pkgutil


class BadInput(Exception):  # noqa: N818 - reads better at raise sites
    """Input a subcommand refuses; its message says what was wrong."""


def subcommands() -> dict:
    """Every subcommand module of this package, by name (``retry_jobs`` -> ``retry-jobs``)."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[info.name.replace("_", "-")] = module
    return found
