"""The bulk insert: every value stored as the one-row INSERT stores it.

On PostgreSQL many rows go in by COPY, in text lines djtasks encodes itself
(djtasks.enqueue.insert.CopyEncoder); the one-row path lets psycopg adapt the
values. Each row here is inserted both ways and the two stored rows compared
column by column, so an escaping or format mistake in the encoder shows as a
difference. On the other databases both ways are plain INSERTs, so the test
checks those agree too.
"""

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import DataError, connection, transaction
from django.forms.models import model_to_dict

import djtasks
from djtasks.compat import signals
from djtasks.enqueue.insert import insert_job, insert_jobs
from djtasks.models import Job, JobStatus
from tests import tasks

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)

TRICKY_TEXT = "tab\there, newline\nthere, return\r, backslash \\ and \\N, quote ' \" é ☃ %s"


def _row(**values):
    row = {
        "id": uuid.uuid4(),
        "task_path": "tests.tasks.echo",
        "backend": "default",
        "queue_name": "default",
        "priority": 0,
        "args": [],
        "kwargs": {},
        "status": JobStatus.READY,
        "enqueued_at": NOW,
        "available_at": NOW,
    }
    row.update(values)
    return row


ROWS = {
    "plain": {},
    "tricky text in JSON": {
        "args": [TRICKY_TEXT, 1.5, None, True, {"nested": [TRICKY_TEXT]}],
        "kwargs": {TRICKY_TEXT: "\\", "emoji": "🙂", "big": 10**30},
        "retry_policy": {"retry_on": ["a.b\\c"], "backoff": 0.25, "jitter": False},
    },
    "tricky text in text columns": {
        # Finished: only a live job holds its unique key.
        "status": JobStatus.SUCCESSFUL,
        "unique_key": TRICKY_TEXT,
        "concurrency_key": "\\N",
        "object_id": "",
        "rate_limit": "10/m",
    },
    "numbers and flags": {
        "priority": -100,
        "max_attempts": 7,
        "timeout": 0.1,
        "limited": True,
        "concurrency_limit": 3,
        "waiting_for": 2,
        "workflow_stage": -1,
        "workflow_index": 0,
    },
    "infinite timeout": {"timeout": math.inf},
    "times": {
        "run_after": NOW + timedelta(days=1),
        "available_at": NOW + timedelta(days=1),
        # An offset other than the session's UTC must survive the text form.
        "expires_at": datetime(2027, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    },
    "a workflow step": {"workflow_id": uuid.uuid4(), "status": JobStatus.WAITING},
    "explicit nulls": {"run_after": None, "unique_key": None, "timeout": None},
}


def _stored(job_id) -> dict:
    job = Job.objects.get(pk=job_id)
    return {key: value for key, value in model_to_dict(job).items() if key != "id"}


@pytest.mark.parametrize("values", ROWS.values(), ids=ROWS.keys())
def test_many_rows_store_each_value_as_one_row_does(values):
    if values.get("timeout") == math.inf and connection.vendor == "mysql":
        pytest.skip("MariaDB has no infinite float (Django refuses it there)")
    alone = _row(**values)
    insert_job("default", alone)
    # Several rows, so PostgreSQL takes the COPY path; the others share the
    # first one's shape and values, as the rows of a bulk enqueue do.
    many = [_row(**values) for _ in range(3)]
    insert_jobs("default", many)

    expected = _stored(alone["id"])
    for row in many:
        assert _stored(row["id"]) == expected


def test_a_bulk_enqueue_of_tricky_arguments_reads_back_the_same(run_jobs):
    calls = [((TRICKY_TEXT, n), {"key": TRICKY_TEXT * n}) for n in range(3)]

    results = djtasks.bulk_enqueue(tasks.echo, calls)

    for result, (args, kwargs) in zip(results, calls, strict=True):
        job = Job.objects.get(pk=result.id)
        assert (job.args, job.kwargs) == (list(args), kwargs)
        assert (result.args, result.kwargs) == (list(args), kwargs)


@pytest.mark.postgresql
def test_a_nul_character_is_refused_and_nothing_is_inserted():
    rows = [_row(), _row(unique_key="before\x00after")]

    with pytest.raises(DataError, match="NUL"), transaction.atomic():
        insert_jobs("default", rows)

    assert Job.objects.count() == 0


def test_meanwhile_sees_every_row_once_in_order():
    rows = [_row(args=[n]) for n in range(1_234)]
    seen = []

    insert_jobs("default", rows, meanwhile=lambda chunk: seen.append(list(chunk)))

    assert [row for chunk in seen for row in chunk] == rows
    if connection.vendor == "postgresql":
        # Chunks of 500: the caller's work overlaps the server's.
        assert [len(chunk) for chunk in seen] == [500, 500, 234]
    assert Job.objects.count() == 1_234


def test_bulk_enqueue_sends_each_signal_once_its_row_is_in():
    present = []

    def receiver(sender, task_result, **kwargs):
        present.append(Job.objects.filter(pk=task_result.id).exists())

    signals.task_enqueued.connect(receiver)
    try:
        results = djtasks.bulk_enqueue(tasks.add, [((n, n), {}) for n in range(1_100)])
    finally:
        signals.task_enqueued.disconnect(receiver)

    assert len(results) == 1_100 and present == [True] * 1_100
    assert len({result.id for result in results}) == 1_100
    assert [result.args for result in results[:3]] == [[0, 0], [1, 1], [2, 2]]


def test_bulk_enqueue_of_two_tasks_keeps_each_tasks_options():
    calls = [
        (tasks.send_email, ("a@example.com",), {}),
        (tasks.noop, (), {}),
        (tasks.send_email, ("b@example.com",), {}),
    ]

    results = tasks.noop.get_backend().bulk_enqueue(calls)

    stored = [Job.objects.get(pk=result.id) for result in results]
    assert [(job.task_path, job.queue_name, job.priority) for job in stored] == [
        ("tests.tasks.send_email", "emails", 10),
        ("tests.tasks.noop", "default", 0),
        ("tests.tasks.send_email", "emails", 10),
    ]
    assert [result.task.queue_name for result in results] == ["emails", "default", "emails"]


def test_a_bad_call_of_a_unique_task_inserts_and_announces_nothing(signal_log):
    with pytest.raises(djtasks.ArgumentNotSerializable):
        djtasks.bulk_enqueue(tasks.unique_by_args, [((1,), {}), ((object(),), {})])

    assert Job.objects.count() == 0
    assert signal_log == []


def test_a_bulk_enqueue_of_a_unique_task_announces_each_job_once_it_is_in(signal_log):
    results = djtasks.bulk_enqueue(tasks.unique_by_args, [((1,), {}), ((1,), {}), ((2,), {})])

    assert results[0].id == results[1].id != results[2].id
    assert [entry["id"] for entry in signal_log] == [result.id for result in results]
    assert Job.objects.count() == 2
