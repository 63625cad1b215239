"""manage.py djtasks cancel: cancel ready jobs, ask running ones to stop."""

from djtasks.cli import _bulk, _common
from djtasks.control import operations

HELP = "Cancel the ready or waiting jobs the filters match; ask running ones to stop."


def add_arguments(parser) -> None:
    _common.add_filter_arguments(parser)


def _done(counts) -> str:
    cancelled, requested = counts
    return (
        f"Cancelled {_common.plural(cancelled, 'job')}; "
        f"asked {_common.plural(requested, 'running job')} to stop."
    )


def run(options, out) -> int:
    return _bulk.run(
        options,
        out,
        eligible=operations.cancellable_among,
        operation=operations.cancel,
        done=_done,
        empty=(0, 0),
    )
