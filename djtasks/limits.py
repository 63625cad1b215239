"""Rate limits and concurrency keys: what they mean, parsed and validated.

A rate limit ``"100/m"`` lets at most 100 jobs start in any 60-second span
(a sliding window, not calendar minutes). A concurrency key lets at most N
jobs of the key be RUNNING at once. Both are enforced when jobs are claimed,
by djtasks.worker.claim_limited; this module holds only the pure parts.
"""

import functools
import re
from dataclasses import dataclass

from djtasks.conf import settings

PERIODS = {"s": 1, "m": 60, "h": 3600}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")

# Keys of djtasks_limit rows (one per rate-limited queue and task), and the
# namespace of concurrency keys in the claim's bookkeeping.
QUEUE_PREFIX = "queue:"
TASK_PREFIX = "task:"
CONCURRENCY_PREFIX = "concurrency:"
# The claim's bookkeeping of a queue's stored concurrency limit (no row).
RUNNING_PREFIX = "running:"


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts in any ``seconds``-long span."""

    count: int
    seconds: int

    @property
    def micros(self) -> int:
        return self.seconds * 1_000_000

    def __str__(self) -> str:
        unit = {seconds: unit for unit, seconds in PERIODS.items()}[self.seconds]
        return f"{self.count}/{unit}"


def parse_rate(value) -> Rate:
    """Parse ``"100/m"`` (per s, m or h); raise ValueError if malformed."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            f"{value!r} is not a rate limit: write a positive whole number of "
            f'jobs per s, m or h, e.g. "100/m".'
        )
    return Rate(int(match.group(1)), PERIODS[match.group(2)])


def queue_rate_limits() -> dict[str, Rate]:
    """DJTASKS["QUEUE_RATE_LIMITS"], parsed (ValueError names a bad entry)."""
    # Read on every claim: parsed once per distinct setting.
    return _parsed_queue_limits(tuple((settings.QUEUE_RATE_LIMITS or {}).items()))


@functools.lru_cache(maxsize=8)
def _parsed_queue_limits(items) -> dict[str, Rate]:
    limits = {}
    for queue, value in items:
        try:
            limits[queue] = parse_rate(value)
        except ValueError as error:
            raise ValueError(f'DJTASKS["QUEUE_RATE_LIMITS"][{queue!r}]: {error}') from None
    return limits


def concurrency_of(task, args, kwargs) -> tuple[str | None, int | None]:
    """The (key, limit) a new job of ``task`` is subject to, or (None, None).

    A callable key is called with the job's arguments. A limit without a key
    limits the task as a whole; a key without a limit allows one at a time.
    """
    key = getattr(task, "concurrency_key", None)
    limit = getattr(task, "concurrency_limit", None)
    if key is None and limit is None:
        return None, None
    if callable(key):
        key = key(*args, **kwargs)
        if not (isinstance(key, str) and 0 < len(key) <= 255):
            raise ValueError(
                f"The concurrency_key callable of {task.module_path} returned "
                f"{key!r}; it must return a string of 1 to 255 characters."
            )
    return key if key is not None else task.module_path, limit or 1
