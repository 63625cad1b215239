"""An operation applied to every job a filter matches, a batch at a time.

The command line's ``retry`` / ``cancel`` / ``delete`` and the admin's
"all jobs matching this filter" use it: each batch is its own short
transaction, so acting on 100,000 failed jobs never holds their locks (or
SQLite's write lock) for long, and workers keep claiming in between.
"""

from django.db import transaction

# Rows per batch: one short transaction each (as pruning's PRUNE_BATCH).
BATCH_SIZE = 1000


def apply_in_batches(jobs, operation, *, empty=0, batch_size: int = BATCH_SIZE):
    """Run ``operation`` on ``jobs`` in batches of primary keys; return the summed counts.

    ``operation`` is one of djtasks.control.operations' functions (it gets a
    QuerySet and returns a count, or a tuple of counts as cancel does). The
    batches walk the primary key upwards, so rows the operation changed
    (a retried job is no longer FAILED) are never visited twice, and each
    batch is ``jobs`` narrowed to its keys: the operation's own guarded
    UPDATE still checks the filter and the status at the moment it runs.
    ``empty`` is the result when nothing matches (``(0, 0)`` for cancel).
    """
    total = empty
    last_pk = None
    while True:
        page = jobs.order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        keys = list(page.values_list("pk", flat=True)[:batch_size])
        if not keys:
            return total
        with transaction.atomic(using=jobs.db):
            total = _add(total, operation(jobs.filter(pk__in=keys)))
        last_pk = keys[-1]
        if len(keys) < batch_size:
            return total


def _add(total, counts):
    if isinstance(counts, tuple):
        return tuple(a + b for a, b in zip(total, counts))
    return total + counts
