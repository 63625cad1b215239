"""Query plans on PostgreSQL: the hot statements keep their indexes with a big history.

100,000 finished jobs (one INSERT ... SELECT generate_series, then ANALYZE),
a few ready and running ones (of two TASKS aliases), and EXPLAIN (never run)
of the claim, the completion, the rescue statements and the beat's queries. A Seq Scan on the
job table means the statement's cost grows with the history: it fails.
"""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from djtasks.beat.scheduler import Beat
from djtasks.models import Job, JobStatus, Schedule, Worker
from djtasks.worker import claim as claim_module
from djtasks.worker import outcomes as completion
from djtasks.worker import rescue

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db]

JOBS = Job._meta.db_table
HISTORY = 100_000
QUEUES = ["default", "emails", "other"]
# The backlog is split between two TASKS aliases on this database.
BACKENDS = ["default", "second"]

# Finished rows, 1 in 10 the run of a schedule (so the schedule's index is
# as big as a busy schedule's), spread over queues and a month.
FILL = f"""
INSERT INTO {JOBS} (
    id, task_path, backend, queue_name, priority, args, kwargs, status,
    enqueued_at, available_at, started_at, finished_at, attempts, max_attempts,
    retry_policy, worker_id, worker_ids, errors, schedule_id, scheduled_at
)
SELECT gen_random_uuid(), 'tests.tasks.noop', 'default',
       (ARRAY['default', 'emails', 'other'])[1 + n %% 3], 0, '[]', '{{}}',
       CASE WHEN n %% 10 = 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END,
       %(start)s::timestamptz + n * interval '10 seconds',
       %(start)s::timestamptz + n * interval '10 seconds',
       %(start)s::timestamptz + n * interval '10 seconds',
       %(start)s::timestamptz + n * interval '10 seconds' + interval '1 second',
       1, 1, '{{}}', 'gone-worker', '["gone-worker"]', '[]',
       CASE WHEN n %% 10 = 1 THEN %(schedule)s END,
       CASE WHEN n %% 10 = 1 THEN %(start)s::timestamptz + n * interval '10 seconds' END
FROM generate_series(1, {HISTORY}) AS n
"""


@pytest.fixture(scope="module")
def big_history(django_db_setup, django_db_blocker):
    """The big history, committed once for the module, removed afterwards."""
    now = timezone.now()
    with django_db_blocker.unblock():
        schedule = Schedule.objects.create(
            name="busy",
            task_path="tests.tasks.noop",
            interval=timedelta(seconds=10),
            next_run_at=now,
            skip_if_running=True,
        )
        # Schedules that are not due: the beat must not read them all either.
        Schedule.objects.bulk_create(
            Schedule(
                name=f"later-{n}",
                task_path="tests.tasks.noop",
                cron="0 3 * * *",
                next_run_at=now + timedelta(hours=1 + n),
                enabled=n % 5 != 0,
            )
            for n in range(2_000)
        )
        with connection.cursor() as cursor:
            cursor.execute(FILL, {"start": now - timedelta(days=30), "schedule": schedule.pk})
        # A backlog, half of it another backend's in the same queues (see
        # test_the_claim_reads_only_its_backends_part_of_the_index), and a
        # live worker with running jobs.
        Worker.objects.create(id="live", hostname="h", pid=1)
        Job.objects.bulk_create(
            [
                Job(task_path="tests.tasks.noop", backend=BACKENDS[n % 2], queue_name=QUEUES[n % 3])
                for n in range(1_000)
            ]
            + [
                Job(task_path="tests.tasks.noop", status=JobStatus.RUNNING, worker_id="live")
                for _ in range(5)
            ]
        )
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {JOBS}")
            cursor.execute(f"ANALYZE {Schedule._meta.db_table}")
        try:
            yield {"now": now, "schedule": schedule}
        finally:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"TRUNCATE {JOBS}, {Schedule._meta.db_table}, {Worker._meta.db_table}"
                )


@pytest.fixture
def history(big_history, db):
    """The big history; what a test writes on top is rolled back."""
    return big_history


def explain(sql, params) -> str:
    with connection.cursor() as cursor:
        # EXPLAIN without ANALYZE plans the statement but does not run it.
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_no_scan_of_the_jobs(plan: str, *indexes: str) -> None:
    """No Seq Scan of the job table, and one of ``indexes`` used."""
    assert f"Seq Scan on {JOBS}" not in plan, plan
    assert any(index in plan for index in indexes), plan


