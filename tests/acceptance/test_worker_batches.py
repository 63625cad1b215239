"""Batched claims with real runworker processes: never held, never wrongly lost.

A worker claims short jobs in batches. These tests prove the two ways a
batch could hurt do not happen: jobs waiting behind an unexpectedly slow
job are handed back for others to run, and a worker killed in the middle of
a batch costs an attempt only to the job it was running.
"""

import os
import signal

import pytest
from django.db import connection, transaction

import djtasks
from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def finished(count):
    done = Job.objects.filter(status__in=[JobStatus.SUCCESSFUL, JobStatus.FAILED]).count()
    return done >= count


def warm_up(worker, count=150):
    """Run ``count`` quick jobs, so the worker's next claims are big batches."""
    with transaction.atomic():
        for _ in range(count):
            tasks.ledger.enqueue(tag="warm-up")
    wait_for(lambda: finished(count), 30, "the warm-up jobs", worker)


def test_jobs_waiting_behind_a_slow_job_are_handed_back_to_other_workers(start_worker):
    first = start_worker("--processes", "1")
    warm_up(first)
    # One transaction: the idle worker wakes once and claims a batch, the
    # slow job first (higher priority), quick ones waiting behind it.
    with transaction.atomic():
        slow = tasks.ledger.using(priority=10).enqueue(tag="slow", seconds=15).id
        quick = [tasks.ledger.enqueue(tag="quick").id for _ in range(20)]
    wait_for(lambda: Ledger.objects.filter(tag="slow").exists(), 20, "the slow job", first)
    first.wait_for_log("unfinished job(s) back to READY")

    # A second worker starts only now, so it can run the quick jobs only if
    # the first one gave them up.
    second = start_worker("--processes", "1")
    wait_for(
        lambda: Job.objects.filter(pk__in=quick, status=JobStatus.SUCCESSFUL).count() == 20,
        20,
        "the quick jobs",
        [first, second],
    )
    assert Job.objects.get(pk=slow).status == JobStatus.RUNNING
    runs = Ledger.objects.filter(tag="quick")
    assert runs.count() == 20  # each ran once: handed back, not run twice
    slow_pid = Ledger.objects.get(tag="slow").pid
    assert slow_pid not in {run.pid for run in runs}
    assert set(Job.objects.filter(pk__in=quick).values_list("attempts", flat=True)) == {1}


def test_a_worker_killed_mid_batch_loses_only_its_running_job(start_worker):
    total = 300
    # max_attempts=1: a job wrongly counted as lost would show lost_attempts.
    with transaction.atomic():
        for _ in range(total):
            tasks.ledger.enqueue(tag="batch", seconds=0.005)
    worker = start_worker("--processes", "1")
    first_run = wait_for(
        lambda: Ledger.objects.filter(tag="batch").count() >= 100 and Ledger.objects.first(),
        30,
        "a third of the jobs",
        worker,
    )

    os.kill(first_run.pid, signal.SIGKILL)

    worker.wait_for_log("killed by SIGKILL")
    wait_for(lambda: finished(total), 30, "every job to finish", worker)
    # A lost attempt uses up none of max_attempts: every job succeeds.
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == total
    # One claim thread: at most the one job it was running is lost...
    lost = list(Job.objects.filter(lost_attempts__gt=0))
    assert len(lost) <= 1, [job.errors for job in lost]
    for job in lost:
        assert (job.attempts, job.lost_attempts) == (2, 1)
        assert job.errors[-1]["exception_class_path"] == "djtasks.exceptions.WorkerLost"
    # ...the rest of the killed process's batch went back to READY, uncounted.
    assert Job.objects.filter(attempts__gt=1).count() == len(lost)


def worker_connections():
    """Connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_a_worker_stopped_mid_drain_runs_each_job_once_and_hands_back_the_rest(start_worker):
    total = 3000
    djtasks.bulk_enqueue(tasks.ledger, [((), {"tag": "drain", "seconds": 0.001})] * total)
    worker = start_worker("--processes", "1")
    wait_for(
        lambda: Ledger.objects.filter(tag="drain").count() >= 500, 30, "a sixth of the jobs", worker
    )
    if connection.vendor == "postgresql":
        # Main thread, listener, claim thread and the two helpers that claim
        # ahead: P x (3T + 2) with P = T = 1 (docs/deployment.md).
        assert worker_connections() == 5

    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0

    jobs = Job.objects.all()
    # Nothing left RUNNING: the batch in hand and the one claimed ahead went back.
    assert not jobs.filter(status=JobStatus.RUNNING).exists()
    ran = Ledger.objects.filter(tag="drain")
    assert jobs.filter(status=JobStatus.SUCCESSFUL).count() == ran.count() < total
    assert set(jobs.filter(status=JobStatus.SUCCESSFUL).values_list("attempts", flat=True)) == {1}
    assert set(jobs.filter(status=JobStatus.READY).values_list("attempts", flat=True)) == {0}

    second = start_worker("--processes", "1")
    wait_for(lambda: finished(total), 60, "every job to finish", second)
    # Each job ran exactly once across the two workers.
    assert ran.count() == total
    assert ran.values("job_id").distinct().count() == total
    if connection.vendor == "postgresql":
        # Idle again: the helper and its connection are gone, P x (T + 2).
        wait_for(lambda: worker_connections() == 3, 10, "the idle worker's 3 connections", second)
