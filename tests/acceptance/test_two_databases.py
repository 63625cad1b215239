"""Queues split across two PostgreSQL databases, one TASKS backend on each.

What docs/deployment.md#splitting-queues-across-databases tells a user to do,
done as a user does it, with real ``manage.py`` processes on
tests/two_databases_settings.py: the backend "default" keeps its jobs in the
test database, "bulk" (OPTIONS DATABASE "jobs_b") in a second database this
test creates. Every outcome is read back from the two databases themselves,
with a plain psycopg connection to each, not through djtasks.
"""

import json
import subprocess
import sys

import pytest
from django.db import connection

from tests.acceptance.conftest import ROOT, database_url, worker_environment

pytestmark = [pytest.mark.postgresql, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SETTINGS = "tests.two_databases_settings"

# The sample of docs/deployment.md#splitting-queues-across-databases, as it
# is printed there (tests/docs/test_doc_samples.py checks that): enqueue in
# the transaction of the backend's database, or once default's commits.
DOC_SAMPLE = """\
with transaction.atomic(using="jobs_b"):
    # Commits, or rolls back, with this block's writes to jobs_b.
    build_report.enqueue("monthly")

with transaction.atomic():
    # A transaction on default: jobs_b's insert would not wait for it.
    transaction.on_commit(lambda: build_report.enqueue("after default's commit"))
"""

# Run in `manage.py shell -c`, as application code would: enqueue on both
# backends, the sample above, then what a rollback on each database does to
# an enqueue on "bulk". Prints the ids it made, by what the test expects.
ENQUEUE = f"""
import json
from django.db import transaction
from tests.two_databases_tasks import bulk_report as build_report, where

class Rollback(Exception):
    pass

ids = {{
    "a": [where.enqueue(f"a-{{n}}").id for n in range(3)],
    "b": [where.using(backend="bulk").enqueue(f"b-{{n}}").id for n in range(3)],
}}
{DOC_SAMPLE}
try:
    with transaction.atomic(using="jobs_b"):
        ids["rolled_back"] = build_report.enqueue("rolled back with jobs_b").id
        raise Rollback
except Rollback:
    pass
try:
    with transaction.atomic():
        ids["outlives_default"] = build_report.enqueue("outlives default's rollback").id
        raise Rollback
except Rollback:
    pass
try:
    with transaction.atomic():
        transaction.on_commit(lambda: build_report.enqueue("on_commit of a rollback"))
        raise Rollback
except Rollback:
    pass
print(json.dumps(ids))
"""

# What a Prometheus scrape of ?backend=bulk returns, printed.
METRICS = "from djtasks import metrics; print(metrics.render('bulk').decode())"


@pytest.fixture
def jobs_b(transactional_db):
    """The second database's name: the test database's plus a suffix.

    Derived from the test database, so runs of several legs at once
    (test_djtasks_dj6, test_djtasks_dj52) never share one. WITH (FORCE)
    drops a leftover of a killed run, and any connection a process kept.
    """
    name = f"{connection.settings_dict['NAME']}_jobs_b"
    # Outside any transaction (the test is transactional): CREATE DATABASE
    # cannot run in one.
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def environment(jobs_b, fast_settings_dir):
    default_url = database_url(connection.settings_dict)
    b_url = database_url({**connection.settings_dict, "NAME": jobs_b})
    return worker_environment(
        fast_settings_dir,
        default_url,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DJTASKS_JOBS_B_URL=b_url,
        DJTASKS_LOG_LEVEL="INFO",
    )


@pytest.fixture
def manage(environment):
    """Run ``manage.py *args`` to its end; fail with its output unless it exits 0."""

    def run(*args) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    return run


@pytest.fixture
def burst_worker(start_worker, environment):
    """``runworker --burst --backend ALIAS`` to its end (killed by start_worker's teardown)."""

    def run(backend: str):
        worker = start_worker(
            "--burst",
            "--backend",
            backend,
            "--processes",
            "1",
            DJANGO_SETTINGS_MODULE=SETTINGS,
            DJTASKS_JOBS_B_URL=environment["DJTASKS_JOBS_B_URL"],
        )
        assert worker.wait(60) == 0, worker.log()
        return worker

    return run


@pytest.fixture
def rows(jobs_b):
    """``rows("a" | "b", sql)``: the rows of a query on one of the two databases."""
    import psycopg

    settings = connection.settings_dict
    names = {"a": settings["NAME"], "b": jobs_b}

    def query(which: str, sql: str) -> list[tuple]:
        with psycopg.connect(
            dbname=names[which],
            host=settings.get("HOST") or "127.0.0.1",
            port=settings.get("PORT") or 5432,
            user=settings.get("USER") or None,
            password=settings.get("PASSWORD") or None,
            autocommit=True,
        ) as conn:
            return conn.execute(sql).fetchall()

    return query


def jobs(rows, which: str) -> dict:
    """{id: (backend, status, tag, the backend the result names)} of one database's jobs."""
    found = rows(which, "SELECT id, backend, status, args, return_value FROM djtasks_job")
    return {
        str(pk): (backend, status, args[0] if args else None, (result or {}).get("backend"))
        for pk, backend, status, args, result in found
    }


def workers(rows, which: str) -> dict:
    return dict(rows(which, "SELECT id, backend FROM djtasks_worker"))


def test_two_backends_keep_their_jobs_workers_and_schedules_in_their_own_database(
    manage, burst_worker, rows
):
    # The test database is migrated already; migrate is idempotent and is
    # what a deploy runs, once per database.
    manage("migrate", "--database", "default", "--no-input")
    manage("migrate", "--database", "jobs_b", "--no-input")
    # djtasks' checks (E001: the DATABASE alias exists; W001/E008 per
    # database) hold for both backends, warnings included.
    checked = manage(
        "check", "--database", "default", "--database", "jobs_b", "--fail-level", "WARNING"
    )
    assert "no issues" in checked

    ids = json.loads(manage("shell", "-c", ENQUEUE).splitlines()[-1])

    a_jobs, b_jobs = jobs(rows, "a"), jobs(rows, "b")
    assert set(a_jobs) == set(ids["a"])
    assert set(ids["b"]) <= set(b_jobs)
    # Enqueue joins the transaction of the backend's database: the rollback
    # of jobs_b undid its job, the rollback of default did not, and
    # on_commit on default enqueued only once default committed.
    assert sorted(tag for _, _, tag, _ in b_jobs.values()) == [
        "after default's commit",
        "b-0",
        "b-1",
        "b-2",
        "monthly",
        "outlives default's rollback",
    ]
    assert ids["rolled_back"] not in b_jobs
    assert ids["outlives_default"] in b_jobs
    assert not set(a_jobs) & set(b_jobs)
    assert {backend for backend, *_ in a_jobs.values()} == {"default"}
    assert {backend for backend, *_ in b_jobs.values()} == {"bulk"}

    # Each beat syncs the schedules of the tasks whose backend keeps jobs in
    # its database (djtasks.prune's task is default's), and enqueues their
    # due runs there: both one-offs are long past.
    manage("runbeat", "--once")
    manage("runbeat", "--backend", "bulk", "--once")

    schedule = "SELECT name, run_count, last_error FROM djtasks_schedule ORDER BY name"
    assert rows("a", schedule) == [("default-once", 1, ""), ("djtasks.prune", 0, "")]
    assert rows("b", schedule) == [("bulk-once", 1, "")]
    a_jobs, b_jobs = jobs(rows, "a"), jobs(rows, "b")
    assert len(a_jobs) == len(ids["a"]) + 1
    assert [tag for _, _, tag, _ in b_jobs.values()].count("from the beat") == 1

    # Only default's worker: it runs its own jobs and cannot reach bulk's,
    # though both backends serve a queue named "default".
    burst_worker("default")

    a_jobs = jobs(rows, "a")
    assert {status for _, status, _, _ in a_jobs.values()} == {"SUCCESSFUL"}
    assert {jobs(rows, "a")[pk][3] for pk in ids["a"]} == {"default"}
    assert {status for _, status, _, _ in jobs(rows, "b").values()} == {"READY"}
    a_workers = workers(rows, "a")
    assert set(a_workers.values()) == {"default"}
    assert workers(rows, "b") == {}

    burst_worker("bulk")

    b_jobs = jobs(rows, "b")
    assert {(status, ran_as) for _, status, _, ran_as in b_jobs.values()} == {
        ("SUCCESSFUL", "bulk")
    }
    b_workers = workers(rows, "b")
    assert set(b_workers.values()) == {"bulk"}
    claimed_by = rows("b", "SELECT DISTINCT worker_id FROM djtasks_job")
    assert {worker for (worker,) in claimed_by} <= set(b_workers)
    assert workers(rows, "a") == a_workers
    assert jobs(rows, "a") == a_jobs

    # The operator's commands and the metrics act on the database of the
    # backend named.
    manage("djtasks", "pause", "reports", "--backend", "bulk")
    status = json.loads(manage("djtasks", "status", "--backend", "bulk", "--json"))
    scraped = manage("shell", "-c", METRICS)

    assert rows("b", "SELECT kind, name, paused FROM djtasks_control") == [
        ("queue", "reports", True)
    ]
    assert rows("a", "SELECT name FROM djtasks_control") == []
    assert status["queues"]["reports"]["paused"] is True
    assert 'djtasks_queue_paused{queue="reports"} 1.0' in scraped
    assert 'djtasks_queue_paused{queue="emails"}' not in scraped  # a queue of default's

    # djtasks.prune prunes default's database only; jobs_b is pruned with
    # --backend (from cron, or a periodic task of bulk's: see the docs).
    manage("prunejobs", "--backend", "bulk", "--older-than", "0s")

    assert rows("b", "SELECT count(*) FROM djtasks_job") == [(0,)]
    assert jobs(rows, "a") == a_jobs
