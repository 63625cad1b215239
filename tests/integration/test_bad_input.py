"""Bad input everywhere: a clear error, no crash, and nothing else disturbed.

Table-driven cases and bounded property-based ones (hypothesis, few
examples, no deadline) over enqueue arguments, schedule fields, the
schedule admin form, and job and schedule rows edited by hand in the
database. Rows are run by a real WorkerProcess in burst mode and a beat
tick, next to good rows that must still succeed.
"""

import json
import string
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import djtasks
from djtasks.beat.scheduler import Beat
from djtasks.models import Job, JobStatus, Schedule
from tests import tasks
from tests.integration.test_admin_schedules import form_data

# Bounded: a few dozen examples each, never a deadline (the database is slow
# on a loaded machine), fixtures reused across examples (rows are cleared).
BOUNDED = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
NAMES = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)
NOT_JSON = st.sampled_from([object(), {1, 2}, timezone.now(), Job, float("nan"), 1 + 2j])


def holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def same_json(value, expected) -> bool:
    """Equal as JSON data; a float may come back as the int it equals.

    PostgreSQL's jsonb keeps numbers as decimals: 4.6e16 is read back as
    46000000000000000, an int that converts back to the very same float.
    """
    if isinstance(expected, float) and not isinstance(value, bool):
        return isinstance(value, int | float) and float(value) == expected
    if isinstance(expected, list):
        return (
            isinstance(value, list)
            and len(value) == len(expected)
            and all(same_json(v, e) for v, e in zip(value, expected))
        )
    if isinstance(expected, dict):
        return (
            isinstance(value, dict)
            and value.keys() == expected.keys()
            and all(same_json(value[key], expected[key]) for key in expected)
        )
    return type(value) is type(expected) and value == expected


def update_row(model, pk, **columns) -> None:
    """Write columns with raw SQL, as a hand edit in a database shell would."""
    table = model._meta.db_table
    assignments = ", ".join(f"{name} = %s" for name in columns)
    key = pk.hex if connection.vendor == "sqlite" and hasattr(pk, "hex") else pk
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*columns.values(), key])


# --- enqueue arguments -----------------------------------------------------


@pytest.mark.django_db
@BOUNDED
@given(
    args=st.lists(JSON_VALUES, max_size=3),
    kwargs=st.dictionaries(NAMES, JSON_VALUES, max_size=3),
)
def test_any_json_arguments_round_trip_or_are_refused_clearly(run_jobs, args, kwargs):
    Job.objects.all().delete()
    if holds_nul([args, kwargs]):
        with pytest.raises(djtasks.ArgumentNotSerializable, match="NUL"):
            tasks.echo.enqueue(*args, **kwargs)
        assert not Job.objects.exists()
        return

    result = tasks.echo.enqueue(*args, **kwargs)
    run_jobs()

    job = Job.objects.get(pk=result.id)
    assert job.status == JobStatus.SUCCESSFUL
    # JSON turns dict keys into strings and tuples into lists; compare as JSON.
    expected = json.loads(json.dumps({"args": args, "kwargs": kwargs}))
    assert same_json(job.return_value, expected), (job.return_value, expected)


@pytest.mark.django_db
@BOUNDED
@given(
    args=st.lists(JSON_VALUES, max_size=3),
    position=st.integers(min_value=0, max_value=3),
    bad=NOT_JSON,
    nest=st.booleans(),
)
def test_a_non_json_value_anywhere_is_named_and_nothing_is_stored(args, position, bad, nest):
    position = min(position, len(args))
    args = [*args[:position], {"deep": [bad]} if nest else bad, *args[position:]]

    with pytest.raises(djtasks.ArgumentNotSerializable, match=f"Argument {position} of"):
        tasks.echo.enqueue(*args)
    assert not Job.objects.exists()


# --- job rows edited by hand -----------------------------------------------

# column changes -> how the worker must end the row, and what its last
# error says (None: no error expected).
EDITED_JOBS = {
    "os.system": ({"task_path": "os.system"}, "FAILED", "not a registered task"),
    "task gone": ({"task_path": "tests.tasks.gone"}, "FAILED", "not a registered task"),
    "plain function": ({"task_path": "tests.tasks.not_a_task"}, "FAILED", "not a registered task"),
    "args an object": ({"args": '{"a": 1}'}, "FAILED", "holds dict args"),
    # Not retried either: the row, not the task, is at fault.
    "args a string": ({"args": '"12"', "max_attempts": 3}, "FAILED", "holds str args"),
    "kwargs a list": ({"kwargs": "[1, 2]"}, "FAILED", "and list kwargs"),
    "missing argument": ({"args": "[1]"}, "FAILED", "missing 1 required positional"),
    "unknown keyword": ({"kwargs": '{"c": 3}'}, "FAILED", "unexpected keyword"),
    "no attempts allowed": ({"max_attempts": 0}, "SUCCESSFUL", None),
    "attempts past max": ({"attempts": 7, "max_attempts": 2}, "SUCCESSFUL", None),
    "expired": ({"expires_at": timezone.now() - timedelta(days=1)}, "EXPIRED", None),
    "running, no worker": (
        {"status": "RUNNING", "worker_id": "never-existed", "attempts": 1, "max_attempts": 2},
        "SUCCESSFUL",
        None,
    ),
    "worker_ids an object": ({"worker_ids": '{"a": 1}'}, "SUCCESSFUL", None),
    "impossible status": ({"status": "BOGUS"}, "BOGUS", None),
}


