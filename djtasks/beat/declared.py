"""Schedules declared in code: @periodic and DJTASKS["SCHEDULES"].

Both only record declarations. ``sync()`` (run by every beat as it starts)
writes them into the Schedule table by name: it creates and updates the rows
declared in code, leaves the rows made in the admin alone, and disables
(never deletes) code rows that are no longer declared. A declaration goes
only into the database its task's backend keeps jobs in: a beat of another
database could never enqueue it (see Beat._task_of).
"""

import logging
from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone

from djtasks import registry
from djtasks.beat.timing import MISFIRE_LATEST, MISFIRE_POLICIES, Timing, validate_timing
from djtasks.conf import settings

logger = logging.getLogger("djtasks")

# The note set on a code-declared schedule that left the code.
REMOVED_NOTE = "Disabled: no longer declared in code."
# The note set on a code-declared schedule whose task's backend keeps its
# jobs in another database than the one the row is in.
ELSEWHERE_NOTE = "Disabled: its task's backend keeps jobs in another database."
# Fields a declaration sets (besides name and task_path).
DECLARED_FIELDS = (
    "args",
    "kwargs",
    "queue_name",
    "priority",
    "cron",
    "interval",
    "run_at",
    "time_zone",
    "start_at",
    "end_at",
    "misfire_policy",
    "misfire_cap",
    "skip_if_running",
)
TIMING_FIELDS = ("cron", "interval", "run_at", "time_zone", "start_at", "end_at")

_declared: dict[str, dict] = {}


def periodic(
    *,
    cron: str = "",
    interval: timedelta | float | None = None,
    run_at: datetime | None = None,
    name: str | None = None,
    args=(),
    kwargs=None,
    time_zone: str | None = None,
    **options,
):
    """Run the decorated task on a schedule; apply on top of @task.

    ``@periodic(cron="*/5 * * * *")`` or ``@periodic(interval=60)``; stack it
    to declare several schedules of one task (give each a ``name``).
    """

    def decorate(task):
        path = getattr(task, "module_path", None)
        if path is None:
            raise TypeError("@periodic goes on top of @task (it needs a Task object).")
        declare(
            name or path,
            {
                "task": path,
                "cron": cron,
                "interval": interval,
                "run_at": run_at,
                "args": args,
                "kwargs": kwargs or {},
                "time_zone": time_zone,
                "queue_name": task.queue_name,
                "priority": task.priority,
                **options,
            },
        )
        return task

    return decorate


def declare(name: str, spec: dict) -> None:
    """Record one schedule declared in code, checking it now (at import)."""
    if name in _declared and _declared[name] != spec:
        raise ImproperlyConfigured(f"Two schedules in code are named {name!r}.")
    fields_of(name, spec)
    _declared[name] = spec


def declarations() -> dict[str, dict]:
    """Every schedule declared in code: djtasks' own, decorators, then the setting."""
    # Imported here: this module loads with djtasks/__init__, before the models.
    from djtasks.prune import builtin_schedules

    found = builtin_schedules()
    found.update(_declared)
    found.update(settings.SCHEDULES or {})
    return found


def fields_of(name: str, spec: dict) -> dict:
    """The Schedule fields of a declaration, or ImproperlyConfigured."""
    spec = dict(spec)
    unknown = set(spec) - set(DECLARED_FIELDS) - {"task", "enabled"}
    if unknown:
        raise ImproperlyConfigured(
            f"Schedule {name!r}: unknown option(s) {', '.join(sorted(unknown))}."
        )
    if not spec.get("task"):
        raise ImproperlyConfigured(f"Schedule {name!r}: give the task's dotted path as 'task'.")
    interval = spec.get("interval")
    if isinstance(interval, (int, float)):
        interval = timedelta(seconds=interval)
    fields = {
        "task_path": spec["task"],
        **{key: spec[key] for key in DECLARED_FIELDS if spec.get(key) is not None},
        "cron": spec.get("cron") or "",
        "interval": interval,
        "run_at": spec.get("run_at"),
        "args": list(spec.get("args") or ()),
        "kwargs": dict(spec.get("kwargs") or {}),
        "time_zone": spec.get("time_zone") or _default_zone(),
    }
    if fields.get("misfire_policy", MISFIRE_LATEST) not in MISFIRE_POLICIES:
        raise ImproperlyConfigured(
            f"Schedule {name!r}: misfire_policy must be one of {', '.join(MISFIRE_POLICIES)}."
        )
    errors = validate_timing(
        fields["cron"],
        fields["interval"],
        fields["run_at"],
        fields["time_zone"],
        fields.get("start_at"),
        fields.get("end_at"),
    )
    if errors:
        raise ImproperlyConfigured(f"Schedule {name!r}: {'; '.join(errors.values())}")
    return fields