# One queue and several are two statements (djtasks.worker.claim); a claim
# of its own commits asynchronously, which must not change its plan.
CLAIM_FORMS = pytest.mark.parametrize(
    ("queues", "alone"),
    [(["default"], False), (["default"], True), (QUEUES, False), (QUEUES, True)],
    ids=["one queue", "one queue, alone", "three queues", "three queues, alone"],
)


@CLAIM_FORMS
def test_the_claim_reads_the_ready_index(history, queues, alone):
    sql, params = claim_module._postgresql("default", "w", queues, 100, history["now"], alone)

    plan = explain(sql, params)

    assert_no_scan_of_the_jobs(plan, "djtasks_job_ready")
    # The UPDATE reaches the claimed rows by primary key (see djtasks.worker.claim).
    assert "djtasks_job_pkey" in plan, plan


@pytest.mark.parametrize("backend", ["default", "second"])
@pytest.mark.parametrize("queues", [["default"], QUEUES], ids=["one queue", "three queues"])
def test_the_claim_reads_only_its_backends_part_of_the_index(history, backend, queues):
    sql, params = claim_module._postgresql(backend, "w", queues, 100, history["now"])

    plan = explain(sql, params)

    assert_no_scan_of_the_jobs(plan, "djtasks_job_ready")
    # The backend is a bound of the index scan, not a filter on the rows it
    # read: a claim of "default" never walks past the ready rows of
    # "second" in the same queues (nor the other way round).
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("backend" in line for line in index_conditions), plan
    assert not any("Filter" in line and "backend" in line for line in plan.splitlines()), plan


def test_the_limited_claims_look_reads_the_limited_index(history):
    with CaptureQueriesContext(connection) as captured:
        claim_module._limited_due("default", "second", QUEUES, history["now"])
    [query] = captured.captured_queries

    plan = explain(query["sql"], None)

    assert_no_scan_of_the_jobs(plan, "djtasks_job_ready_limited")


def test_the_completion_reaches_rows_by_primary_key(history):
    running = list(Job.objects.filter(status=JobStatus.RUNNING))
    outcomes = [
        completion.Outcome(job.id, "SUCCESSFUL", history["now"], return_value=1, attempt=1)
        for job in running
    ]
    params = completion._postgresql_params(outcomes, "live")

    plan = explain(completion.POSTGRESQL, params)

    assert_no_scan_of_the_jobs(plan, "djtasks_job_pkey", "djtasks_job_running")


def test_the_stale_rescue_reads_the_running_index(history):
    params = {
        "exclude": "me",
        "stale_before": history["now"],
        "reason": "explain",
        "now": history["now"],
        "failed_at": history["now"].isoformat(),
        "max_lost": 3,
    }

    plan = explain(rescue.PG_RESCUE_STALE, params)

    assert_no_scan_of_the_jobs(plan, "djtasks_job_running")


@pytest.mark.parametrize("name", ["PG_RELEASE_LOST", "PG_RELEASE_COUNTED", "PG_HAND_BACK"])
def test_the_release_of_one_worker_reads_the_running_index(history, name):
    params = {
        "worker_id": "live",
        "reason": "explain",
        "now": history["now"],
        "failed_at": history["now"].isoformat(),
        "max_lost": 3,
        "available_at": None,
    }
    sql = getattr(rescue, name).format(only="")

    assert_no_scan_of_the_jobs(explain(sql, params), "djtasks_job_running")


def beat_statements(now) -> list[str]:
    """The statements one beat tick runs, as sent (parameters inlined)."""
    beat = Beat(clock=lambda: now)
    with CaptureQueriesContext(connection) as captured:
        beat.enqueue_due(now)
        beat._seconds_to_next_due()
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].split(None, 1)[0].upper() in ("SELECT", "UPDATE", "INSERT")
    ]


def test_the_beat_reads_schedules_and_jobs_by_index(history):
    statements = beat_statements(history["now"])

    # The due schedules (locked), the previous run's check (skip_if_running),
    # the insert of the run, the move of next_run_at, the next due time.
    assert len(statements) >= 5, statements
    # The insert of the run is a one-row INSERT ... VALUES, which reads no
    # table, and is sent with its parameters apart ($1, ...): not explained.
    reads = [sql for sql in statements if not sql.startswith("INSERT INTO djtasks_job ")]
    assert len(reads) == len(statements) - 1, statements
    plans = [explain(sql, None) for sql in reads]
    for plan in plans:
        assert "Seq Scan" not in plan, plan
    joined = "\n".join(plans)
    assert "djtasks_schedule_due" in joined, joined
    # The previous run's check reads live jobs by an index (the planner
    # picks the status or the schedule one by their sizes), never the history.
    assert Job.objects.filter(schedule=history["schedule"], status="READY").count() == 1