@pytest.mark.django_db(transaction=True)
def test_hand_edited_rows_fail_clearly_and_disturb_nothing(burst_worker, settings):
    # No grace: a row naming no task fails at once rather than waiting for a
    # worker that has it (djtasks.worker.unknown_tasks, tested there).
    settings.DJTASKS = {"UNKNOWN_TASK_GRACE": 0}
    good_before = tasks.add.enqueue(1, 1).id
    edited = {}
    for name, (columns, _, _) in EDITED_JOBS.items():
        job = Job.objects.create(task_path="tests.tasks.add", args=[2, 3])
        update_row(Job, job.pk, **columns)
        edited[name] = job.pk
    good_after = tasks.add.enqueue(2, 2).id

    burst_worker()  # returns: the worker neither crashed nor hung

    wrong = []
    for name, (_, status, message) in EDITED_JOBS.items():
        job = Job.objects.get(pk=edited[name])
        last_error = job.errors[-1]["traceback"] if job.errors else None
        if job.status != status or (message and message not in (last_error or "")):
            wrong.append(f"{name}: {job.status} {last_error!r}")
        if message is None and status == "SUCCESSFUL" and job.return_value != 5:
            wrong.append(f"{name}: returned {job.return_value!r}")
    assert wrong == []
    for good in (good_before, good_after):
        assert Job.objects.get(pk=good).status == JobStatus.SUCCESSFUL


@pytest.mark.django_db
@pytest.mark.parametrize(
    "columns",
    [
        {"args": "[1, 2"},
        {"kwargs": "{'a': 1}"},
        {"attempts": -1},
        {"max_attempts": -3},
        {"priority": 500},
        {"status": None},
        {"task_path": None},
    ],
    ids=lambda columns: ",".join(f"{k}={v}" for k, v in columns.items()),
)
def test_the_database_refuses_edits_no_worker_could_read(columns):
    job = Job.objects.create(task_path="tests.tasks.add", args=[1, 2])

    with pytest.raises(DatabaseError), transaction.atomic():
        update_row(Job, job.pk, **columns)

    job.refresh_from_db()
    assert (job.args, job.status, job.attempts) == ([1, 2], JobStatus.READY, 0)


def test_the_admin_shows_a_row_with_an_impossible_status(admin_client, db):
    job = Job.objects.create(task_path="tests.tasks.add", args=[1, 2])
    update_row(Job, job.pk, status="BOGUS", args='{"a": "<b>x</b>"}')

    assert admin_client.get(reverse("admin:djtasks_job_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:djtasks_job_change", args=[job.pk]))
    assert page.status_code == 200
    assert b"<b>x</b>" not in page.content


# --- schedules ---------------------------------------------------------------

# Saved without clean() (a script, a database shell), next to a good one:
# the beat tick must not raise, must still enqueue the good one, and must
# record why it skipped or disabled each bad one.
BAD_SCHEDULES = {
    "cron out of range": {"cron": "61 * * * *"},
    "cron garbage": {"cron": "every tuesday"},
    "unknown time zone": {"cron": "* * * * *", "time_zone": "Mars/Olympus"},
    "negative interval": {"interval": timedelta(seconds=-5)},
    "zero interval": {"interval": timedelta(0)},
    "no timing": {},
    "two timings": {"cron": "* * * * *", "interval": timedelta(minutes=1)},
    "os.system": {"cron": "* * * * *", "task_path": "os.system"},
    "plain function": {"cron": "* * * * *", "task_path": "tests.tasks.not_a_task"},
    "args an object": {"cron": "* * * * *", "args": {"a": 1}},
    "args with a NUL": {"cron": "* * * * *", "args": ["a\x00b"], "sqlite_only": True},
    "unknown queue": {"cron": "* * * * *", "queue_name": "nowhere"},
    "priority out of range": {"cron": "* * * * *", "priority": 500},
    "unknown misfire policy": {"cron": "* * * * *", "misfire_policy": "bogus"},
}


