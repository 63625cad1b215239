"""MariaDB and MySQL: the claim's plan with a million finished jobs in the table.

The claim's index leads with the condition's columns (djtasks.schema): a
claim reads a range of ready rows, whatever the history. A module of its
own: the tables of a ``transaction=True`` test are emptied row by row on
MariaDB, which the million rows would make take half a minute.
"""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from djtasks.models import Job, JobStatus
from djtasks.worker import claim_mysql
from tests.tasks import noop

pytestmark = [pytest.mark.mysql]

JOBS = Job._meta.db_table
HISTORY = 1_000_000

# A million finished rows of the claimed queue, oldest first (the rows a full
# index led by the backend and queue would read before any ready one).
DIGITS = " UNION ALL ".join(f"SELECT {digit} AS d" for digit in range(10))
FILL = f"""
INSERT INTO {JOBS} (
    id, task_path, backend, queue_name, priority, args, kwargs, status,
    enqueued_at, available_at, started_at, finished_at, attempts, max_attempts,
    retry_policy, worker_id, worker_ids, errors, limited, paused, waiting_for,
    cancel_requested_at, unique_key, lost_attempts
)
SELECT REPLACE(UUID(), '-', ''), 'tests.tasks.noop', 'default', 'default', 0,
       '[]', '{{}}', 'SUCCESSFUL', %s, %s, %s, %s, 1, 1, '{{}}', NULL,
       '["gone-worker"]', '[]', 0, 0, 0, NULL, NULL, 0
FROM ({DIGITS}) AS a, ({DIGITS}) AS b, ({DIGITS}) AS c, ({DIGITS}) AS d, ({DIGITS}) AS e,
     ({DIGITS}) AS f
"""


@pytest.fixture(scope="module")
def big_history(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        old = connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(days=30))
        with connection.cursor() as cursor:
            cursor.execute(FILL, [old, old, old, old])
            cursor.execute(f"ANALYZE TABLE {JOBS}")
        yield
        with connection.cursor() as cursor:
            # A DELETE of a million rows takes InnoDB many seconds.
            cursor.execute(f"TRUNCATE TABLE {JOBS}")


@pytest.fixture
def history(big_history, db):
    """The history inside a test that is rolled back, not flushed.

    A ``transaction=True`` test ends by emptying every table: the history
    would be gone for the next test of the module.
    """


def explain(sql, params):
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        names = [column[0].lower() for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_claim_reads_a_range_of_the_ready_index_not_the_history(history):
    noop.using(priority=5).enqueue()
    noop.enqueue()
    sql = claim_mysql._CANDIDATES.format(columns="id, priority, available_at", skip_test="")
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    (plan,) = explain(sql, ["default", "default", stamp, 100])
    assert plan["key"] == "djtasks_job_ready"
    assert plan["type"] in ("range", "ref")
    # In index order: no sort of the ready rows, let alone the history.
    assert "filesort" not in (plan["extra"] or "")
    assert int(plan["rows"]) < 1_000


def test_the_claim_takes_the_ready_jobs_past_a_big_history_best_first(history, run_jobs):
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == HISTORY
    low = noop.enqueue()
    high = noop.using(priority=5).enqueue()
    outcomes = run_jobs(limit=1)
    assert [outcome.job_id for outcome in outcomes] == [uuid.UUID(high.id)]
    assert Job.objects.get(pk=high.id).status == JobStatus.SUCCESSFUL
    assert Job.objects.get(pk=low.id).status == JobStatus.READY


def test_the_outcomes_of_a_batch_reach_their_rows_by_primary_key(history):
    from djtasks.worker import outcomes

    ids = [Job.objects.create(task_path="tests.tasks.noop", available_at=timezone.now()).pk]
    rows = [
        {"id": job_id.hex, "status": "SUCCESSFUL", "return_value": "null", "attempt": 1}
        for job_id in ids
    ]
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    plan = explain(outcomes.MYSQL_BATCH, [json.dumps(rows), stamp, "w"])
    [job] = [step for step in plan if step["table"] == "job"]
    assert (job["type"], job["key"]) == ("eq_ref", "PRIMARY")
    # The outcomes are read first, the jobs' table never scanned.
    assert plan[0]["table"] == "outcome"
