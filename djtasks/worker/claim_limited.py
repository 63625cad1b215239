"""Choosing which jobs under a limit may start now, across all workers.

djtasks.worker.claim calls ``choose`` inside its claim transaction for the jobs it
leaves out of the plain claim: rows that carry a rate limit or a concurrency
key (``Job.limited``) and every row of a queue with a rate limit or a stored
concurrency limit (djtasks.controls). In that transaction, in this order:

1. Candidates: due READY rows, best first, locked FOR UPDATE SKIP LOCKED
   (as the plain claim locks its rows: claimers never wait for each other's
   jobs, and a row goes to one claimer). Rows whose key is known to be full
   (a rate limit's ``blocked_until`` hint, a concurrency key's RUNNING
   count) are filtered out here already, so a long queue of waiting jobs is
   skipped in SQL, left READY and untouched: no write, no spin, and other
   jobs flow past it. The filter is only a hint; step 3 decides. A
   candidate of a paused task is flagged ``paused`` instead (out of the
   index from then on) and the scan goes on.
2. The locks of every key the candidates need: the djtasks_limit row of
   each rate limit (created if missing) FOR UPDATE, then a transaction
   advisory lock per concurrency key and per queue with a concurrency
   limit, each kind in sorted order. Claimers
   that need the same key take turns and, locking in one order, never
   deadlock. (Claimers wait only for each other's limit bookkeeping, never
   for a job row: those were locked with SKIP LOCKED.)
3. With the locks held, each candidate in turn starts if every limit it is
   under has room: a rate limit counts the starts booked on its row within
   the sliding window; a concurrency key (or a queue's concurrency limit)
   counts its RUNNING rows, read after the lock, so they include what the
   previous holder committed.
4. The starts are booked on the rate limits' rows; djtasks.worker.claim marks the
   chosen rows RUNNING before the transaction (and its locks) ends.

Only the candidates are per backend (a worker claims its own TASKS alias's
rows); the limits are per database: a rate limit's row and a concurrency
key's RUNNING count take in the jobs of every alias sharing the database, as
they guard one resource (an API, a customer's account) whoever enqueued.

A concurrency slot needs no bookkeeping to be released: it is a RUNNING row,
so a job that finishes, fails, is cancelled, handed back or rescued frees it.
A rate limit's start stays booked even if the job is handed back unrun, so
a limit errs on the side of fewer starts.

On SQLite the claim transaction holds the database's write lock from BEGIN
(IMMEDIATE), so claimers run these steps one at a time; FOR UPDATE is left
out and no key lock is needed.

This assumes READ COMMITTED (the default of PostgreSQL and Django): each
statement after the lock sees what was committed before it.
"""

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, OperationalError, connections
from django.db.models import Count, Q
from django.utils import timezone

from djtasks.limits import (
    CONCURRENCY_PREFIX,
    QUEUE_PREFIX,
    RUNNING_PREFIX,
    TASK_PREFIX,
    Rate,
    parse_rate,
)
from djtasks.models import Job, JobStatus, Limit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The first half of djtasks' advisory lock ids (pg_advisory_xact_lock(int,
# int)), so they do not meet other applications' single-number locks: "djtk".
ADVISORY_CLASS = 0x646A746B

_CANDIDATE_FIELDS = (
    "id",
    "queue_name",
    "task_path",
    "rate_limit",
    "concurrency_key",
    "concurrency_limit",
)