@pytest.mark.django_db
def test_a_beat_tick_survives_bad_schedule_rows_and_runs_the_good_one():
    # Mid-minute: the every-minute "good" schedule due a second ago must not
    # also have a minute start within the misfire grace.
    now = timezone.now().replace(second=30, microsecond=0)
    due = now - timedelta(seconds=1)
    good = Schedule.objects.create(
        name="good", task_path="tests.tasks.add", args=[1, 2], cron="* * * * *", next_run_at=due
    )
    bad = {}
    for name, fields in BAD_SCHEDULES.items():
        fields = dict(fields)
        if fields.pop("sqlite_only", False) and connection.vendor != "sqlite":
            continue  # PostgreSQL cannot even store it
        fields.setdefault("task_path", "tests.tasks.add")
        bad[name] = Schedule.objects.create(name=name, next_run_at=due, **fields)

    beat = Beat(clock=lambda: now)
    beat.synced = True
    beat.enqueue_due(now)  # must not raise

    assert Job.objects.filter(schedule=good).count() == 1
    silent = []
    for name, schedule in bad.items():
        schedule.refresh_from_db()
        runs = Job.objects.filter(schedule=schedule).count()
        if runs or not schedule.last_error:
            silent.append(f"{name}: {runs} run(s), last_error={schedule.last_error!r}")
    assert silent == []
    assert bad["no timing"].last_error == (
        "Disabled: Give exactly one of a cron expression, an interval or a run time."
    )
    assert not bad["zero interval"].enabled
    # A second tick neither raises nor enqueues the bad ones.
    beat.enqueue_due(now + timedelta(minutes=1))
    assert not Job.objects.filter(schedule__in=bad.values()).exists()


@pytest.mark.django_db
@BOUNDED
@given(
    cron=st.text(max_size=20) | st.sampled_from(["* * * * *", "0 3 * * 1-5", "*/5 * * * *"]),
    time_zone=st.text(max_size=12) | st.sampled_from(["UTC", "Europe/Berlin"]),
    seconds=st.none() | st.integers(min_value=-(10**6), max_value=10**6),
)
def test_schedule_clean_only_ever_raises_validation_errors(cron, time_zone, seconds):
    schedule = Schedule(
        name="property",
        task_path="tests.tasks.noop",
        cron=cron,
        time_zone=time_zone,
        interval=None if seconds is None else timedelta(seconds=seconds),
    )
    try:
        schedule.full_clean()
    except ValidationError:
        return
    # Accepted: the beat can compute and enqueue it.
    schedule.save()
    now = timezone.now()
    beat = Beat(clock=lambda: now)
    beat.synced = True
    beat.enqueue_due(schedule.next_run_at + timedelta(seconds=1))
    schedule.refresh_from_db()
    assert schedule.last_error == ""
    Schedule.objects.all().delete()


FORM_TEXT = st.text(max_size=20) | st.sampled_from(["", "-1", "1e400", "[]", "{}", "null", "99999"])


@pytest.mark.django_db
@BOUNDED
@given(
    changes=st.dictionaries(
        st.sampled_from(
            ["task_path", "args", "kwargs", "queue_name", "priority", "cron", "interval"]
            + ["time_zone", "run_at_0", "misfire_policy", "misfire_cap", "start_at_0"]
        ),
        FORM_TEXT,
        min_size=1,
        max_size=4,
    )
)
def test_the_schedule_admin_form_never_fails_with_a_server_error(admin_client, changes):
    Schedule.objects.all().delete()
    changes = {field: value.replace("\x00", "") for field, value in changes.items()}

    add = reverse("admin:djtasks_schedule_add")
    response = admin_client.post(add, form_data(**{"time_zone": "UTC", **changes}))

    assert response.status_code in (200, 302)
    if response.status_code == 200:
        # Shown again with its errors; nothing saved.
        assert response.context["adminform"].form.errors
        assert not Schedule.objects.exists()
    else:
        Schedule.objects.get().full_clean()  # what was saved is valid


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "status=BOGUS",
        "status__exact=<script>",
        "o=999",
        "o=abc",
        "p=-1",
        "p=99999",
        "q=%00",
        "q=" + "x" * 5000,
        "queue_name=' OR 1=1 --",
        "enqueued_at__gte=yesterday",
    ],
)
def test_the_job_list_survives_odd_query_strings(admin_client, query):
    Job.objects.create(task_path="tests.tasks.add", args=[1, 2])

    response = admin_client.get(reverse("admin:djtasks_job_changelist") + "?" + query)

    assert response.status_code in (200, 302)
    assert b"<script>" not in response.content
