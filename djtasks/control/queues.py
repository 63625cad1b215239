"""Pause, resume and limit queues and tasks: the stored controls, changed live.

Each change writes one djtasks.models.Control row (who and when included)
and, on PostgreSQL, sends a NOTIFY in the same transaction, so at commit
every worker drops its cached controls (djtasks.controls) and claims again;
elsewhere workers read the controls again within ``controls.MAX_AGE``.
Pausing a task also flags its READY rows, which takes them out of the claim
indexes (see djtasks.worker.claim); resuming clears the flag.
"""

import logging

from django.db import connections, transaction
from django.utils import timezone

from djtasks import controls, registry
from djtasks.compat import task_backends
from djtasks.conf import settings
from djtasks.limits import QUEUE_PREFIX, TASK_PREFIX, parse_rate
from djtasks.models import Control, ControlKind, Job, JobStatus, Limit

logger = logging.getLogger("djtasks")

# Rows flagged per transaction when a task is paused, resumed or rate-limited.
FLAG_BATCH = 5_000
# Control fields that hold a setting (the rest say who changed them, when).
_SETTINGS = ("paused", "rate_limit", "concurrency_limit")


class ControlError(ValueError):
    """A queue or task that does not exist, or a malformed limit."""


def known_queues(database: str | None = None) -> list[str]:
    """The queues the TASKS settings name (what workers can serve).

    With ``database``, only those of the backends keeping jobs there: the
    controls in one database steer only the workers of those backends.
    """
    queues = set()
    for alias in task_backends.settings:
        backend = task_backends[alias]
        if database is None or getattr(backend, "database", None) == database:
            queues.update(getattr(backend, "queues", ()) or ())
    return sorted(queues)


def check_queue(queue: str, database: str | None = None) -> str:
    known = known_queues(database)
    if queue not in known:
        where = (
            "the TASKS settings name"
            if database is None
            else f"the backends on database {database!r} serve"
        )
        raise ControlError(f"Unknown queue {queue!r}; {where}: {', '.join(known)}.")
    return queue


def check_task(path: str) -> str:
    if not registry.is_registered(path):
        raise ControlError(f"{path!r} is not a registered task.")
    return path


def check_rate(value: str) -> str:
    try:
        parse_rate(value)
    except ValueError as error:
        raise ControlError(str(error)) from None
    return value.replace(" ", "")