class LimitedGate:
    """Paces one claim thread's look for limited jobs.

    After a look that found none, the next waits ``interval`` seconds, so a
    worker with no limited jobs (or only waiting ones) pays one small query
    per interval, not one per claim.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self._next_look = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_look

    def found(self, count: int) -> None:
        self._next_look = 0.0 if count else time.monotonic() + self.interval


def choose(
    database: str, backend: str, queues, stored, limit: int, now, skip_tasks=frozenset()
) -> tuple[list, datetime]:
    """Lock and book up to ``limit`` jobs of TASKS[``backend``] under a limit.

    Returns their ids and the time their starts were booked at, which the
    caller stores as their start: it is read after the limits' locks are
    held, so it is later than every start booked before.

    ``stored`` is the claim's djtasks.controls snapshot; jobs of
    ``skip_tasks`` are left for other workers. Runs inside the
    caller's transaction, which must mark the returned rows RUNNING before
    it commits.
    """
    rate_limited = stored.queue_rates()
    limited_queues = [q for q in queues if q in rate_limited or q in stored.queue_concurrency]
    open_queues = _open_queues(database, limited_queues, stored, now)
    candidates = _unpaused_candidates(
        database, backend, queues, open_queues, stored, limit, now, skip_tasks
    )
    if not candidates:
        return [], now
    needs = {job[0]: _needs(job, stored, rate_limited) for job in candidates}
    ledger = _Ledger(database, now, sorted({key for keys in needs.values() for key in keys}))
    chosen = []
    for job in candidates:
        if ledger.take(needs[job[0]]):
            chosen.append(job[0])
            if len(chosen) == limit:
                break
    ledger.save()
    return chosen, ledger.booked_at


def _open_queues(database, queues, stored, now) -> list[str]:
    """The limited ``queues`` not known to be full (read without a lock)."""
    if not queues:
        return []
    blocked = set(
        Limit.objects.using(database)
        .filter(key__in=[QUEUE_PREFIX + queue for queue in queues], blocked_until__gt=now)
        .values_list("key", flat=True)
    )
    running = _running_per_queue(database, [q for q in queues if q in stored.queue_concurrency])

    def full(queue):
        limit = stored.queue_concurrency.get(queue)
        return limit is not None and running.get(queue, 0) >= limit

    return [queue for queue in queues if QUEUE_PREFIX + queue not in blocked and not full(queue)]


def _running_per_queue(database, queues) -> dict[str, int]:
    if not queues:
        return {}
    return dict(
        Job.objects.using(database)
        .filter(status=JobStatus.RUNNING, queue_name__in=queues)
        .order_by()
        .values("queue_name")
        .annotate(count=Count("pk"))
        .values_list("queue_name", "count")
    )


def _unpaused_candidates(
    database, backend, queues, open_queues, stored, limit, now, skip_tasks
) -> list[tuple]:
    """Step 1, with the candidates of paused tasks flagged and passed over."""
    while True:
        candidates = _candidates(
            database, backend, queues, open_queues, stored, limit, now, skip_tasks
        )
        paused = [job[0] for job in candidates if job[2] in stored.paused_tasks]
        if not paused:
            return candidates
        # Locked by _candidates (SKIP LOCKED), so no claimer races this.
        Job.objects.using(database).filter(pk__in=paused).update(paused=True)


def _candidates(
    database, backend, queues, open_queues, stored, limit, now, skip_tasks=frozenset()
) -> list[tuple]:
    """Step 1: due READY rows of ``backend`` under a limit, best first, locked SKIP LOCKED."""
    under_limit = Q(limited=True, queue_name__in=queues)
    if open_queues:
        under_limit |= Q(queue_name__in=open_queues)
    # "paused" is false in both ready indexes' conditions: said here, the
    # planner may read them.
    jobs = Job.objects.using(database).filter(
        under_limit, status=JobStatus.READY, backend=backend, paused=False, available_at__lte=now
    )
    # Jobs that would wait anyway are skipped in the scan. Both lists are
    # read first and passed as constants (a few tasks, and keys with RUNNING
    # jobs, at most the workers' threads): a sub-query per row costs ten
    # times more over a long queue of waiting jobs.
    full_tasks = [
        key.removeprefix(TASK_PREFIX)
        for key in Limit.objects.using(database)
        .filter(key__startswith=TASK_PREFIX, blocked_until__gt=now)
        .values_list("key", flat=True)
    ]
    if full_tasks:
        rated = Q(rate_limit__isnull=False) | Q(task_path__in=list(stored.task_rates))
        jobs = jobs.exclude(rated, task_path__in=full_tasks)
    if skip_tasks:
        # Another worker's: it has the task, this one does not.
        jobs = jobs.exclude(task_path__in=sorted(skip_tasks))
    for running, keys in _keys_by_running(database).items():
        jobs = jobs.exclude(concurrency_key__in=keys, concurrency_limit__lte=running)
    locked = jobs.order_by("-priority", "available_at").select_for_update(skip_locked=True)
    if connections[database].vendor == "mysql":
        return _ranges_merged(locked, queues, open_queues, limit)
    return list(locked.values_list(*_CANDIDATE_FIELDS)[:limit])


def _ranges_merged(locked, queues, open_queues, limit) -> list[tuple]:
    """_candidates on MariaDB/MySQL: one ordered index range at a time.

    InnoDB locks every row it reads, and a query over several queues, or
    over limited and plain rows, reads every matching row to sort them,
    locking them all: the first claimer would hold a whole backlog and the
    others find nothing. Each (queue, limited) pair is one range of
    djtasks_job_ready in claim order, read only up to ``limit``; the rows
    beyond the best ``limit`` stay locked, untouched, until the COMMIT.
    """
    rows = []
    for queue in queues:
        for limited in (True, False) if queue in open_queues else (True,):
            pairs = locked.filter(queue_name=queue, limited=limited)
            rows += pairs.values_list(*_CANDIDATE_FIELDS, "priority", "available_at")[:limit]
    rows.sort(key=lambda row: (-row[-2], row[-1]))
    return [row[:-2] for row in rows[:limit]]


def _keys_by_running(database) -> dict[int, list[str]]:
    """{RUNNING jobs: the concurrency keys that have that many}."""
    counts = (
        Job.objects.using(database)
        .filter(status=JobStatus.RUNNING, concurrency_key__isnull=False)
        .order_by()
        .values("concurrency_key")
        .annotate(count=Count("pk"))
        .values_list("concurrency_key", "count")
    )
    grouped = {}
    for key, count in counts:
        grouped.setdefault(count, []).append(key)
    return grouped


def _needs(job, stored, rate_limited) -> dict:
    """{limit key: Rate or concurrency limit} for one candidate row."""
    _, queue, task_path, rate_limit, concurrency_key, concurrency_limit = job
    needs = {}
    if queue in rate_limited:
        needs[QUEUE_PREFIX + queue] = rate_limited[queue]
    if queue in stored.queue_concurrency:
        needs[RUNNING_PREFIX + queue] = stored.queue_concurrency[queue]
    # A stored override wins over the rate the row was enqueued with.
    task_rate = stored.task_rates.get(task_path)
    if task_rate is None and rate_limit:
        task_rate = parse_rate(rate_limit)
    if task_rate is not None:
        needs[TASK_PREFIX + task_path] = task_rate
    if concurrency_key:
        needs[CONCURRENCY_PREFIX + concurrency_key] = concurrency_limit or 1
    return needs


def _micros(moment: datetime) -> int:
    # Exact integers, so a start booked at ``now`` and the claim's
    # last_attempted_at (the same ``now``) fall in the same windows.
    return (moment - EPOCH) // timedelta(microseconds=1)


class _Ledger:
    """Steps 2 and 3: the locked rows of some keys, and the starts booked."""

    def __init__(self, database, now, keys):
        self.database = database
        rate_keys = [key for key in keys if key.startswith((QUEUE_PREFIX, TASK_PREFIX))]
        concurrency_keys = [
            key.removeprefix(CONCURRENCY_PREFIX)
            for key in keys
            if key.startswith(CONCURRENCY_PREFIX)
        ]
        running_queues = [
            key.removeprefix(RUNNING_PREFIX) for key in keys if key.startswith(RUNNING_PREFIX)
        ]
        # Lock order, the same in every claimer: rate rows, then concurrency
        # keys and queues, each sorted.
        self.rows = _lock_rate_rows(database, rate_keys)
        _lock_concurrency_keys(
            database, concurrency_keys + [RUNNING_PREFIX + queue for queue in running_queues]
        )
        # The starts are booked at a time read now, with the locks held, not
        # at the claim's ``now``: a claimer that read the clock first but got
        # the locks (or SQLite's write lock) second would otherwise book an
        # earlier start after a later one, and a window ending at the later
        # one would hold one start too many (6 in a 5/s limit, seen in CI).
        self.booked_at = max(now, timezone.now())
        self.now = _micros(self.booked_at)
        # RUNNING counts read after the locks: they include what the
        # previous holder of each lock committed.
        by_key = (
            Job.objects.using(database)
            .filter(status=JobStatus.RUNNING, concurrency_key__in=concurrency_keys)
            .order_by()
            .values("concurrency_key")
            .annotate(count=Count("pk"))
            .values_list("concurrency_key", "count")
        )
        self.running = {CONCURRENCY_PREFIX + key: count for key, count in by_key}
        for queue, count in _running_per_queue(database, running_queues).items():
            self.running[RUNNING_PREFIX + queue] = count
        self.taken = dict.fromkeys(keys, 0)
        # The rate each rate key was last checked with (the longest period
        # seen decides how much history its row keeps).
        self.rates: dict[str, Rate] = {}
        self.periods: dict[str, int] = {}

    def take(self, needs: dict) -> bool:
        """Book one start under every limit in ``needs`` if all have room."""
        if not all(self._room(key, limit) for key, limit in needs.items()):
            return False
        for key in needs:
            self.taken[key] += 1
        return True

    def _room(self, key, limit) -> bool:
        if isinstance(limit, Rate):
            self.rates[key] = limit
            self.periods[key] = max(self.periods.get(key, 0), limit.micros)
            return self._started(key, limit) + self.taken[key] < limit.count
        return self.running.get(key, 0) + self.taken[key] < limit

    def _started(self, key, rate: Rate) -> int:
        """Starts booked on the key's row within the window ending now."""
        since = self.now - rate.micros
        return sum(count for stamp, count in self.rows[key].starts if stamp > since)

    def save(self) -> None:
        """Step 4: book the starts; note when a full rate limit has room again."""
        for key, rate in self.rates.items():
            row = self.rows[key]
            since = self.now - self.periods[key]
            starts = [entry for entry in row.starts if entry[0] > since]
            if self.taken[key]:
                starts.append([self.now, self.taken[key]])
            blocked_until = _room_again(starts, rate)
            if starts != row.starts or blocked_until != row.blocked_until:
                Limit.objects.using(self.database).filter(pk=row.pk).update(
                    starts=starts, blocked_until=blocked_until
                )


