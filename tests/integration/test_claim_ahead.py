"""Claiming ahead (djtasks.worker.claim_ahead) with a real in-process worker.

While a batch of short jobs runs, helper threads write the last batch's
outcomes and claim the next ones, two claims in flight at once. These tests
show that they do, each on its own connection, and that a stop or a
database error in the middle of it neither loses nor repeats a job.
"""

import threading

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from djtasks.models import Job, JobStatus
from djtasks.worker import claim_ahead
from djtasks.worker.claim_thread import ClaimThread
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = 400


def enqueue_short_jobs(count=JOBS, seconds=0.0003):
    """Jobs of a fraction of a millisecond, like a quick query: claimed ahead."""
    import djtasks

    calls = [((), {"seconds": seconds})] * count
    return [result.id for result in djtasks.bulk_enqueue(tasks.sleeping, calls)]


class HelperClaims(list):
    """(thread name, connection id) of each claim ahead, and the most in flight at once."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0


@pytest.fixture
def claims_in_helper(monkeypatch):
    """The thread names and database connections each claim ahead ran on."""
    seen = HelperClaims()
    original = ClaimThread._claim_ahead

    def spy(self, outcomes, size):
        from django.db import connections

        with seen.lock:
            seen.running += 1
            seen.most_at_once = max(seen.most_at_once, seen.running)
        try:
            result = original(self, outcomes, size)
        finally:
            with seen.lock:
                seen.running -= 1
        seen.append((threading.current_thread().name, id(connections[self.owner.database])))
        return result

    monkeypatch.setattr(ClaimThread, "_claim_ahead", spy)
    return seen


def assert_each_job_ran_once(job_ids):
    jobs = Job.objects.filter(pk__in=job_ids)
    assert jobs.filter(status=JobStatus.SUCCESSFUL).count() == len(job_ids)
    assert set(jobs.values_list("attempts", flat=True)) == {1}


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite: see the test below")
def test_a_drain_of_short_jobs_claims_ahead_on_a_second_connection(burst_worker, claims_in_helper):
    job_ids = enqueue_short_jobs()

    burst_worker()

    assert_each_job_ran_once(job_ids)
    # Most batches after the first few were claimed ahead, all in the
    # helpers, two at a time, each helper on a connection of its own.
    assert len(claims_in_helper) >= 3
    assert {name.startswith("djtasks-claim-ahead-0") for name, _ in claims_in_helper} == {True}
    assert claims_in_helper.most_at_once == claim_ahead.DEPTH == 2
    assert len({name for name, _ in claims_in_helper}) == 2
    assert len({connection_id for _, connection_id in claims_in_helper}) == 2


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite: see the test below")
def test_no_claim_ahead_when_turned_off(burst_worker, claims_in_helper):
    job_ids = enqueue_short_jobs()

    with override_settings(DJTASKS={"CLAIM_AHEAD": False}):
        burst_worker()

    assert_each_job_ran_once(job_ids)
    assert claims_in_helper == []


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite")
@pytest.mark.parametrize(
    ("mean_seconds", "claims_ahead"),
    [
        (0.00002, True),  # a no-op job
        (0.0003, True),  # a quick query
        (0.03, False),  # a slow job: one at a time, never one waiting behind it
    ],
)
def test_which_jobs_are_claimed_ahead(mean_seconds, claims_ahead):
    from djtasks.worker.claim_thread import BatchSizer
    from djtasks.worker.process import WorkerProcess

    job_ids = enqueue_short_jobs(10)
    claimer = WorkerProcess(burst=True, worker_id="w-ahead").claimers[0]
    sizer = BatchSizer(100)
    sizer.mean_seconds = mean_seconds

    claimer._start_ahead(sizer)

    assert claimer.ahead.busy is claims_ahead
    if claims_ahead:
        assert claimer.ahead.full
        # Two claims ran at once: between them (SKIP LOCKED) each job once.
        claimed = [claimer._take_ahead()[0] for _ in range(claim_ahead.DEPTH)]
        assert sum(claimed) == len(claimer.slot.waiting) == 10
        assert Job.objects.filter(pk__in=job_ids, status=JobStatus.RUNNING).count() == 10
    claimer.ahead.close()


def test_claiming_ahead_is_off_on_sqlite_and_when_turned_off():
    assert claim_ahead.enabled("default") is (connection.vendor != "sqlite")
    with override_settings(DJTASKS={"CLAIM_AHEAD": False}):
        assert claim_ahead.enabled("default") is False


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite")
def test_a_stop_hands_back_the_jobs_claimed_ahead(burst_worker, monkeypatch, claims_in_helper):
    job_ids = enqueue_short_jobs()
    original = ClaimThread._run_one
    ran = []

    def run_one_then_stop(self, executor, job):
        outcome = original(self, executor, job)
        ran.append(job.id)
        if len(ran) == 250:
            # Batches are big by now: a claim ahead is in flight or done.
            self.owner.stop()
        return outcome

    monkeypatch.setattr(ClaimThread, "_run_one", run_one_then_stop)

    burst_worker()

    assert claims_in_helper
    jobs = Job.objects.filter(pk__in=job_ids)
    assert not jobs.filter(status=JobStatus.RUNNING).exists()
    successful = set(jobs.filter(status=JobStatus.SUCCESSFUL).values_list("pk", flat=True))
    assert successful == set(ran)
    # The rest went back uncounted, ready for the next worker.
    ready = jobs.filter(status=JobStatus.READY)
    assert ready.count() == JOBS - len(ran) > 0
    assert set(ready.values_list("attempts", flat=True)) == {0}


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite")
def test_outcomes_of_a_failed_claim_ahead_are_written_by_a_later_claim(
    burst_worker, monkeypatch, claims_in_helper
):
    job_ids = enqueue_short_jobs()
    original = ClaimThread._record_and_claim
    failed = []

    def fail_once_in_the_helper(self, outcomes, size):
        if not failed and outcomes and threading.current_thread().name.startswith("djtasks-claim"):
            failed.append(len(outcomes))
            raise OperationalError("the connection dropped")
        return original(self, outcomes, size)

    monkeypatch.setattr(ClaimThread, "_record_and_claim", fail_once_in_the_helper)

    burst_worker()

    assert failed and failed[0] > 0
    # The outcomes the helper held went back to pending: none lost, no job
    # run twice.
    assert_each_job_ran_once(job_ids)


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite")
def test_a_helper_that_cannot_start_leaves_the_outcomes_pending(monkeypatch):
    from djtasks.worker.claim_thread import BatchSizer
    from djtasks.worker.process import WorkerProcess

    worker = WorkerProcess(burst=True, worker_id="w-no-thread", max_tasks=50)
    claimer = worker.claimers[0]
    outcomes = ["an outcome of the last batch"]
    claimer.slot.pending = outcomes

    def cannot_start(*args):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(claimer.ahead, "start", cannot_start)
    sizer = BatchSizer(10)
    sizer.mean_seconds = 0.0003
    with pytest.raises(RuntimeError):
        claimer._start_ahead(sizer)

    assert claimer.slot.pending is outcomes and claimer.slot.writing == []
    # The jobs it had reserved for the claim are the budget's again.
    assert worker.budget.take(50) == 50


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="off on SQLite")
def test_the_exit_waits_for_claims_ahead_in_flight(monkeypatch):
    """A claim ahead that commits after the exit's hand-back would leave its jobs RUNNING."""
    import time

    from djtasks.worker.claim_thread import BatchSizer
    from djtasks.worker.process import WorkerProcess

    job_ids = enqueue_short_jobs(10)
    original = ClaimThread._claim_ahead

    def slow_claim(self, outcomes, size):
        time.sleep(0.3)
        return original(self, outcomes, size)

    monkeypatch.setattr(ClaimThread, "_claim_ahead", slow_claim)
    worker = WorkerProcess(burst=True, worker_id="w-exit")
    claimer = worker.claimers[0]
    sizer = BatchSizer(10)
    sizer.mean_seconds = 0.0003
    claimer._start_ahead(sizer)
    assert claimer.ahead.busy

    worker._settle()  # as the process ends, its claim threads still running
    claimer.ahead.close()  # whatever is still in flight ends now

    # The claims committed before the hand-back, which gave their jobs back.
    assert Job.objects.filter(pk__in=job_ids, status=JobStatus.READY).count() == 10
