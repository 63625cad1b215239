"""manage.py djtasks retry: put failed or cancelled jobs back to READY."""

from djtasks.cli import _bulk, _common
from djtasks.control import operations

HELP = "Retry the failed or cancelled jobs the filters match (fresh attempts)."


def add_arguments(parser) -> None:
    _common.add_filter_arguments(parser)


def run(options, out) -> int:
    return _bulk.run(
        options,
        out,
        eligible=operations.retryable_among,
        operation=operations.retry,
        done=lambda count: f"Retried {_common.plural(count, 'job')}.",
    )
