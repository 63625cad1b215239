"""Every djtasks setting, with its default, read in one place.

Process-wide settings live in the ``DJTASKS`` dict in settings.py::

    DJTASKS = {"POLL_INTERVAL": 0.5, "STALE_AFTER": 20}

Per-backend settings live in the backend's ``OPTIONS`` in ``TASKS``
(see ``djtasks.backend.DatabaseBackend``).
"""

from datetime import timedelta

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    # Seconds an idle worker waits between two polls when no NOTIFY wakes it
    # (always on SQLite; the fallback on PostgreSQL).
    "POLL_INTERVAL": 1.0,
    # Seconds between two heartbeats of a worker process.
    "HEARTBEAT_INTERVAL": 5.0,
    # A worker whose last heartbeat is older than this many seconds is dead:
    # its RUNNING jobs are rescued.
    "STALE_AFTER": 30.0,
    # Seconds between two rescue passes of a worker process.
    "RESCUE_INTERVAL": 10.0,
    # A job whose worker died while running it (SIGKILL, OOM, a host lost)
    # runs again without using up max_attempts, unless it has now taken its
    # worker down this many times: then it is a poison job and ends FAILED.
    "MAX_LOST_ATTEMPTS": 3,
    # A claimed job of a task this worker does not have is handed back for a
    # worker that has it (a rolling deploy). It fails with UnknownTask once
    # no live worker has known the task for this long (a timedelta or
    # seconds), counted from its enqueue (or run_after) at the earliest.
    "UNKNOWN_TASK_GRACE": timedelta(minutes=10),
    # The largest number of jobs one claim statement hands out.
    "MAX_CLAIM_BATCH": 100,
    # While a batch of short jobs runs, a claim thread writes the last
    # batch's outcomes and claims the next batch on a second connection
    # (djtasks.worker.claim_ahead). Not on SQLite.
    "CLAIM_AHEAD": True,
    # On PostgreSQL a claim that writes no outcomes commits without waiting
    # for the disk (0.2-0.3 ms sooner to the job's start); if the server
    # crashes within a moment of it, the claim may be lost and the job runs
    # again. True: every claim waits (djtasks.worker.claim).
    "SYNCHRONOUS_CLAIMS": False,
    # The largest JSON payload (args + kwargs, in bytes) enqueue accepts.
    "MAX_PAYLOAD_BYTES": 1_000_000,
    # Retry backoff when a task does not set its own: the first retry waits
    # BACKOFF_BASE seconds, then doubles each attempt, capped at BACKOFF_MAX.
    "BACKOFF_BASE": 1.0,
    "BACKOFF_MAX": 3600.0,
    # Seconds a cancelled RUNNING job gets to notice before it is stopped by
    # force.
    "CANCEL_GRACE": 10.0,
    # Rate limits per queue, enforced across all workers, e.g.
    # {"emails": "100/m"}: at most 100 jobs of the queue start in any 60 s
    # (per s, m or h; see docs/limits.md).
    "QUEUE_RATE_LIMITS": {},
    # The channel LISTEN/NOTIFY uses on PostgreSQL.
    "NOTIFY_CHANNEL": "djtasks",
    # Idle workers LISTEN for new jobs on PostgreSQL. Set False behind a
    # transaction-mode pooler (e.g. PgBouncer), where LISTEN cannot work;
    # workers also detect that, warn and poll.
    "LISTEN": True,
    # Schedules declared in settings, by name (see djtasks.beat.declared), e.g.
    # {"cleanup": {"task": "app.tasks.cleanup", "cron": "0 3 * * *"}}.
    "SCHEDULES": {},
    # The longest a beat sleeps between two ticks, in seconds: admin edits
    # take effect within this time.
    "BEAT_MAX_SLEEP": 1.0,
    # A schedule run at most this many seconds late is on time; older runs
    # were missed while no beat was up and follow the misfire policy.
    "BEAT_MISFIRE_GRACE": 10.0,
    # Pruning (djtasks.prune): a finished job is deleted this long after it
    # finished, per status (a timedelta or seconds; None keeps it for ever).
    # Statuses left out of a DJTASKS["RETENTION"] setting keep these defaults.
    "RETENTION": {
        "SUCCESSFUL": timedelta(days=7),
        "FAILED": timedelta(days=30),
        "CANCELLED": timedelta(days=7),
        "EXPIRED": timedelta(days=7),
    },
    # Worker rows stopped (or silent) this long are pruned too, unless they
    # still hold RUNNING jobs; None keeps them for ever.
    "WORKER_RETENTION": timedelta(days=7),
    # Rows deleted per transaction while pruning: short transactions, so
    # pruning never holds locks for long.
    "PRUNE_BATCH": 1000,
    # The cron (in TIME_ZONE) of the built-in schedule "djtasks.prune" that
    # beat syncs and runs; None declares no such schedule.
    "PRUNE_SCHEDULE": "17 * * * *",
    # The Prometheus endpoint (djtasks.urls, djtasks/metrics): staff users
    # may always read it; a scraper sends "Authorization: Bearer <token>"
    # with this token (None: staff only).
    "METRICS_TOKEN": None,
    # Seconds of recent history the endpoint's finished-job counts and
    # attempt-duration histogram cover (a range of the finished_at index).
    "METRICS_WINDOW": 300.0,
    # Upper bounds, in seconds, of the attempt-duration histogram's buckets.
    "METRICS_BUCKETS": (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
}


class Settings:
    """Attribute access to DJTASKS merged over the defaults."""

    def __getattr__(self, name: str):
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown djtasks setting {name!r}.")
        overrides = getattr(django_settings, "DJTASKS", {}) or {}
        return overrides.get(name, DEFAULTS[name])


settings = Settings()


def max_lost_attempts() -> int:
    """DJTASKS["MAX_LOST_ATTEMPTS"], checked: a whole number of at least 1."""
    value = settings.MAX_LOST_ATTEMPTS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f'DJTASKS["MAX_LOST_ATTEMPTS"] must be a whole number of at least 1, not {value!r}.'
        )
    return value


def unknown_task_grace() -> float:
    """DJTASKS["UNKNOWN_TASK_GRACE"] in seconds, checked: a timedelta or seconds, not negative."""
    value = settings.UNKNOWN_TASK_GRACE
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ImproperlyConfigured(
            'DJTASKS["UNKNOWN_TASK_GRACE"] must be a timedelta or a number of seconds '
            f"(not negative), not {settings.UNKNOWN_TASK_GRACE!r}."
        )
    return float(value)
