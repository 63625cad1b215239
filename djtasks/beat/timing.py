"""When schedules run: cron, interval and one-off times; misfires; validation.

Pure functions of a schedule's fields and a given ``now``, so they are tested
with a controlled clock. All times in and out are aware datetimes in UTC.

Cron expressions are read as wall-clock times in the schedule's time zone:

- A wall time that does not exist (the hour skipped when clocks spring
  forward) runs once, at the first instant after the gap (02:30 Berlin on
  the spring-forward day runs at 03:00 CEST). Several skipped wall times
  fold into that one run.
- A wall time that exists twice (the hour repeated when clocks fall back)
  runs once, at its first occurrence, unless the hour field is ``*``: an
  hourly (or every-n-minutes) expression keeps running by real time through
  the repeated hour, as cron does.
"""

import inspect
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.core.exceptions import ValidationError
from django.utils import timezone

from djtasks import registry

TINY = timedelta(microseconds=1)
# The largest backward shift of a zone's clock (a fall-back) that the cron
# walk accounts for. Real zones shift by one hour at most (two in history).
MAX_FOLD = timedelta(hours=3)
# The most on-time runs one tick enqueues for one schedule.
ON_TIME_LIMIT = 10_000
MISFIRE_LATEST = "latest"
MISFIRE_ALL = "all"
MISFIRE_SKIP = "skip"
MISFIRE_POLICIES = (MISFIRE_LATEST, MISFIRE_ALL, MISFIRE_SKIP)


# --- cron in a time zone ------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {name!r}.") from None


def parse_cron(expression: str) -> croniter:
    """Return a croniter for a 5-field expression (or @daily...), or raise."""
    text = (expression or "").strip()
    fields = text.split()
    if not (len(fields) == 5 or (len(fields) == 1 and text.startswith("@"))):
        raise ValidationError(
            f"{expression!r} is not a cron expression: use 5 fields "
            "(minute hour day-of-month month day-of-week) or @hourly, @daily..."
        )
    try:
        return croniter(text, datetime(2000, 1, 1))
    except (ValueError, KeyError, TypeError) as error:
        raise ValidationError(f"{expression!r} is not a valid cron expression: {error}") from None


def next_cron_time(expression: str, zone_name: str, after: datetime) -> datetime:
    """The first run of ``expression`` strictly after ``after`` (UTC)."""
    tz = zone(zone_name)
    after = after.astimezone(UTC)
    # An hour field "*" keeps running through a repeated hour (see module doc).
    every_hour = parse_cron(expression).expanded[1] == ["*"]
    # Walk naive wall-clock times: croniter's own DST handling is not used.
    # Start one fold early, so wall times that a fall-back repeats later in
    # real time are seen too.
    start = _wall(after, tz) - _fold_before(after, tz)
    walk = croniter(expression.strip(), start)
    best = None
    while True:
        wall = walk.get_next(datetime)
        # Past this point a wall time can no longer map before ``best``
        # (only a fall-back just before ``best`` lets a later wall time come
        # first in real time).
        if best is not None and wall > _wall(best, tz) + _drop_before(best, tz):
            return best
        for instant in instants_of(wall, tz, every_hour):
            if instant > after and (best is None or instant < best):
                best = instant