def job_selects(response_of) -> list[str]:
    """The SELECTs of the job table that ``response_of()`` sends (a page of the admin)."""
    with CaptureQueriesContext(connection) as captured:
        response = response_of()
    assert response.status_code == 200
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT") and f'FROM "{JOBS}"' in query["sql"]
    ]


@pytest.mark.parametrize("status", JobStatus.values)
def test_the_admin_list_of_each_status_reads_an_index(history, admin_client, status):
    statements = job_selects(
        lambda: admin_client.get(reverse("admin:djtasks_job_changelist"), {"status__exact": status})
    )

    assert statements
    for sql in statements:
        plan = explain(sql, None)
        # djtasks_job_status holds neither RUNNING nor SUCCESSFUL rows (the
        # claim and the completion of a job that succeeds add no entry to
        # it): running rows come from djtasks_job_running, successful ones,
        # most of the history, from walking djtasks_job_recent.
        assert_no_scan_of_the_jobs(
            plan, "djtasks_job_status", "djtasks_job_running", "djtasks_job_recent"
        )
    if status == JobStatus.SUCCESSFUL:
        assert "djtasks_job_recent" in "\n".join(explain(sql, None) for sql in statements)


def test_what_a_cancel_of_a_queue_would_cancel_is_read_from_the_live_rows(history):
    # `manage.py djtasks cancel --queue emails` and the admin's bulk cancel.
    from djtasks.control import operations

    jobs = operations.cancellable_among(Job.objects.filter(queue_name="emails"))

    assert_no_scan_of_the_jobs(jobs.explain(), "djtasks_job_status")
    assert jobs.count() == Job.objects.filter(queue_name="emails", status="READY").count() > 0


# A paused task's backlog: READY rows flagged "paused" (as djtasks.control.queues
# flags them), older than every other ready job, so an index that still held
# them would put them first in every queue's scan.
PAUSED_BACKLOG = 50_000
FILL_PAUSED = f"""
INSERT INTO {JOBS} (
    id, task_path, backend, queue_name, priority, args, kwargs, status, paused,
    enqueued_at, available_at, attempts, max_attempts, retry_policy, worker_ids, errors
)
SELECT gen_random_uuid(), 'tests.tasks.add', 'default',
       (ARRAY['default', 'emails', 'other'])[1 + n %% 3], 0, '[1, 2]', '{{}}', 'READY', true,
       %(start)s::timestamptz, %(start)s::timestamptz, 0, 1, '{{}}', '[]', '[]'
FROM generate_series(1, {PAUSED_BACKLOG}) AS n
"""


