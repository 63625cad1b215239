"""manage.py djtasks delete: delete the jobs the filters match."""

from djtasks.cli import _bulk, _common
from djtasks.control import operations

HELP = "Delete the jobs the filters match (a deleted workflow step fails its workflow)."


def add_arguments(parser) -> None:
    _common.add_filter_arguments(parser)


def run(options, out) -> int:
    return _bulk.run(
        options,
        out,
        eligible=lambda jobs: jobs,
        operation=operations.delete,
        done=lambda count: f"Deleted {_common.plural(count, 'job')}.",
    )