def instants_of(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants at which the naive wall time ``wall`` runs in ``tz``."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first > second:
        # The wall time does not exist: fold=0 reads it with the offset from
        # before the gap, fold=1 with the one after; the gap ends in between.
        return [_gap_end(second, first, tz)]
    return [first, second] if every_hour else [first]


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _fold_before(instant: datetime, tz: ZoneInfo) -> timedelta:
    """How far a fall-back within MAX_FOLD after ``instant`` turns clocks back."""
    now_offset = instant.astimezone(tz).utcoffset()
    later_offset = (instant + MAX_FOLD).astimezone(tz).utcoffset()
    return max(timedelta(0), now_offset - later_offset)


def _drop_before(instant: datetime, tz: ZoneInfo) -> timedelta:
    """How far a fall-back within MAX_FOLD before ``instant`` turned clocks back."""
    earlier_offset = (instant - MAX_FOLD).astimezone(tz).utcoffset()
    return max(timedelta(0), earlier_offset - instant.astimezone(tz).utcoffset())


def _gap_end(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (low, high] with the offset in force after a gap."""
    after_offset = high.astimezone(tz).utcoffset()
    low_seconds, high_seconds = 0, int((high - low).total_seconds())
    while high_seconds - low_seconds > 1:
        middle = (low_seconds + high_seconds) // 2
        if (low + timedelta(seconds=middle)).astimezone(tz).utcoffset() == after_offset:
            high_seconds = middle
        else:
            low_seconds = middle
    return low + timedelta(seconds=high_seconds)


# --- a schedule's run times -----------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """The fields of a schedule that say when it runs."""

    cron: str = ""
    interval: timedelta | None = None
    run_at: datetime | None = None
    time_zone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    # Interval runs fall on anchor + k * interval.
    anchor: datetime | None = None

    @classmethod
    def of(cls, schedule) -> "Timing":
        return cls(
            cron=schedule.cron,
            interval=schedule.interval,
            run_at=schedule.run_at,
            time_zone=schedule.time_zone,
            start_at=schedule.start_at,
            end_at=schedule.end_at,
            anchor=schedule.start_at or schedule.next_run_at,
        )

    def next_after(self, after: datetime) -> datetime | None:
        """The first run strictly after ``after``; None when there is none."""
        if self.start_at is not None and after < self.start_at:
            after = self.start_at - TINY
        if self.cron:
            candidate = next_cron_time(self.cron, self.time_zone, after)
        elif self.interval:
            candidate = self._next_interval(after)
        else:
            candidate = self.run_at if self.run_at and self.run_at > after else None
        if candidate is not None and self.end_at is not None and candidate > self.end_at:
            return None
        return candidate

    def first_run(self, now: datetime) -> datetime | None:
        """The first run of a new (or just edited) schedule."""
        if self.interval and self.start_at is None:
            # Like Celery and APScheduler: an interval runs one interval from now.
            return replace(self, anchor=now).next_after(now)
        if self.run_at is not None and not self.cron and not self.interval:
            # A one-off in the past is a missed run: the misfire policy decides.
            return self.run_at if self.end_at is None or self.run_at <= self.end_at else None
        return self.next_after(now - TINY)

    def _next_interval(self, after: datetime) -> datetime:
        anchor = self.anchor or self.start_at or after
        if after < anchor:
            return anchor
        steps = (after - anchor) // self.interval + 1
        return anchor + steps * self.interval

    def runs_between(self, low, high, keep: int, first=None) -> list[datetime]:
        """The latest ``keep`` runs in [low, high], oldest first.

        ``first``, if given, is a known run (the stored next_run_at): the
        chain of runs starts there even if the timing was edited since.
        """
        span = (self.interval or timedelta(hours=1)) * keep
        # Walk only a recent window, widened until it holds ``keep`` runs: a
        # beat that was down for a month must not walk every minute of it.
        while True:
            window_low = max(low, high - span)
            runs = self._walk(window_low, high, start=first if window_low == first else None)
            if len(runs) >= keep or window_low == low:
                return runs[-keep:]
            span *= 4

    def _walk(self, low: datetime, high: datetime, start: datetime | None) -> list[datetime]:
        runs = []
        moment = start or self.next_after(low - TINY)
        while moment is not None and moment <= high:
            runs.append(moment)
            moment = self.next_after(moment)
        return runs


def next_runs(schedule, count: int, now: datetime) -> list[datetime]:
    """The next ``count`` runs of ``schedule`` (in its time zone), as beat sees them."""
    timing = Timing.of(schedule)
    moment = schedule.next_run_at or timing.first_run(now)
    runs = []
    while moment is not None and len(runs) < count:
        runs.append(moment.astimezone(zone(schedule.time_zone)))
        moment = timing.next_after(moment)
    return runs


def due_runs(schedule, now: datetime, grace: timedelta) -> tuple[list[datetime], datetime | None]:
    """The runs of a due ``schedule`` to enqueue now, and its next run time.

    A run at most ``grace`` late is on time and always enqueued (a beat that
    ticks a little late must not lose runs). Older runs were missed while no
    beat was up: "latest" enqueues the latest of them unless a run is on
    time, "all" the latest ``misfire_cap`` of them, "skip" none.
    """
    timing = Timing.of(schedule)
    first = schedule.next_run_at
    cutoff = now - grace
    late = []
    if first < cutoff:
        keep = max(schedule.misfire_cap, 1) if schedule.misfire_policy == MISFIRE_ALL else 1
        late = timing.runs_between(first, cutoff - TINY, keep, first=first)
    on_time = []
    if first <= now:
        on_time = timing.runs_between(max(first, cutoff), now, ON_TIME_LIMIT, first=first)
    policy = schedule.misfire_policy
    if policy == MISFIRE_ALL or (policy == MISFIRE_LATEST and not on_time):
        runs = late[-1:] if policy == MISFIRE_LATEST else late
    else:
        runs = []
    return runs + on_time, timing.next_after(now)


# --- validation -----------------------------------------------------------------


def validate_timing(cron, interval, run_at, time_zone, start_at, end_at) -> dict:
    """Errors of the timing fields, as {field: message}."""
    errors = {}
    if bool(cron) + (interval is not None) + (run_at is not None) != 1:
        errors["__all__"] = "Give exactly one of a cron expression, an interval or a run time."
    if cron:
        try:
            parse_cron(cron)
        except ValidationError as error:
            errors["cron"] = error.messages[0]
    if interval is not None and interval <= timedelta(0):
        errors["interval"] = "The interval must be positive."
    try:
        zone(time_zone)
    except ValidationError as error:
        errors["time_zone"] = error.messages[0]
    if start_at and end_at and end_at <= start_at:
        errors["end_at"] = "The end must come after the start."
    return errors


def validate_call(task_path, args, kwargs, queue_name, priority) -> dict:
    """Errors of the task and its call, as {field: message}."""
    try:
        task = registry.get(task_path)
    except registry.UnknownTask:
        return {"task_path": f"{task_path!r} is not a registered task."}
    errors = {}
    if not isinstance(args, list):
        errors["args"] = "args must be a JSON list."
    if not isinstance(kwargs, dict):
        errors["kwargs"] = "kwargs must be a JSON object."
    if not errors:
        errors.update(call_errors(task, args, kwargs))
    try:
        task.using(queue_name=queue_name, priority=priority)
    except Exception as error:  # noqa: BLE001 - any invalid option is a form error
        field = "priority" if "priority" in str(error).lower() else "queue_name"
        errors[field] = str(error)
    return errors


def call_errors(task, args: list, kwargs: dict) -> dict:
    """{"args": message} if the task's function cannot take these arguments.

    A schedule saved with the wrong arguments would fail every run; binding
    them to the signature now says so on save instead.
    """
    function = getattr(task, "func", None)
    if function is None:
        return {}
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return {}  # a builtin or C function: nothing to check against
    # A task that takes its context gets it as its first argument at run time.
    context = [None] if getattr(task, "takes_context", False) else []
    try:
        signature.bind(*context, *args, **kwargs)
    except TypeError as error:
        return {"args": f"{task.module_path}{signature} cannot take these arguments: {error}."}
    return {}


def clean_schedule(schedule, now: datetime | None = None) -> None:
    """Validate a schedule (Schedule.clean) and refresh its next run time."""
    errors = validate_timing(
        schedule.cron,
        schedule.interval,
        schedule.run_at,
        schedule.time_zone,
        schedule.start_at,
        schedule.end_at,
    )
    errors.update(
        validate_call(
            schedule.task_path,
            schedule.args,
            schedule.kwargs,
            schedule.queue_name,
            schedule.priority,
        )
    )
    if errors:
        raise ValidationError(errors)
    if timing_changed(schedule):
        schedule.next_run_at = Timing.of(schedule).first_run(now or timezone.now())
        schedule.last_error = ""


TIMING_FIELDS = ("cron", "interval", "run_at", "time_zone", "start_at", "end_at", "enabled")


def timing_changed(schedule) -> bool:
    """True for a new schedule, or one whose timing (or enabled) was edited."""
    if schedule.next_run_at is None or schedule.pk is None:
        return True
    stored = type(schedule)._default_manager.filter(pk=schedule.pk).values(*TIMING_FIELDS).first()
    if stored is None:
        return True
    return any(stored[name] != getattr(schedule, name) for name in TIMING_FIELDS)
