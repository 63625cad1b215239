"""The claim under rate limits and concurrency keys, on the real database."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import djtasks
from djtasks.compat import InvalidTask
from djtasks.models import Job, JobStatus, Limit
from djtasks.worker import claim_limited, rescue
from djtasks.worker.claim import claim
from djtasks.worker.claim_limited import LimitedGate
from djtasks.worker.outcomes import Outcome, record
from tests import tasks

QUEUES = ["default", "emails", "other"]


def claim_at(now, worker="w", limit=100, queues=QUEUES):
    return claim("default", worker, queues, limit, now)


def a_clock_ahead():
    """A claim time minutes ahead of the real clock, for tests that step it.

    Starts are booked at the later of the claim's time and the real clock
    (see claim_limited._Ledger). From a time ahead of the real clock the
    windows follow the steps the test takes, however slowly a loaded
    machine runs it.
    """
    return timezone.now() + timedelta(minutes=5)


def paths(jobs):
    return sorted(job.task_path.rsplit(".", 1)[1] for job in jobs)


@pytest.mark.django_db
def test_enqueue_copies_the_limits_onto_the_row():
    plain = Job.objects.get(pk=tasks.noop.enqueue().id)
    rated = Job.objects.get(pk=tasks.rate_limited.enqueue().id)
    keyed = Job.objects.get(pk=tasks.per_customer.enqueue(7).id)

    assert (plain.limited, plain.rate_limit, plain.concurrency_key) == (False, None, None)
    assert (rated.limited, rated.rate_limit, rated.concurrency_key) == (True, "5/s", None)
    assert (keyed.limited, keyed.concurrency_key, keyed.concurrency_limit) == (
        True,
        "customer:7",
        2,
    )


@pytest.mark.django_db
def test_a_bad_key_from_the_callable_fails_at_enqueue():
    with pytest.raises(InvalidTask, match="must return a string"):
        tasks.noop.using(concurrency_key=lambda: "").enqueue()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_rate_limit_holds_over_a_sliding_window():
    djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 12)
    now = a_clock_ahead()

    assert len(claim_at(now, limit=2)) == 2
    assert len(claim_at(now + timedelta(seconds=0.6))) == 3  # 5 in the window
    assert claim_at(now + timedelta(seconds=0.9)) == []
    # The 2 of t=0 left the window; the 3 of t=0.6 are still in it.
    assert len(claim_at(now + timedelta(seconds=1.1))) == 2
    assert claim_at(now + timedelta(seconds=1.5)) == []
    assert len(claim_at(now + timedelta(seconds=1.7))) == 3
    assert Job.objects.filter(status=JobStatus.READY).count() == 2


@pytest.mark.django_db
def test_a_full_rate_limit_is_skipped_in_sql_until_it_has_room():
    djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 8)
    now = timezone.now()
    claimed = claim_at(now)

    limit = Limit.objects.get(key="task:tests.tasks.rate_limited")
    # Booked when the limit's lock was held (a moment after the claim's
    # ``now``), which is the start the claimed jobs were given.
    [booked_at] = {job.last_attempted_at for job in claimed}
    assert now <= booked_at < now + timedelta(seconds=1)
    assert limit.blocked_until == booked_at + timedelta(seconds=1)
    assert sum(count for _, count in limit.starts) == 5
    # Waiting jobs are left untouched: READY, same available_at, no write.
    waiting = Job.objects.filter(status=JobStatus.READY)
    assert waiting.count() == 3
    assert all(job.available_at <= now for job in waiting)


@pytest.mark.django_db
def test_a_claim_that_read_the_clock_before_another_got_the_lock_cannot_overbook():
    # Three claimers of tasks.rate_limited (5/s), seen in CI with three
    # workers on a busy machine: D books 5; E, a second later, books 3 and
    # drops D's starts as outside its window; A, whose clock reading is
    # older than E's but who got the lock after it, must still not start 2
    # more inside D's second.
    ids = [r.id for r in djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 10)]
    t = timezone.now()
    Job.objects.filter(pk__in=ids).update(available_at=t - timedelta(seconds=10))

    claim_at(t - timedelta(seconds=1.5), worker="D", limit=5)
    claim_at(t - timedelta(seconds=0.49), worker="E", limit=3)
    claim_at(t - timedelta(seconds=1.0), worker="A", limit=5)

    starts = list(
        Job.objects.filter(status=JobStatus.RUNNING).values_list("last_attempted_at", flat=True)
    )
    most = max(
        sum(1 for other in starts if start - timedelta(seconds=1) < other <= start)
        for start in starts
    )
    assert most <= 5, sorted(starts)


@pytest.mark.django_db
def test_other_jobs_flow_while_a_limited_one_waits():
    djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 10)
    now = a_clock_ahead()
    claim_at(now)
    djtasks.bulk_enqueue(tasks.noop, [((), {})] * 3)
    tasks.per_customer.enqueue(1)

    assert paths(claim_at(now + timedelta(seconds=0.5))) == ["noop"] * 3 + ["per_customer"]


@pytest.mark.django_db
def test_concurrency_key_caps_running_jobs_and_a_finished_one_frees_a_slot():
    for _ in range(4):
        tasks.per_customer.enqueue(1)
    other = tasks.per_customer.enqueue(2)
    now = timezone.now()

    first = claim_at(now)
    assert sorted(job.args[0] for job in first) == [1, 1, 2]
    assert claim_at(now) == []

    done = next(job for job in first if job.args[0] == 1)
    record("default", "w", [Outcome(done.id, "SUCCESSFUL", now, attempt=1)])
    [next_one] = claim_at(now)
    assert next_one.args == [1]
    assert str(other.id) in {str(job.id) for job in first}


@pytest.mark.django_db
def test_a_handed_back_or_rescued_job_frees_its_slot():
    for _ in range(3):
        tasks.per_customer.enqueue(1)
    now = timezone.now()
    assert len(claim_at(now, worker="leaving")) == 2
    assert claim_at(now) == []

    rescue.hand_back("default", "leaving")  # both READY again, unrun
    assert len(claim_at(now, worker="dies")) == 2
    assert claim_at(now) == []

    # Both FAILED: with MAX_LOST_ATTEMPTS 1 the first loss fails a job (by
    # default a lost job goes back to READY, see test_worker_rescue).
    with override_settings(DJTASKS={"MAX_LOST_ATTEMPTS": 1}):
        rescue.release_lost("default", "dies", "test")
    [third] = claim_at(now)
    assert Job.objects.filter(status=JobStatus.FAILED).count() == 2


@pytest.mark.django_db
def test_queue_rate_limit_covers_every_job_of_the_queue():
    for _ in range(3):
        tasks.send_email.enqueue("x@example.com")
    tasks.noop.enqueue()
    now = a_clock_ahead()

    with override_settings(DJTASKS={"QUEUE_RATE_LIMITS": {"emails": "2/m"}}):
        assert paths(claim_at(now)) == ["noop", "send_email", "send_email"]
        assert claim_at(now + timedelta(seconds=59)) == []
        assert paths(claim_at(now + timedelta(seconds=61))) == ["send_email"]


@pytest.mark.django_db
def test_limits_combine_and_a_job_waits_for_all_of_them():
    both = tasks.rate_limited.using(concurrency_key="k", concurrency_limit=1)
    for _ in range(3):
        both.enqueue()
    now = timezone.now()

    assert len(claim_at(now)) == 1  # the concurrency key lets one run
    assert claim_at(now) == []
    # The waiting ones took no rate tokens.
    [limit] = Limit.objects.filter(key="task:tests.tasks.rate_limited")
    assert limit.starts == [[limit.starts[0][0], 1]]


@pytest.mark.django_db
def test_the_gate_paces_looks_that_find_nothing():
    gate = LimitedGate(interval=60)
    assert gate.due()
    gate.found(0)
    assert not gate.due()
    tasks.rate_limited.enqueue()
    # Paced: this claim does not look for limited jobs.
    assert claim("default", "w", QUEUES, 10, timezone.now(), gate) == []
    gate.found(1)
    assert len(claim("default", "w", QUEUES, 10, timezone.now(), gate)) == 1


@pytest.mark.django_db
def test_a_look_that_finds_nothing_due_under_a_limit_reads_no_limit_and_locks_nothing():
    plain = tasks.add.enqueue(1, 2)
    # Under a limit, but not due yet: nothing to look at either.
    tasks.rate_limited.using(run_after=timedelta(hours=1)).enqueue()

    with CaptureQueriesContext(connection) as queries:
        [claimed] = claim_at(timezone.now())

    sql = [
        query["sql"]
        for query in queries.captured_queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    assert str(claimed.id) == plain.id
    # One read of the ready rows under a limit, then the plain claim: one
    # statement (on MariaDB/MySQL a locking SELECT per queue, then an UPDATE).
    read, *plain_claim = sql
    assert "FOR UPDATE" not in read, sql
    assert not any("djtasks_limit" in text for text in sql), sql
    if connection.vendor == "mysql":
        *selects, update = plain_claim
        assert all("FORCE INDEX (djtasks_job_ready)" in text for text in selects), sql
        assert update.lstrip().startswith("UPDATE"), sql
    else:
        assert len(plain_claim) == 1, sql


@pytest.mark.django_db
def test_limited_jobs_claimed_before_a_failing_plain_claim_are_not_stranded(monkeypatch):
    from django.db import DatabaseError

    from djtasks.worker import claim as claim_module

    def broken(*args, **kwargs):
        raise DatabaseError("connection lost")

    monkeypatch.setattr(claim_module, "_claim_plain", broken)
    limited = tasks.per_customer.enqueue(3)
    tasks.noop.enqueue()

    [job] = claim_at(timezone.now())
    assert str(job.id) == limited.id
    with pytest.raises(DatabaseError):
        claim_at(timezone.now())  # nothing limited left: the error surfaces


def _race(count, function):
    """Run ``function`` in ``count`` threads released together; return results."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=30)
            results.append(function())
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_racing_claimers_never_exceed_a_concurrency_key(monkeypatch):
    # Each claimer dawdles between deciding and committing, so without the
    # lock on the key's row they would all decide on the same counts.
    save = claim_limited._Ledger.save

    def slow_save(ledger):
        time.sleep(0.1)
        save(ledger)

    monkeypatch.setattr(claim_limited._Ledger, "save", slow_save)
    # A first round, so the keys' rows exist (inserting a new key makes the
    # claimers wait for each other anyway).
    tasks.per_customer.enqueue(9)
    tasks.rate_limited.enqueue()
    warm_up = claim_at(timezone.now())
    finished = [Outcome(job.id, "SUCCESSFUL", timezone.now(), attempt=1) for job in warm_up]
    record("default", "w", finished)
    for _ in range(20):
        tasks.per_customer.enqueue(9)
    djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 20)

    claimed = _race(6, lambda: claim_at(timezone.now(), worker="racer", limit=5))

    keyed = [job for batch in claimed for job in batch if job.args == [9]]
    rated = [job for batch in claimed for job in batch if not job.args]
    assert len(warm_up) == 2
    assert len(keyed) == 2
    assert len(rated) == 4  # 5 a second, one of them taken by the first round
    assert Job.objects.filter(status=JobStatus.RUNNING, concurrency_key="customer:9").count() == 2