def _lock_rate_rows(database, keys) -> dict:
    """The djtasks_limit rows of ``keys``, created if missing, locked."""
    if not keys:
        return {}
    rows = Limit.objects.using(database)
    if connections[database].vendor == "mysql":
        return _lock_rate_rows_mysql(rows, keys)
    # Created first, in key order (an INSERT of a new key waits for a
    # concurrent one of the same key, so the order matters here too).
    rows.bulk_create([Limit(key=key) for key in keys], ignore_conflicts=True)
    # FOR UPDATE, rows locked in key order (PostgreSQL locks rows as the
    # sorted result yields them), so claimers never deadlock.
    locked = rows.filter(key__in=keys).order_by("key").select_for_update()
    return {row.key: row for row in locked}


def _lock_rate_rows_mysql(rows, keys) -> dict:
    """_lock_rate_rows on MariaDB/MySQL: the existing rows locked first.

    There an INSERT IGNORE that meets an existing key takes a shared lock on
    it; two claimers holding that lock then both wait to make it exclusive
    (FOR UPDATE), a deadlock InnoDB resolves by failing one claim. So only
    the missing keys are inserted, which happens once per key: two claimers
    meeting a new key at the same moment can still deadlock there, and the
    failed claim is simply made again by its worker.
    """
    locked = {row.key: row for row in rows.filter(key__in=keys).order_by("key").select_for_update()}
    missing = [key for key in keys if key not in locked]
    if missing:
        rows.bulk_create([Limit(key=key) for key in missing], ignore_conflicts=True)
        created = rows.filter(key__in=missing).order_by("key").select_for_update()
        locked.update({row.key: row for row in created})
    return locked


