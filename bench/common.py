"""The measuring side of every system's driver, the same code for all.

Each system has a small driver (``bench/systems/<name>/driver.py``) that runs
inside that system's own virtualenv and knows only how to enqueue a no-op
job, enqueue a latency probe and count unfinished jobs. Everything that is
timed is timed here, identically for every system, so the figures compare.

Only the standard library is used: this file is imported by every venv.
"""

import json
import os
import select
import statistics
import sys
import time

# The mixed load: sleeping jobs of these durations (ms), in turn.
MIXED_MILLIS = (1, 10, 100)

# How often ``watch`` counts the unfinished jobs while a worker drains.
# Shorter measures more finely but loads the database the worker uses.
WATCH_INTERVAL = 0.025
# A count may take longer than that (MariaDB counts 100,000 queued rows in
# 15-50 ms here): then the pause after it is this many times the count's
# own time, so the counting keeps at most a fifth of one server thread.
WATCH_PAUSE_FACTOR = 4


class Adapter:
    """What a driver provides. Methods a system lacks stay None."""

    def setup(self):
        """Create the schema (migrations, tables)."""

    def reset(self):
        """Delete every job, finished or not."""
        raise NotImplementedError

    def enqueue_noop(self):
        """Enqueue one no-op job, as a user's code would."""
        raise NotImplementedError

    # bulk_noop(n): enqueue n no-op jobs with the system's bulk API.
    bulk_noop = None

    def fill(self, count):
        """Enqueue ``count`` no-op jobs as fast as the system allows."""
        if self.bulk_noop is not None:
            for start in range(0, count, 10_000):
                self.bulk_noop(min(10_000, count - start))
        else:
            for _ in range(count):
                self.enqueue_noop()

    def fill_atomic(self, count):
        """Enqueue ``count`` no-op jobs in one transaction: they appear at once.

        For workers that are already running (bench/hosts.py): every one
        sees the whole backlog at the same moment.
        """
        raise NotImplementedError

    # bulk_sleep(millis): enqueue one job per item, each sleeping that many ms
    # (time.sleep, or asyncio.sleep for an async-only system).
    bulk_sleep = None

    def fill_mixed(self, count):
        """Enqueue ``count`` sleeping jobs, 1, 10 and 100 ms in turn."""
        millis = [MIXED_MILLIS[index % len(MIXED_MILLIS)] for index in range(count)]
        for start in range(0, count, 10_000):
            self.bulk_sleep(millis[start : start + 10_000])

    def enqueue_probe(self, path, index):
        """Enqueue the latency probe task with these arguments."""
        raise NotImplementedError

    def remaining(self):
        """How many jobs are not finished yet (queued or running)."""
        raise NotImplementedError

    def failed(self):
        """How many jobs ended in failure (None: the system does not say)."""
        return None

    def extra(self, command, args):
        """System-specific commands (djtasks: history rows)."""
        raise SystemExit(f"unknown command {command!r}")


def emit(payload):
    """The driver's answer: one JSON line on stdout, read by run.py."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(adapter, argv=None):
    """Dispatch ``driver.py COMMAND [ARGS]`` to the adapter and time it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command, args = argv[0], argv[1:]
    if command == "setup":
        adapter.setup()
        emit({"ok": True})
    elif command == "reset":
        adapter.reset()
        emit({"ok": True})
    elif command == "enqueue-one":
        emit({"seconds": _time_one_by_one(adapter, int(args[0])), "jobs": int(args[0])})
    elif command == "enqueue-bulk":
        if adapter.bulk_noop is None:
            emit({"unsupported": True})
        else:
            started = time.perf_counter()
            adapter.bulk_noop(int(args[0]))
            emit({"seconds": time.perf_counter() - started, "jobs": int(args[0])})
    elif command == "fill":
        adapter.fill(int(args[0]))
        emit({"remaining": adapter.remaining()})
    elif command == "fill-atomic":
        adapter.fill_atomic(int(args[0]))
        emit({"remaining": adapter.remaining()})
    elif command == "fill-mixed":
        if adapter.bulk_sleep is None:
            emit({"error": "no sleeping task for the mixed load"})
        else:
            adapter.fill_mixed(int(args[0]))
            emit({"remaining": adapter.remaining()})
    elif command == "remaining":
        emit({"remaining": adapter.remaining()})
    elif command == "wait-empty":
        deadline = time.monotonic() + float(args[0])
        while _count_and_pause(adapter)[0] and time.monotonic() < deadline:
            pass
        emit({"remaining": adapter.remaining()})
    elif command == "watch":
        emit(watch(adapter, int(args[0]), float(args[1])))
    elif command == "watch-arrival":
        emit(watch(adapter, int(args[0]), float(args[1]), arrival=True))
    elif command == "latency":
        emit(latency(adapter, int(args[0]), float(args[1]), args[2], float(args[3])))
    else:
        adapter.extra(command, args)


def _count_and_pause(adapter):
    """(remaining, seconds it took), after the pause that should follow the count."""
    started = time.monotonic()
    remaining = adapter.remaining()
    took = time.monotonic() - started
    if remaining:
        time.sleep(max(WATCH_INTERVAL, WATCH_PAUSE_FACTOR * took))
    return remaining, took


def _time_one_by_one(adapter, count):
    enqueue = adapter.enqueue_noop
    started = time.perf_counter()
    for _ in range(count):
        enqueue()
    return time.perf_counter() - started