def buffers_read(sql, params) -> tuple[int, str]:
    """Pages the statement touches when run (shared hit + read), and its plan."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + sql, params)
        [[document]] = cursor.fetchall()
    plan = document[0]["Plan"]
    pages = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return pages, json.dumps(document)


def test_a_paused_backlog_costs_the_claim_nothing(history):
    claim_sql = claim_module.POSTGRESQL_CANDIDATES.format(skip_test="")
    # Now: the backlog of the fixture is due (it was made after history["now"]).
    params = [QUEUES, "default", timezone.now(), 100, 100]
    before, _ = buffers_read(claim_sql, params)
    with connection.cursor() as cursor:
        cursor.execute(FILL_PAUSED, {"start": history["now"] - timedelta(days=1)})
        cursor.execute(f"ANALYZE {JOBS}")

    after, plan = buffers_read(claim_sql, params)
    with connection.cursor() as cursor:
        cursor.execute(claim_sql, params)
        claimed_tasks = {task for _, task in cursor.fetchall()}

    assert "djtasks_job_ready" in plan and "Seq Scan" not in plan, plan
    # The 50,000 paused rows are not in the index the claim reads: it
    # touches as many pages as without them (not hundreds more).
    assert after <= 2 * before + 10, (before, after, plan)
    assert claimed_tasks == {"tests.tasks.noop"}
    assert before > 0, plan
    # The plain statement, with its UPDATE, keeps its plan too.
    sql, params = claim_module._postgresql("default", "w", QUEUES, 100, history["now"])
    assert_no_scan_of_the_jobs(explain(sql, params), "djtasks_job_ready")


def test_a_claim_that_skips_a_task_it_lacks_still_reads_the_ready_index(history):
    # A worker of the previous deploy leaves a task to the workers that have
    # it (djtasks.worker.unknown_tasks): a filter on the same scan.
    claim_sql = claim_module.POSTGRESQL_CANDIDATES.format(
        skip_test=" AND task_path <> ALL(%s::text[])"
    )

    def candidates(skipped):
        params = [QUEUES, "default", timezone.now(), skipped, 100, 100]
        with connection.cursor() as cursor:
            cursor.execute(claim_sql, params)
            return {task for _, task in cursor.fetchall()}, explain(claim_sql, params)

    others, others_plan = candidates(["tests.tasks.add"])
    none, none_plan = candidates(["tests.tasks.noop"])

    # The history's due rows are all of tests.tasks.noop.
    assert others == {"tests.tasks.noop"}
    assert none == set()
    for plan in (others_plan, none_plan):
        assert_no_scan_of_the_jobs(plan, "djtasks_job_ready")


def test_resuming_a_task_reads_the_index_of_paused_rows(history):
    paused = Job.objects.filter(status=JobStatus.READY, task_path="tests.tasks.add", paused=True)

    plan = paused.explain()

    assert_no_scan_of_the_jobs(plan, "djtasks_job_paused")


# --- the operator's figures (status, health, metrics) on 1,000,000 finished rows ---
# Last in the module: the fixture below adds to the shared history, and the
# tests above keep the 100,000 rows they were written for.

MILLION = 1_000_000


@pytest.fixture(scope="module")
def million_finished(big_history, django_db_blocker):
    """The big history grown to a million finished rows, a few in the metrics window."""
    now = big_history["now"]
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {JOBS} (
                id, task_path, backend, queue_name, priority, args, kwargs, status,
                enqueued_at, available_at, started_at, last_attempted_at, finished_at,
                attempts, max_attempts, retry_policy, worker_id, worker_ids, errors
            )
            SELECT gen_random_uuid(), 'tests.tasks.noop', 'default',
                   (ARRAY['default', 'emails', 'other'])[1 + n %% 3], 0, '[]', '{{}}',
                   CASE WHEN n %% 10 = 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END,
                   t, t, t, t, t + interval '1 second',
                   1, 1, '{{}}', 'gone-worker', '["gone-worker"]', '[]'
            FROM generate_series(1, %(count)s) AS n,
                 LATERAL (SELECT %(start)s::timestamptz + n * interval '2 seconds' AS t) AS at
            """,
            {"count": MILLION - HISTORY, "start": now - timedelta(days=21)},
        )
        cursor.execute(f"ANALYZE {JOBS}")
        cursor.execute(f"SELECT count(*) FROM {JOBS} WHERE finished_at IS NOT NULL")
        assert cursor.fetchone()[0] >= MILLION
    return big_history


def figure_statements(now) -> list[str]:
    """Every statement of `status`, `health` and one metrics scrape."""
    from djtasks import figures, metrics
    from djtasks.cli import status

    with CaptureQueriesContext(connection) as captured:
        status.report("default", now)
        figures.alive_workers("default", now).first()
        figures.alive_workers("default", now, "h").first()
        metrics.render()
    return [query["sql"] for query in captured.captured_queries]


def test_the_figures_read_indexes_not_the_million_finished_rows(million_finished, db):
    statements = figure_statements(timezone.now())

    assert len(statements) >= 10, statements
    plans = {sql: explain(sql, None) for sql in statements}
    for sql, plan in plans.items():
        assert f"Seq Scan on {JOBS}" not in plan, f"{sql}\n{plan}"
    joined = "\n".join(plans.values())
    # The backlog by its partial indexes, recent outcomes by finished_at.
    for index in ("djtasks_job_ready", "djtasks_job_ready_limited", "djtasks_job_finished"):
        assert index in joined, joined


@pytest.mark.parametrize(
    "page",
    [
        "admin:djtasks_dashboard",
        "admin:djtasks_control_changelist",
        "admin:djtasks_worker_changelist",
    ],
)
def test_the_admin_pages_read_indexes_not_the_million_finished_rows(
    million_finished, db, admin_client, page
):
    statements = job_selects(lambda: admin_client.get(reverse(page)))

    assert statements
    plans = {sql: explain(sql, None) for sql in statements}
    for sql, plan in plans.items():
        assert f"Seq Scan on {JOBS}" not in plan, f"{sql}\n{plan}"
    if page == "admin:djtasks_dashboard":
        # The live rows per queue and status: one BitmapOr over the partial
        # indexes (models.any_status), not one index or none for an IN list.
        assert any("BitmapOr" in plan for plan in plans.values()), plans