def _lock_concurrency_keys(database, keys) -> None:
    """Take a transaction-scoped lock per concurrency key (PostgreSQL).

    An advisory lock, not a row: there may be a key per customer, and an
    advisory lock leaves nothing behind to prune. It is released at commit,
    after the chosen jobs are RUNNING. Two keys whose hashes collide share a
    lock, which only makes their claimers take turns. SQLite needs none: its
    claims run one at a time.
    """
    connection = connections[database]
    if not keys or connection.vendor == "sqlite":
        return
    with connection.cursor() as cursor:
        # Sorted by lock id: one order in every claimer, so no deadlock.
        for lock_id in sorted({_lock_id(key) for key in keys}):
            if connection.vendor == "mysql":
                _get_named_lock(cursor, database, lock_id)
            else:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_CLASS, lock_id])


# MariaDB and MySQL: named locks (GET_LOCK) belong to the session, not the
# transaction, so the claim releases them itself once its transaction has
# ended, committed or not (release_named_locks). How long a claim waits for
# a key's lock, which another claim holds for one short transaction:
NAMED_LOCK_WAIT = 10
# The database aliases whose session may hold named locks, per thread (a
# Django connection belongs to one thread): most limited claims take none,
# and need no release statement.
_named_locks = threading.local()


def _get_named_lock(cursor, database, lock_id) -> None:
    # Marked before asking: a GET_LOCK that is granted as the connection
    # breaks must still be released if the session survives.
    _sessions_with_named_locks().add(database)
    cursor.execute(
        "SELECT GET_LOCK(%s, %s)", [f"djtasks:{ADVISORY_CLASS}:{lock_id}", NAMED_LOCK_WAIT]
    )
    (granted,) = cursor.fetchone()
    if granted != 1:
        raise OperationalError(f"timed out waiting for the concurrency key lock {lock_id}")


def _sessions_with_named_locks() -> set:
    if not hasattr(_named_locks, "aliases"):
        _named_locks.aliases = set()
    return _named_locks.aliases


def release_named_locks(database) -> None:
    """Release this session's named locks (MariaDB/MySQL; a no-op elsewhere)."""
    held = _sessions_with_named_locks()
    if database not in held:
        return
    held.discard(database)
    connection = connections[database]
    if connection.connection is None:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_ALL_LOCKS()")
    except DatabaseError:
        pass  # a broken connection: its session, and so its locks, are gone


def _lock_id(key: str) -> int:
    # A hash that is the same in every process (Python's hash() is not).
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _room_again(starts, rate: Rate):
    """When a full window gets room for one more start; None if it has room."""
    total = sum(count for _, count in starts)
    if total < rate.count:
        return None
    for stamp, count in starts:  # oldest first
        total -= count
        if total < rate.count:
            # The start booked at ``stamp`` leaves the window one period on.
            return EPOCH + timedelta(microseconds=stamp + rate.micros)
    return None