def watch(adapter, expected, timeout, arrival=False):
    """Time a drain of ``expected`` jobs by counting unfinished ones.

    Prints "ready" once the jobs are all there, then polls (every
    WATCH_INTERVAL, or longer after a slow count). The rate is
    taken between the first count below ``expected`` and the count of zero,
    so worker start-up (Django, imports, first connection) is not in it.
    A drain so short that it falls between two polls is timed from the last
    poll that still saw every job: a lower bound on the rate, never a
    division by zero.

    ``arrival``: the queue is empty and the workers already run; prints
    "ready", then waits for the jobs (enqueued in one transaction, see
    ``fill_atomic``) and times from the first count that sees them. The
    enqueuer writes a line to stdin once its transaction committed: if no
    count saw a job by then, the drain fell between two polls and is timed
    over the whole fill, again a lower bound.
    """
    remaining = adapter.remaining()
    if remaining != (0 if arrival else expected):
        return {"error": f"expected {0 if arrival else expected} queued jobs, found {remaining}"}
    print("ready", flush=True)
    ready = time.time()
    deadline = time.monotonic() + timeout
    first = None
    pause = WATCH_INTERVAL
    if arrival:
        remaining = _wait_for_arrival(adapter, deadline)
        if remaining is None:
            return {"error": f"no job arrived within {timeout}s"}
        if remaining == 0:
            now = time.time()
            return {
                "jobs": expected,
                "seconds": now - ready,
                "rate": expected / (now - ready),
                "first": ready,
                "done": now,
                "between_polls": True,
                "failed": adapter.failed(),
            }
        if remaining > expected:
            return {"error": f"expected {expected} jobs, found {remaining}"}
        if remaining < expected:
            # Workers finished some between the commit and this count.
            first = (time.time(), remaining)
    last_full = time.time()  # the last poll at which no job had finished
    while time.monotonic() < deadline:
        # Taken before the count: a count sees the rows as they were when
        # it started, and a slow one ends long after.
        now, started = time.time(), time.monotonic()
        remaining = adapter.remaining()
        pause = max(WATCH_INTERVAL, WATCH_PAUSE_FACTOR * (time.monotonic() - started))
        if first is None and remaining < expected:
            # Jobs finished before this poll but after ``last_full``.
            first = (now, remaining) if remaining > 0 else (last_full, expected)
        elif first is None:
            last_full = now
        if remaining == 0:
            jobs = first[1]  # jobs finished between the two observations
            seconds = now - first[0]
            return {
                "jobs": jobs,
                "seconds": seconds,
                "rate": jobs / seconds if seconds > 0 else None,
                "first": first[0],
                "done": now,
                # A drain of failing jobs would be fast and meaningless.
                "failed": adapter.failed(),
            }
        time.sleep(pause)
    if first is None:
        return {"error": f"timeout after {timeout}s with {remaining} jobs left"}
    # Not drained in time: the rate of the part that was, and how much was left.
    now = time.time()
    jobs = first[1] - remaining
    return {
        "jobs": jobs,
        "seconds": now - first[0],
        "rate": jobs / (now - first[0]),
        "unfinished": remaining,
        "failed": adapter.failed(),
    }


def _wait_for_arrival(adapter, deadline):
    """The first non-zero count of unfinished jobs.

    0: the enqueuer said (a line on stdin) it had committed before a count
    that found none left. None: nothing before ``deadline``.
    """
    filled = False
    while time.monotonic() < deadline:
        remaining = adapter.remaining()
        if remaining or filled:
            return remaining
        # Read before the next count: a zero after it means drained.
        filled = bool(select.select([sys.stdin], [], [], 0)[0])
        time.sleep(WATCH_INTERVAL)
    return None


def read_probe_file(path):
    """{index: start time} from the lines the probe task appended."""
    starts = {}
    try:
        with open(path) as handle:
            for line in handle:
                parts = line.split()
                if len(parts) == 2:
                    starts[int(parts[0])] = float(parts[1])
    except FileNotFoundError:
        pass
    return starts


def wait_for_probes(path, indexes, timeout):
    deadline = time.monotonic() + timeout
    while True:
        starts = read_probe_file(path)
        if all(index in starts for index in indexes) or time.monotonic() > deadline:
            return starts
        time.sleep(0.02)


def latency(adapter, count, interval, path, timeout):
    """Enqueue ``count`` probes ``interval`` s apart into an idle worker.

    Latency = the probe's first line (time.time() in the worker) minus the
    time just before the enqueue call. One warm-up probe runs first so the
    worker is up, connected and idle when the measured ones arrive.
    """
    if os.path.exists(path):
        os.unlink(path)
    adapter.enqueue_probe(path, -1)
    if -1 not in wait_for_probes(path, [-1], timeout):
        return {"error": "the warm-up probe never started: is the worker running?"}
    time.sleep(0.5)  # let the worker go idle again
    enqueued = {}
    started = time.monotonic()
    for index in range(count):
        # Keep to a fixed schedule, whatever each enqueue took.
        delay = started + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        enqueued[index] = time.time()
        adapter.enqueue_probe(path, index)
    starts = wait_for_probes(path, list(range(count)), timeout)
    missing = [index for index in range(count) if index not in starts]
    if missing:
        return {"error": f"{len(missing)} probes never started"}
    millis = sorted((starts[index] - enqueued[index]) * 1000 for index in range(count))
    return {
        "p50": percentile(millis, 50),
        "p95": percentile(millis, 95),
        "p99": percentile(millis, 99),
        "max": millis[-1],
        "mean": statistics.fmean(millis),
    }


def percentile(ordered, pct):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def record_start(path, index, started):
    """Write down when a probe started; every system's probe task calls this.

    The task itself takes ``started = time.time()`` as its first line.
    """
    # O_APPEND writes of one short line are not interleaved between processes.
    with open(path, "a") as handle:
        handle.write(f"{index} {started:.6f}\n")
