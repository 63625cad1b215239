"""The claim: batch size, order, queues, one claimer per job, and its index."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

import djtasks
from djtasks.models import Job, JobStatus
from djtasks.worker import claim as claim_module
from djtasks.worker.claim import claim
from djtasks.worker.claim_limited import LimitedGate
from tests import tasks

QUEUES = ["default", "emails", "other"]


@pytest.mark.django_db
def test_claim_marks_jobs_running_and_counts_the_attempt():
    result = tasks.add.enqueue(1, 2)
    now = timezone.now()

    [claimed] = claim("default", "w1", QUEUES, 10, now)

    assert str(claimed.id) == result.id
    assert (claimed.task_path, claimed.args, claimed.attempts) == ("tests.tasks.add", [1, 2], 1)
    assert claimed.worker_ids == ["w1"]
    assert claimed.started_at == claimed.last_attempted_at == now
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.worker_id, job.attempts, job.worker_ids) == (
        "RUNNING",
        "w1",
        1,
        ["w1"],
    )
    assert claim("default", "w2", QUEUES, 10, now) == []  # handed out once


# One queue and several are two statements on PostgreSQL (djtasks.worker.claim).
ONE_OR_SEVERAL = pytest.mark.parametrize(
    "queues", [["default"], QUEUES], ids=["one queue", "three queues"]
)


@pytest.mark.django_db
@ONE_OR_SEVERAL
def test_claim_takes_at_most_limit_jobs_in_priority_then_due_order(queues):
    now = timezone.now()
    djtasks.bulk_enqueue(tasks.noop, [((), {})] * 5)
    urgent = tasks.noop.using(priority=100).enqueue()
    deferred = tasks.noop.using(run_after=now + timedelta(minutes=1)).enqueue()

    first = claim("default", "w", queues, 3, now + timedelta(seconds=1))
    rest = claim("default", "w", queues, 100, now + timedelta(seconds=1))

    assert len(first) == 3
    assert str(first[0].id) == urgent.id
    assert len(rest) == 3
    assert deferred.id not in {str(job.id) for job in first + rest}
    assert Job.objects.filter(status=JobStatus.READY).get().pk == uuid.UUID(deferred.id)


@pytest.mark.django_db
def test_claim_reads_only_the_given_queues():
    email = tasks.send_email.enqueue("x@example.com")
    tasks.noop.enqueue()

    claimed = claim("default", "w", ["emails"], 10, timezone.now())

    assert [str(job.id) for job in claimed] == [email.id]


@pytest.mark.django_db
def test_claim_leaves_finished_and_running_jobs_alone():
    for status in (JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.RUNNING, JobStatus.EXPIRED):
        Job.objects.create(task_path="tests.tasks.noop", status=status)

    assert claim("default", "w", QUEUES, 10, timezone.now()) == []


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@ONE_OR_SEVERAL
def test_concurrent_claimers_skip_each_others_locked_rows(queues):
    djtasks.bulk_enqueue(tasks.noop, [((), {})] * 10)
    first_claimed = threading.Event()
    second_done = threading.Event()
    first = []

    def hold_a_claim():
        try:
            # The outer transaction keeps the row locks after claim() returns.
            with transaction.atomic():
                first.extend(claim("default", "w1", queues, 4, timezone.now()))
                first_claimed.set()
                second_done.wait(timeout=30)
        finally:
            first_claimed.set()
            connections.close_all()

    holder = threading.Thread(target=hold_a_claim)
    holder.start()
    assert first_claimed.wait(timeout=30)
    # SKIP LOCKED: returns at once with the rows the holder has not locked.
    second = claim("default", "w2", queues, 100, timezone.now())
    second_done.set()
    holder.join(timeout=30)

    assert len(first) == 4
    assert len(second) == 6
    assert not {job.id for job in first} & {job.id for job in second}
    assert Job.objects.filter(worker_id="w1").count() == 4
    assert Job.objects.filter(worker_id="w2").count() == 6


def _explain_claim(queues):
    sql, params = claim_module._postgresql("default", "explain-worker", queues, 100, timezone.now())
    with connection.cursor() as cursor:
        # EXPLAIN without ANALYZE plans the UPDATE but does not run it.
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgresql
@pytest.mark.django_db
@ONE_OR_SEVERAL
def test_claim_uses_the_ready_index_whatever_the_history(queues):
    long_ago = timezone.now() - timedelta(days=30)
    finished = [
        Job(
            task_path="tests.tasks.noop",
            queue_name=QUEUES[n % 3],
            status=JobStatus.SUCCESSFUL if n % 10 else JobStatus.FAILED,
            enqueued_at=long_ago,
            available_at=long_ago,
            finished_at=long_ago,
        )
        for n in range(20_000)
    ]
    Job.objects.bulk_create(finished, batch_size=5_000)
    djtasks.bulk_enqueue(tasks.noop, [((), {})] * 30)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")

    plan = _explain_claim(queues)

    assert "djtasks_job_ready" in plan, plan
    assert "Seq Scan" not in plan, plan
    # The UPDATE reaches the claimed rows by primary key; driven from the
    # ready index instead, it costs ~100x more once the history is large.
    assert "djtasks_job_pkey" in plan, plan


@pytest.mark.postgresql
@pytest.mark.django_db
def test_claim_reaches_the_claimed_rows_by_key_in_a_small_table():
    # Joined to the claimed ids, a small table is hashed and scanned whole
    # by the UPDATE (several times slower per claim than the key lookups).
    djtasks.bulk_enqueue(tasks.noop, [((), {})] * 3_000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")

    plan = _explain_claim(["default"])

    assert "Seq Scan" not in plan, plan
    assert "djtasks_job_pkey" in plan, plan


@pytest.mark.sqlite
@pytest.mark.django_db
def test_sqlite_claim_updates_the_chosen_rows_by_key():
    # Driven by the status index instead, each claim reads every ready row:
    # a drain then costs the square of the backlog.
    sql, params = claim_module._sqlite(connection, "default", "w", ["default"], 100, timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())

    assert "djtasks_job_status" not in plan, plan
    assert "djtasks_job_ready" in plan, plan


@pytest.mark.sqlite
@pytest.mark.django_db
@pytest.mark.parametrize(
    "condition",
    ['"limited" = 0 AND "status" = \'READY\'', 'NOT "limited" AND "status" = \'READY\''],
    ids=["as-django-6-writes-it", "as-django-5.2-writes-it"],
)
def test_sqlite_claim_reads_the_ready_index_whichever_django_made_it(condition):
    # A project migrated under one Django version may run under the other.
    with connection.cursor() as cursor:
        cursor.execute('DROP INDEX "djtasks_job_ready"')
        cursor.execute(
            'CREATE INDEX "djtasks_job_ready" ON "djtasks_job" '
            f'("backend", "queue_name", "priority" DESC, "available_at") WHERE ({condition})'
        )
    job = tasks.noop.enqueue()

    sql, params = claim_module._sqlite(
        connection, "default", "w", ["default", "emails"], 10, timezone.now()
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    claimed = claim_module.claim("default", "w", ["default", "emails"], 10, timezone.now())

    assert "djtasks_job_ready" in plan and "djtasks_job_status" not in plan, plan
    assert [str(claimed_job.id) for claimed_job in claimed] == [job.id]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_claim_outside_a_transaction_is_one_statement_on_postgresql(monkeypatch):
    # Nothing to write with it: BEGIN and COMMIT would be two more round trips
    # between a NOTIFY and the job's start.
    result = tasks.add.enqueue(1, 2)
    gate = LimitedGate(3600)
    gate.found(0)  # no look for limited jobs now, as in a worker between looks

    def no_transaction(*args, **kwargs):
        raise AssertionError("the plain claim opened a transaction")

    monkeypatch.setattr(claim_module.transaction, "atomic", no_transaction)
    [claimed] = claim("default", "w1", QUEUES, 10, timezone.now(), gate)

    assert str(claimed.id) == result.id
    assert Job.objects.get(pk=result.id).status == JobStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_a_claim_inside_a_transaction_rolls_back_with_it():
    result = tasks.add.enqueue(1, 2)

    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(claim("default", "w1", QUEUES, 10, timezone.now())) == 1
        raise RuntimeError("the outcomes' write failed")

    assert Job.objects.get(pk=result.id).status == JobStatus.READY


def _synchronous_commit_after(sql, params) -> str:
    """synchronous_commit in a transaction, right after ``sql`` ran in it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute("SHOW synchronous_commit")
        setting = cursor.fetchone()[0]
        transaction.set_rollback(True)
    return setting