def _default_zone() -> str:
    from django.conf import settings as django_settings

    return django_settings.TIME_ZONE or "UTC"


def sync(database: str, now: datetime | None = None) -> None:
    """Write the declared schedules into the table (see the module doc)."""
    from djtasks.models import Schedule

    now = now or timezone.now()
    declared = declarations()
    with transaction.atomic(using=database):
        here = {
            name
            for name, spec in declared.items()
            if _sync_one(Schedule, database, name, spec, now)
        }
        stale = (
            Schedule.objects.using(database)
            .filter(declared_in_code=True, enabled=True)
            .exclude(name__in=list(here))
        )
        elsewhere = stale.filter(name__in=list(declared))
        for name in elsewhere.values_list("name", flat=True):
            # Written here before the rule above existed: each of its runs
            # would only be refused. The beat of its task's database has it.
            logger.warning("beat: schedule %r belongs to another database: disabled", name)
        elsewhere.update(enabled=False, last_error=ELSEWHERE_NOTE, next_run_at=None)
        removed = stale.exclude(name__in=list(declared))
        for name in removed.values_list("name", flat=True):
            logger.warning("beat: schedule %r is no longer declared in code: disabled", name)
        removed.update(enabled=False, last_error=REMOVED_NOTE, next_run_at=None)


def _sync_one(schedule_model, database, name, spec, now) -> bool:
    """Create or update one declared schedule; False if it belongs to another database."""
    try:
        fields = fields_of(name, spec)
    except ImproperlyConfigured as error:
        # Declarations are checked at import; a bad setting must not stop beat.
        logger.error("beat: %s", error)
        return True
    if not _runs_from(database, fields["task_path"]):
        return False
    _default_to_task_options(fields)
    enabled = spec.get("enabled", True)
    manager = schedule_model.objects.using(database)
    row = manager.select_for_update().filter(name=name).first()
    if row is None:
        row = schedule_model(name=name, declared_in_code=True, enabled=enabled, **fields)
        row.next_run_at = Timing.of(row).first_run(now)
        try:
            # A savepoint: another beat starting now may insert it first.
            with transaction.atomic(using=database):
                row.save(using=database, force_insert=True)
            logger.info("beat: schedule %r declared in code: created", name)
        except IntegrityError:
            pass
        return True
    if not row.declared_in_code:
        logger.warning(
            "beat: schedule %r exists in the admin; the code declaration is ignored", name
        )
        return True
    _update(row, fields, database, now)
    return True


def _runs_from(database, task_path) -> bool:
    """Whether a beat of ``database`` may enqueue the task at ``task_path``.

    Not when the task's backend is a djtasks one keeping its jobs in another
    database: with queues split across databases, each beat would otherwise
    hold every other database's schedules and refuse each of their runs.
    A task that is not registered, or not on a djtasks backend, is written
    anyway: the beat says what is wrong with it when it is due.
    """
    try:
        backend = registry.get(task_path).get_backend()
    except Exception:  # noqa: BLE001 - unknown task or backend: the beat reports it
        return True
    jobs_database = getattr(backend, "database", None)
    return jobs_database is None or jobs_database == database


def _default_to_task_options(fields) -> None:
    """A schedule from settings takes its task's queue and priority unless given."""
    try:
        task = registry.get(fields["task_path"])
    except registry.UnknownTask:
        return  # beat flags the schedule when it is due
    fields.setdefault("queue_name", task.queue_name)
    fields.setdefault("priority", task.priority)


def _update(row, fields, database, now) -> None:
    changed = [key for key, value in fields.items() if getattr(row, key) != value]
    # Re-enable a schedule that left the code and came back; otherwise the
    # admin's enabled switch wins.
    revived = not row.enabled and row.last_error in (REMOVED_NOTE, ELSEWHERE_NOTE)
    if not changed and not revived:
        return
    for key, value in fields.items():
        setattr(row, key, value)
    if revived:
        row.enabled, row.last_error = True, ""
    if revived or any(key in TIMING_FIELDS for key in changed) or row.next_run_at is None:
        row.next_run_at = Timing.of(row).first_run(now)
    row.save(using=database)
    logger.info("beat: schedule %r declared in code: updated %s", row.name, ", ".join(changed))
