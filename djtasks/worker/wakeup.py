"""Waking idle claim threads: a doorbell, rung by LISTEN/NOTIFY or by a timer.

On PostgreSQL a trigger (migration 0002) sends ``NOTIFY <channel>, '<queue>
<epoch>'`` for the jobs a statement makes READY: inserted ones, and retried
or handed-back ones. NOTIFY is transactional, so the message arrives when
the enqueuing transaction commits, never before. ``<epoch>`` is the earliest
``available_at`` among them: a deferred job rings the doorbell when it is
due, not when it is enqueued.

Each worker process keeps one extra connection (psycopg, autocommit, apart
from Django's) that LISTENs in a thread. Where LISTEN cannot work (SQLite;
``DJTASKS["LISTEN"] = False``; a transaction-mode pooler, detected by a
self-addressed ping that never comes back) the doorbell is rung by nothing
and idle threads poll every POLL_INTERVAL seconds.

A change of a stored control (djtasks.control.queues) sends
``djtasks.controls.CHANGED_PAYLOAD``: the listener drops the process's
cached controls, so the next claim reads them, and rings (a resumed queue's
jobs are claimable at once).
"""

import logging
import threading
import time

from django.db import connections
from django.utils.crypto import get_random_string

from djtasks import controls
from djtasks.conf import settings

logger = logging.getLogger("djtasks")

# Seconds the self-addressed ping may take before LISTEN is declared broken.
PING_TIMEOUT = 2.0
# Reconnection backoff of the listening connection, in seconds.
RECONNECT_DELAYS = (0.5, 1, 2, 5)
# Connection parameters of Django's that psycopg.connect() does not take.
_DJANGO_ONLY_PARAMS = ("cursor_factory", "context", "prepare_threshold", "server_side_binding")


class Doorbell:
    """Where idle claim threads wait: rung when there may be work."""

    def __init__(self):
        self._condition = threading.Condition()
        # Counts rings; a thread notes it before claiming and waits only if
        # nothing rang since, so a NOTIFY that lands during an empty claim
        # is never lost.
        self.rings = 0
        # Epoch seconds when the earliest known deferred job becomes due.
        self._due_at = None

    def ring(self) -> None:
        with self._condition:
            self.rings += 1
            self._condition.notify_all()

    def due(self, at: float) -> None:
        """A job becomes claimable at ``at`` (epoch seconds): wake then."""
        with self._condition:
            if self._due_at is None or at < self._due_at:
                self._due_at = at
                # Sleepers recompute their timeout.
                self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Sleep up to ``timeout`` s unless rung since ``seen``, or a job comes due."""
        with self._condition:
            while self.rings == seen:
                remaining = timeout
                if self._due_at is not None:
                    until_due = self._due_at - time.time()
                    if until_due <= 0:
                        self._due_at = None
                        return
                    remaining = min(remaining, until_due)
                if remaining <= 0:
                    return
                started = time.monotonic()
                self._condition.wait(remaining)
                timeout -= time.monotonic() - started


def listen_enabled(database: str) -> bool:
    """Whether this database can wake workers with LISTEN/NOTIFY."""
    return connections[database].vendor == "postgresql" and bool(settings.LISTEN)


class Listener(threading.Thread):
    """LISTENs on its own connection and rings the doorbell for our queues."""

    def __init__(self, database: str, queues, doorbell: Doorbell, stopping):
        super().__init__(name="djtasks-listener", daemon=True)
        self.database = database
        self.queues = set(queues)
        self.doorbell = doorbell
        self.stopping = stopping
        self.channel = settings.NOTIFY_CHANNEL
        # Set once LISTEN is known to work (for tests and the startup log).
        self.listening = threading.Event()
        self.broken = False

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set() and not self.broken:
            try:
                with self._connect() as connection:
                    failures = 0
                    self._listen(connection)
            except Exception as error:  # noqa: BLE001 - keep listening whatever broke
                self.listening.clear()
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                if not self.stopping.is_set():
                    # Once per outage at WARNING; the retries at DEBUG.
                    log = logger.warning if failures == 1 else logger.debug
                    log("LISTEN connection lost (%s); polling, reconnecting in %gs", error, delay)
                    self.stopping.wait(delay)

    def _connect(self):
        import psycopg

        params = connections[self.database].get_connection_params()
        for name in _DJANGO_ONLY_PARAMS:
            params.pop(name, None)
        return psycopg.connect(**params, autocommit=True)

    def _listen(self, connection) -> None:
        from psycopg import sql

        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        if not self._ping(connection):
            self.broken = True
            logger.warning(
                "LISTEN/NOTIFY does not work on database %r (a transaction-mode "
                "pooler?): idle workers poll every %gs. Set DJTASKS['LISTEN'] = "
                "False to skip this check.",
                self.database,
                settings.POLL_INTERVAL,
            )
            return
        self.listening.set()
        logger.debug("LISTEN on channel %r ready", self.channel)
        # Jobs may have arrived while nobody listened.
        self.doorbell.ring()
        while not self.stopping.is_set():
            for notification in connection.notifies(timeout=1.0):
                self._on_notify(notification.payload)

    def _ping(self, connection) -> bool:
        """Send ourselves a NOTIFY; a pooler that moves sessions loses it."""
        token = f"ping {get_random_string(12)}"
        connection.execute("SELECT pg_notify(%s, %s)", [self.channel, token])
        deadline = time.monotonic() + PING_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            for notification in connection.notifies(timeout=remaining):
                if notification.payload == token:
                    return True
                self._on_notify(notification.payload)
        return False

    def _on_notify(self, payload: str) -> None:
        if payload == controls.CHANGED_PAYLOAD:
            controls.forget()
            self.doorbell.ring()
            return
        due = parse_payload(payload, self.queues)
        if due is None:
            return
        if due <= time.time():
            self.doorbell.ring()
        else:
            self.doorbell.due(due)


def parse_payload(payload: str, queues) -> float | None:
    """When the jobs a NOTIFY announces are due (epoch), None if not ours.

    Payload: "<queue> <epoch>". Anything else (an older trigger, a manual
    NOTIFY) counts as "due now" so it can only make a worker look sooner.
    """
    if payload.startswith("ping "):
        return None
    queue, _, epoch = payload.rpartition(" ")
    if not queue:
        return 0.0
    if queue not in queues:
        return None
    try:
        return float(epoch)
    except ValueError:
        return 0.0