def _capture_claim_statement(queues, **claim_kwargs):
    """Run claim() outside a transaction on the one READY job; return its UPDATE."""
    sent = []

    def record(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        claimed = claim("default", "w1", queues, 10, timezone.now(), **claim_kwargs)
    assert len(claimed) == 1
    [statement] = [(sql, params) for sql, params in sent if "UPDATE" in sql]
    return statement


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@ONE_OR_SEVERAL
def test_a_claim_of_its_own_commits_without_waiting_for_the_disk(queues):
    # 0.2-0.3 ms sooner to the job's start; a claim lost with a crashed
    # server only makes its job run again.
    tasks.add.enqueue(1, 2)
    gate = LimitedGate(3600)
    gate.found(0)
    sql, params = _capture_claim_statement(queues, gate=gate)
    # Ready again, for the statement to lock it again below.
    Job.objects.update(status=JobStatus.READY)

    # Run again in a transaction, the statement turns synchronous_commit off
    # for that transaction only.
    assert _synchronous_commit_after(sql, params) == "off"
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_synchronous_claims_setting_makes_every_claim_wait(settings):
    settings.DJTASKS = {"SYNCHRONOUS_CLAIMS": True}
    tasks.add.enqueue(1, 2)
    gate = LimitedGate(3600)
    gate.found(0)
    sql, params = _capture_claim_statement(["default"], gate=gate)
    Job.objects.update(status=JobStatus.READY)

    assert _synchronous_commit_after(sql, params) == "on"


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@ONE_OR_SEVERAL
def test_a_claim_in_the_outcomes_transaction_leaves_its_commit_durable(queues):
    # The worker writes a batch's outcomes and claims the next batch in one
    # transaction (ClaimThread._record_and_claim): the outcomes must wait
    # for the disk.
    tasks.add.enqueue(1, 2)
    with transaction.atomic(), connection.cursor() as cursor:
        assert len(claim("default", "w1", queues, 10, timezone.now())) == 1
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
