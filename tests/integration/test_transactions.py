"""Enqueueing joins the caller's transaction: no job before commit, none after rollback.

These tests commit for real (transaction=True) and look from other
threads, each with its own database connection, as a worker would.
"""

import threading

import pytest
from django.db import connections, transaction
from django.utils import timezone

from djtasks.compat import TaskResultStatus
from djtasks.models import Job
from djtasks.worker.claim import claim
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def count_jobs(job_id):
    return Job.objects.filter(pk=job_id).count()


def claim_all(worker_id="other-worker"):
    return claim("default", worker_id, ["default", "emails", "other"], 100, timezone.now())


class BoomError(Exception):
    pass


def test_rollback_leaves_no_job():
    with pytest.raises(BoomError), transaction.atomic():
        tasks.noop.enqueue()
        tasks.std_add.enqueue(1, 2)
        assert Job.objects.count() == 2
        raise BoomError

    assert Job.objects.count() == 0


def test_rollback_of_a_savepoint_drops_only_its_jobs():
    with transaction.atomic():
        kept = tasks.noop.enqueue()
        with pytest.raises(BoomError), transaction.atomic():
            tasks.noop.enqueue()
            raise BoomError

    assert [str(pk) for pk in Job.objects.values_list("pk", flat=True)] == [kept.id]


def test_rollback_of_a_bulk_enqueue_leaves_no_job():
    import djtasks

    with pytest.raises(BoomError), transaction.atomic():
        djtasks.bulk_enqueue(tasks.add, [((n, n), {}) for n in range(10)])
        raise BoomError

    assert Job.objects.count() == 0


def test_job_is_invisible_to_other_connections_until_commit(other_thread):
    with transaction.atomic():
        result = tasks.noop.enqueue()
        assert count_jobs(result.id) == 1  # the caller sees its own job
        assert other_thread(count_jobs, result.id) == 0

    assert other_thread(count_jobs, result.id) == 1


@pytest.mark.postgresql
def test_worker_cannot_claim_before_commit_on_postgresql(other_thread):
    with transaction.atomic():
        result = tasks.noop.enqueue()
        assert other_thread(claim_all) == []

    claimed = other_thread(claim_all)
    assert [str(job.id) for job in claimed] == [result.id]


@pytest.mark.sqlite
def test_worker_claim_waits_for_the_commit_on_sqlite():
    # SQLite has one writer: the claim's BEGIN IMMEDIATE waits for the
    # enqueuing transaction, then sees its committed job.
    claimed = []
    claimer = threading.Thread(
        target=lambda: (claimed.extend(claim_all()), connections.close_all())
    )
    with transaction.atomic():
        result = tasks.noop.enqueue()
        claimer.start()
        claimer.join(timeout=0.5)
        assert claimer.is_alive(), "the claim did not wait for the writer"
        assert claimed == []
    claimer.join(timeout=30)

    assert not claimer.is_alive()
    assert [str(job.id) for job in claimed] == [result.id]


def test_burst_worker_runs_only_committed_jobs(burst_worker):
    committed = tasks.add.enqueue(1, 2)
    with pytest.raises(BoomError), transaction.atomic():
        tasks.add.enqueue(3, 4)
        raise BoomError

    worker = burst_worker()

    assert worker.processed == 1
    result = tasks.add.get_result(committed.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.worker_ids == [worker.worker_id]


def test_burst_worker_runs_every_kind_of_task(burst_worker):
    results = {
        "djtasks": tasks.add.enqueue(1, 1),
        "standard": tasks.std_add.enqueue(2, 2),
        "async": tasks.async_add.enqueue(3, 3),
        "standard async": tasks.std_async_add.enqueue(4, 4),
        "context": tasks.std_takes_context.enqueue(),
        "other queue": tasks.on_other_queue.enqueue(),
        "emails": tasks.std_send.enqueue("a@example.com"),
        "failing": tasks.failing.enqueue(),
    }

    worker = burst_worker(threads=2)

    assert worker.processed == len(results)
    statuses = {name: r.task.get_result(r.id).status for name, r in results.items()}
    assert statuses == {
        **dict.fromkeys(results, TaskResultStatus.SUCCESSFUL),
        "failing": TaskResultStatus.FAILED,
    }
    assert tasks.async_add.get_result(results["async"].id).return_value == 6


def test_concurrent_enqueues_of_a_unique_key_share_one_job():
    # The second enqueuer waits on the first one's uncommitted row (the
    # unique index on PostgreSQL, the write lock on SQLite), then gets the
    # job that committed instead of a duplicate or an error.
    second = []

    def enqueue_again():
        try:
            second.append(tasks.singleton.enqueue())
        finally:
            connections.close_all()

    other = threading.Thread(target=enqueue_again)
    with transaction.atomic():
        first = tasks.singleton.enqueue()
        other.start()
        other.join(timeout=0.3)  # let it reach the lock before committing
    other.join(timeout=30)

    assert not other.is_alive()
    assert [result.id for result in second] == [first.id]
    assert Job.objects.filter(unique_key="the-singleton").count() == 1
