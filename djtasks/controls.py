"""The stored queue and task controls as the claim reads them: a snapshot, cached.

Every claim asks ``current()`` which queues and tasks are paused and which
limits an operator changed (djtasks.models.Control). The snapshot is read
again once it is ``MAX_AGE`` seconds old, or at once when a NOTIFY says a
control changed (djtasks.worker.wakeup calls ``forget()``), so a change
reaches every worker within a second without a query per claim.
"""

import threading
import time
from dataclasses import dataclass, field

from djtasks.limits import Rate, parse_rate, queue_rate_limits
from djtasks.models import Control, ControlKind

# Seconds a snapshot is used before it is read again: a pause takes effect
# within this (plus the claim under way) even where no NOTIFY arrives.
MAX_AGE = 0.5
# The NOTIFY payload that tells workers a control changed.
CHANGED_PAYLOAD = "controls changed"


@dataclass(frozen=True, slots=True)
class Controls:
    """What the stored controls say, at one moment."""

    paused_queues: frozenset = frozenset()
    paused_tasks: frozenset = frozenset()
    # Stored overrides only; see queue_rates() for the limits in force.
    queue_rate_overrides: dict = field(default_factory=dict)
    queue_concurrency: dict = field(default_factory=dict)
    task_rates: dict = field(default_factory=dict)

    def queue_rates(self) -> dict[str, Rate]:
        """Rate limits per queue: DJTASKS["QUEUE_RATE_LIMITS"], overrides winning."""
        return {**queue_rate_limits(), **self.queue_rate_overrides}

    def diverted_tasks(self) -> frozenset:
        """Tasks whose READY rows the plain claim must move out of its index."""
        return self.paused_tasks | frozenset(self.task_rates)


NONE = Controls()


def read(database: str) -> Controls:
    """The controls as stored now (one query on a table of a few rows)."""
    paused_queues, paused_tasks = set(), set()
    queue_rates, queue_concurrency, task_rates = {}, {}, {}
    for control in Control.objects.using(database):
        queue = control.kind == ControlKind.QUEUE
        if control.paused:
            (paused_queues if queue else paused_tasks).add(control.name)
        if control.rate_limit:
            rate = _stored_rate(control)
            if rate is not None:
                (queue_rates if queue else task_rates)[control.name] = rate
        if queue and control.concurrency_limit:
            queue_concurrency[control.name] = control.concurrency_limit
    return Controls(
        frozenset(paused_queues),
        frozenset(paused_tasks),
        queue_rates,
        queue_concurrency,
        task_rates,
    )


def _stored_rate(control) -> Rate | None:
    # Written through djtasks.control.queues, which validates; a row edited
    # by hand into nonsense is ignored rather than stopping every claim.
    try:
        return parse_rate(control.rate_limit)
    except ValueError:
        return None


class _Cache:
    def __init__(self):
        self._lock = threading.Lock()
        # {database: (monotonic time read, Controls)}
        self._snapshots = {}

    def current(self, database: str) -> Controls:
        now = time.monotonic()
        snapshot = self._snapshots.get(database)
        if snapshot is not None and now - snapshot[0] < MAX_AGE:
            return snapshot[1]
        controls = read(database)
        # Claim threads of one process share the snapshot; the lock only
        # guards the dict, a second reader racing this one reads the same.
        with self._lock:
            self._snapshots[database] = (now, controls)
        return controls

    def forget(self) -> None:
        with self._lock:
            self._snapshots.clear()


_cache = _Cache()
current = _cache.current
forget = _cache.forget
