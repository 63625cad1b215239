"""The schedule form of the admin: choices for task, queue and zone, and readable timing input.

What is valid stays the beat's own rule (Schedule.clean() ->
djtasks.beat.timing); this module only offers the choices and reads the
interval the way people write it ("5m", "90s", "1h30m", "1 day, 2:00:00").
"""

import re
import zoneinfo
from datetime import timedelta

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils.dateparse import parse_duration

from djtasks.admin import workers
from djtasks.models import Schedule
from djtasks.registry import autodiscover, registered_paths

CRON_HELP = (
    "Five fields: minute hour day-of-month month day-of-week, read in the time zone below. "
    "<code>30 2 * * *</code> is 02:30 every day, <code>*/15 * * * 1-5</code> every quarter "
    "hour on weekdays, <code>0 9 1 * *</code> 09:00 on the first of each month."
)
INTERVAL_HELP = (
    "A number with a unit: <code>30s</code>, <code>5m</code>, <code>2h</code>, <code>1d</code>, "
    "or combined (<code>1h30m</code>); or <code>HH:MM:SS</code>. The first run is one interval "
    "after the start (or after saving)."
)
RUN_AT_HELP = "One run at this moment, then none."
# One part of an interval: a number and its unit.
INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def task_choices() -> list[str]:
    """The dotted paths of every task the workers may run."""
    autodiscover()
    return registered_paths()


def parse_interval(text: str) -> timedelta | None:
    """``5m``, ``1h30m``, ``90s``, ``2d`` or Django's own duration formats; None if neither."""
    compact = text.replace(" ", "")
    if compact and INTERVAL_PART.sub("", compact) == "":
        delta = timedelta()
        for number, unit in INTERVAL_PART.findall(compact):
            delta += timedelta(**{UNITS[unit.lower()]: float(number)})
        return delta
    return parse_duration(text)


class IntervalField(forms.DurationField):
    default_error_messages = {
        "invalid": "Enter an interval such as 30s, 5m, 2h, 1d, 1h30m or 00:05:00.",
    }

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, timedelta):
            return value
        parsed = parse_interval(str(value).strip())
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return parsed


def _with_current(choices: list[str], current: str, label: str) -> list[tuple[str, str]]:
    """The choices, plus the stored value if it is not among them (so it stays visible)."""
    pairs = [(choice, choice) for choice in choices]
    if current and current not in choices:
        pairs.append((current, f"{current} ({label})"))
    return pairs


class ScheduleForm(forms.ModelForm):
    task_path = forms.ChoiceField(label="Task", help_text="One of the registered tasks.")
    queue_name = forms.ChoiceField(
        label="Queue", help_text="A queue of the TASKS setting or of a running worker."
    )
    time_zone = forms.ChoiceField(
        help_text="Cron times are wall-clock times in this zone (DST included)."
    )
    interval = IntervalField(required=False, help_text=INTERVAL_HELP)

    class Meta:
        model = Schedule
        fields = (
            "name",
            "task_path",
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
            "enabled",
            "misfire_policy",
            "misfire_cap",
            "skip_if_running",
        )
        help_texts = {
            "args": "A JSON list, checked against the task's signature on save: "
            "<code>[1, 2]</code>.",
            "kwargs": 'A JSON object: <code>{"to": "ops@example.com"}</code>.',
            "cron": CRON_HELP,
            "run_at": RUN_AT_HELP,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        # An unregistered stored task stays visible; Schedule.clean() rejects it.
        tasks = _with_current(task_choices(), instance.task_path, "not registered")
        self.fields["task_path"].choices = [("", "---------"), *tasks]
        queues = _with_current(workers.known_queues(), instance.queue_name, "not configured")
        self.fields["queue_name"].choices = queues
        zones = sorted(zoneinfo.available_timezones())
        self.fields["time_zone"].choices = _with_current(zones, instance.time_zone, "unknown")

    def _post_clean(self):
        super()._post_clean()
        # A timing value that did not parse already has its own message;
        # "give exactly one of ..." about the same field would only mislead.
        if any(self.has_error(field) for field in ("cron", "interval", "run_at")):
            errors = self._errors.get(NON_FIELD_ERRORS)
            if errors:
                kept = [e for e in errors if not e.startswith("Give exactly one of")]
                if kept:
                    self._errors[NON_FIELD_ERRORS] = self.error_class(kept, error_class="nonfield")
                else:
                    del self._errors[NON_FIELD_ERRORS]
