"""Database faults: log an outage once, back off, reconnect.

A worker never exits because the database went away: every database call of
a worker catches DatabaseError, drops the broken connection (Django opens a
new one on next use) and tries again after a growing delay.
"""

import contextlib
import logging
import threading
import time

from django.db import DatabaseError, DataError, IntegrityError, ProgrammingError, connections

from djtasks.errors import error_entry
from djtasks.worker.outcomes import Outcome, record

logger = logging.getLogger("djtasks")

# Seconds to wait after the 1st, 2nd, ... failure in a row (then the last).
DELAYS = (0.25, 0.5, 1, 2, 5)


def delay(failures: int) -> float:
    """The wait after ``failures`` failures in a row (1-based)."""
    return DELAYS[min(max(failures, 1), len(DELAYS)) - 1]


def close_connection(database: str) -> None:
    """Drop a broken connection; Django opens a new one on next use."""
    with contextlib.suppress(DatabaseError):
        connections[database].close()


class DatabaseHealth:
    """Logs database outages once (not once per call) and their end."""

    def __init__(self):
        self._lock = threading.Lock()
        self.down_since = None  # time.monotonic() of the first failure
        self.last_fault = None  # time.monotonic() of the latest failure

    def failed(self, what: str, error: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            self.last_fault = now
            if self.down_since is None:
                self.down_since = now
                logger.error("database error during %s, retrying with backoff: %s", what, error)

    def ok(self) -> None:
        # Unlocked read first: this runs after every claim.
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is not None:
                logger.warning(
                    "database reachable again after %.1fs", time.monotonic() - self.down_since
                )
                self.down_since = None


# Errors where the database is up but refuses a statement's data (e.g. a
# return value holding "\u0000", which PostgreSQL's jsonb rejects). Retrying
# would fail forever, so they are not treated as an outage.
REFUSED = (DataError, IntegrityError, ProgrammingError)


def record_outcomes(database: str, worker_id: str, outcomes) -> None:
    """Write outcomes in one statement; if the data is refused, one by one.

    An outcome the database refuses is replaced by a FAILED outcome saying
    why, so one bad return value neither blocks the worker nor loses the
    other outcomes of its batch. Connection errors propagate (an outage:
    the caller keeps the outcomes and retries).
    """
    try:
        record(database, worker_id, outcomes)
        return
    except REFUSED:
        # The transaction was rolled back; the connection is still good.
        pass
    for outcome in outcomes:
        try:
            record(database, worker_id, [outcome])
        except REFUSED as error:
            logger.error("job %s: the database refused its outcome: %s", outcome.job_id, error)
            record(database, worker_id, [refused_outcome(outcome, worker_id, error)])


def refused_outcome(outcome, worker_id: str, error: Exception):
    """A FAILED outcome in place of one the database would not store."""
    from django.utils import timezone

    now = timezone.now()
    entry = error_entry(
        error,
        (outcome.error or {}).get("attempt"),
        worker_id,
        now,
        f"The database refused to store the outcome ({outcome.status}) of this attempt: {error}\n",
    )
    return Outcome(
        outcome.job_id,
        "FAILED",
        now,
        error=entry,
        attempt=outcome.attempt,
        workflow_id=outcome.workflow_id,
        claimed_at=outcome.claimed_at,
    )