@pytest.mark.django_db(transaction=True)
def test_racing_enqueuers_of_a_unique_key_make_one_job():
    results = _race(8, tasks.singleton.enqueue)

    assert len({result.id for result in results}) == 1
    assert Job.objects.filter(unique_key="the-singleton").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_unique_key_is_free_again_after_racing_claimers_finish_it():
    first = tasks.singleton.enqueue()
    [job] = claim_at(timezone.now())
    record("default", "w", [Outcome(job.id, "SUCCESSFUL", timezone.now(), attempt=1)])
    time.sleep(0.001)

    again = _race(4, tasks.singleton.enqueue)

    assert len({result.id for result in again}) == 1
    assert again[0].id != first.id


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_only_waiting_jobs_does_not_spin(monkeypatch):
    from djtasks.worker import claim_thread
    from djtasks.worker.process import WorkerProcess

    calls = []

    def counting_claim(*args, **options):
        calls.append(time.monotonic())
        return claim(*args, **options)

    monkeypatch.setattr(claim_thread, "claim", counting_claim)
    waiting = [tasks.rate_limited.using(rate_limit="1/h").enqueue().id for _ in range(3)]
    flowing = [r.id for r in djtasks.bulk_enqueue(tasks.noop, [((), {})] * 5)]
    worker = WorkerProcess(poll_interval=0.2, threads=2)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        time.sleep(1.5)
    finally:
        worker.stop()
        thread.join(timeout=30)

    succeeded = Job.objects.filter(status=JobStatus.SUCCESSFUL)
    done = {str(pk) for pk in succeeded.values_list("id", flat=True)}
    # Every plain job, and one of the waiting ones (1 an hour). Which one is
    # up to the race of the two threads: each locks candidates SKIP LOCKED,
    # and the first to lock the limit's row books its own.
    assert set(flowing) <= done
    assert len(done & set(waiting)) == 1, done
    assert len(done) == len(flowing) + 1
    # Two threads polling every 0.2 s for 1.5 s claim about 15 times; a
    # worker spinning on the waiting jobs would claim thousands of times.
    assert len(calls) < 40, len(calls)