def check_concurrency(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ControlError(f"{value!r} is not a concurrency limit: give a whole number >= 1.")
    return value


def pause_queue(queue: str, by: str, database=None) -> Control:
    return _change(ControlKind.QUEUE, check_queue(queue, database), by, database, paused=True)


def resume_queue(queue: str, by: str, database=None) -> Control:
    return _change(ControlKind.QUEUE, check_queue(queue, database), by, database, paused=False)


def pause_task(path: str, by: str, database=None) -> Control:
    return _change(ControlKind.TASK, check_task(path), by, database, paused=True)


def resume_task(path: str, by: str, database=None) -> Control:
    return _change(ControlKind.TASK, check_task(path), by, database, paused=False)


def limit_queue(queue: str, by: str, database=None, **limits) -> Control:
    """Set (a value) or clear (None) a queue's ``rate_limit`` / ``concurrency_limit``."""
    check_queue(queue, database)
    if limits.get("rate_limit") is not None:
        limits["rate_limit"] = check_rate(limits["rate_limit"])
    if limits.get("concurrency_limit") is not None:
        check_concurrency(limits["concurrency_limit"])
    return _change(ControlKind.QUEUE, queue, by, database, **limits)


def limit_task(path: str, rate_limit: str | None, by: str, database=None) -> Control:
    """Set or clear (None) the stored rate limit of a task."""
    check_task(path)
    if rate_limit is not None:
        rate_limit = check_rate(rate_limit)
    return _change(ControlKind.TASK, path, by, database, rate_limit=rate_limit)


def _change(kind, name, by, database, **changes) -> Control:
    """Store ``changes`` on the control of (kind, name) and return its row.

    A row whose settings are all cleared is kept: it says who cleared them.
    """
    database = database or Job.objects.db
    with transaction.atomic(using=database):
        # FOR UPDATE: two operators changing the same control take turns, so
        # neither overwrites the other's field with a stale copy.
        control = (
            Control.objects.using(database).select_for_update().filter(kind=kind, name=name).first()
        )
        if control is None:
            control = Control(kind=kind, name=name)
        before = {field: getattr(control, field) for field in _SETTINGS}
        for field, value in changes.items():
            setattr(control, field, value)
        control.changed_by = by
        control.changed_at = timezone.now()
        control.save(using=database)
        if "rate_limit" in changes:
            _forget_blocked_until(database, kind, name)
        _announce(database)
    # Committed: the change is in force on every worker within a second.
    # The task's rows are moved after, in short transactions.
    if kind == ControlKind.TASK:
        _flag_task_rows(database, name, before, changes)
    logger.info("%s %s: %s by %s", kind, name, describe(changes), by or "(unknown)")
    return control


def _flag_task_rows(database, path, before, changes) -> None:
    """Move a task's READY rows out of (or back into) the claim indexes."""
    ready = Job.objects.using(database).filter(status=JobStatus.READY, task_path=path)
    if changes.get("paused") and not before["paused"]:
        # A one-off cost at pause time (one pass over the task index), so
        # the claim never walks over the paused backlog. Claims flag any row
        # they meet before this reaches it, and any row enqueued later.
        _update_in_batches(ready.filter(paused=False), paused=True)
    elif "paused" in changes and not changes["paused"] and before["paused"]:
        # Through djtasks_job_paused: only this task's paused rows.
        _update_in_batches(ready.filter(paused=True), paused=False)
    if changes.get("rate_limit"):
        # Rows enqueued without a limit go to the limited claim, which
        # enforces the override; left there once it is cleared, they are
        # claimed without a limit.
        _update_in_batches(ready.filter(limited=False), limited=True)


def _update_in_batches(rows, **values) -> int:
    """Set ``values`` on ``rows``, FLAG_BATCH rows per transaction.

    Short transactions: a claim waits for none of these row locks (it skips
    locked rows), and the commit of each batch makes its rows visible.
    """
    pks = rows.values_list("pk", flat=True).order_by()
    if connections[rows.db].vendor == "postgresql":
        # Streamed (one pass over the index) from a cursor that sees one
        # snapshot, whatever the updates below change.
        pks = pks.iterator(chunk_size=FLAG_BATCH)
    else:
        # Read first: SQLite gives no isolation between a cursor and the
        # updates of its own connection.
        pks = list(pks)
    changed = 0
    batch = []
    # Updated a batch at a time; the filter is repeated, so a row claimed
    # or flagged since it was read is left as it is.
    for pk in pks:
        batch.append(pk)
        if len(batch) == FLAG_BATCH:
            changed += rows.filter(pk__in=batch).update(**values)
            batch = []
    if batch:
        changed += rows.filter(pk__in=batch).update(**values)
    return changed


def _forget_blocked_until(database, kind, name) -> None:
    """Drop the "full until" hint the old rate left on the limit's row.

    The claim skips a limit's jobs while its row says it is full; computed
    with the old rate, that could hold jobs back long after a new rate has
    room. The next claim under the limit works it out again.
    """
    prefix = QUEUE_PREFIX if kind == ControlKind.QUEUE else TASK_PREFIX
    Limit.objects.using(database).filter(key=prefix + name).update(blocked_until=None)


def _announce(database) -> None:
    connection = connections[database]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Transactional: delivered at commit, with the change visible.
            cursor.execute(
                "SELECT pg_notify(%s, %s)", [settings.NOTIFY_CHANNEL, controls.CHANGED_PAYLOAD]
            )
    # This process's own claims (e.g. runworker --beat's neighbours, tests)
    # see the change at once too.
    transaction.on_commit(controls.forget, using=database)


def describe(changes) -> str:
    """One line for a log: "paused", "rate limit 10/s", "concurrency limit cleared"."""
    parts = []
    for field, value in changes.items():
        if field == "paused":
            parts.append("paused" if value else "resumed")
        else:
            label = field.replace("_", " ")
            parts.append(f"{label} {value}" if value is not None else f"{label} cleared")
    return ", ".join(parts)
