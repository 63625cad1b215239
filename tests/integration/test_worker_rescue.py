"""Rescue, hand-back, heartbeats and cancellation against the real database."""

import contextlib
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

import djtasks
from djtasks.control import CancelResult, cancel, cancel_many, is_cancel_requested
from djtasks.models import Job, JobStatus, Worker
from djtasks.worker import heartbeat, rescue
from djtasks.worker.cancel_watch import CancelWatch
from djtasks.worker.claim import claim
from djtasks.worker.outcomes import Outcome, attempt_outcome, record
from tests import tasks

pytestmark = pytest.mark.django_db


def start_worker(worker_id, heartbeat_age=0.0):
    heartbeat.register("default", worker_id, backend="default", queues=["default"], concurrency=1)
    Worker.objects.filter(id=worker_id).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age)
    )


def run(task, *args, worker_id="w-dead", **kwargs):
    """Enqueue a job and claim it for ``worker_id``: it is RUNNING."""
    job_id = task.enqueue(*args, **kwargs).id
    claimed = claim("default", worker_id, ["default"], 100, timezone.now())
    assert [str(job.id) for job in claimed] == [job_id]
    return Job.objects.get(pk=job_id)


def test_jobs_of_a_stale_worker_go_back_to_ready_with_a_worker_lost_entry():
    start_worker("w-dead", heartbeat_age=120)
    job = run(tasks.retry_once)  # max_attempts=3

    assert rescue.rescue_stale("default", stale_after=30) == 1

    job.refresh_from_db()
    assert job.status == JobStatus.READY
    assert job.attempts == 1 and job.finished_at is None
    [error] = job.errors
    assert error["exception_class_path"] == "djtasks.exceptions.WorkerLost"
    assert "no heartbeat for 30 s" in error["traceback"]
    assert error["worker_id"] == "w-dead" and error["attempt"] == 1


def test_a_lost_attempt_does_not_use_up_max_attempts():
    # The rule of issue 15: a standard @task (max_attempts 1) lost with its
    # worker runs again instead of failing with WorkerLost.
    start_worker("w-dead", heartbeat_age=120)
    job = run(tasks.noop)  # max_attempts=1

    rescue.rescue_stale("default", stale_after=30)

    job.refresh_from_db()
    assert job.status == JobStatus.READY and job.finished_at is None
    # The attempt did start: it stays counted in attempts, and max_attempts
    # grows by one so it uses up nothing.
    assert (job.attempts, job.max_attempts, job.lost_attempts) == (1, 2, 1)
    assert job.errors[0]["exception_class_path"] == "djtasks.exceptions.WorkerLost"

    again = claim("default", "w-next", ["default"], 100, timezone.now())
    assert [claimed.id for claimed in again] == [job.pk]


def lose(job, times, worker_prefix="w-lost"):
    """Claim ``job`` and lose it with its worker, ``times`` times."""
    for index in range(times):
        worker_id = f"{worker_prefix}-{index}"
        claimed = claim("default", worker_id, ["default"], 100, timezone.now())
        assert [c.id for c in claimed] == [job.pk]
        rescue.release_lost("default", worker_id, "killed by SIGKILL")
    job.refresh_from_db()
    return job


def test_a_job_lost_max_lost_attempts_times_fails_as_a_poison_job(settings):
    settings.DJTASKS = {"MAX_LOST_ATTEMPTS": 3}
    job = Job.objects.get(pk=tasks.noop.enqueue().id)

    job = lose(job, 2)
    assert job.status == JobStatus.READY and job.lost_attempts == 2

    job = lose(job, 1, worker_prefix="w-third")
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert (job.attempts, job.lost_attempts) == (3, 3)
    assert len(job.errors) == 3
    assert "taken its worker down 3 times" in job.errors[-1]["traceback"]
    assert "taken its worker down" not in job.errors[0]["traceback"]


def test_max_lost_attempts_1_fails_at_the_first_loss(settings):
    settings.DJTASKS = {"MAX_LOST_ATTEMPTS": 1}
    job = lose(Job.objects.get(pk=tasks.retry_once.enqueue().id), 1)

    assert job.status == JobStatus.FAILED
    assert "taken its worker down 1 times" in job.errors[0]["traceback"]


def test_a_counted_loss_follows_max_attempts():
    # The supervisor killed the process for a job past its timeout: that
    # attempt ended through its timeout and counts, as before.
    job = run(tasks.noop, worker_id="w-wedged")  # max_attempts=1

    rescue.release_lost("default", "w-wedged", "past its timeout", counted=True)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert (job.max_attempts, job.lost_attempts) == (1, 0)
    assert "taken its worker down" not in job.errors[0]["traceback"]


def test_a_lost_job_whose_cancel_was_requested_ends_cancelled():
    job = run(tasks.noop, worker_id="w-1")
    assert cancel(job.pk) == CancelResult.REQUESTED

    rescue.release_lost("default", "w-1", "killed by SIGKILL")

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None


def test_hand_back_can_delay_the_next_claim():
    job = run(tasks.noop, worker_id="w-1")
    later = timezone.now() + timedelta(seconds=60)

    rescue.hand_back("default", "w-1", [job.pk], available_at=later)

    job.refresh_from_db()
    assert job.status == JobStatus.READY and job.attempts == 0
    assert abs((job.available_at - later).total_seconds()) < 0.001
    assert claim("default", "w-2", ["default"], 100, timezone.now()) == []


def test_live_workers_and_the_caller_keep_their_jobs():
    start_worker("w-alive", heartbeat_age=1)
    start_worker("w-me", heartbeat_age=120)
    alive = run(tasks.noop, worker_id="w-alive")
    mine = run(tasks.add, 1, 2, worker_id="w-me")

    assert rescue.rescue_stale("default", stale_after=30, exclude="w-me") == 0

    assert Job.objects.get(pk=alive.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=mine.pk).status == JobStatus.RUNNING


def test_jobs_of_a_stopped_or_missing_worker_are_rescued_at_once():
    start_worker("w-stopped")
    heartbeat.unregister("default", "w-stopped")
    stopped = run(tasks.retry_once, worker_id="w-stopped")
    missing = run(tasks.retry_once, worker_id="w-never-registered")

    assert rescue.rescue_stale("default", stale_after=30) == 2

    assert set(Job.objects.filter(pk__in=[stopped.pk, missing.pk]).values_list("status")) == {
        (JobStatus.READY,)
    }


def test_release_lost_names_the_reason():
    job = run(tasks.retry_once, worker_id="w-child")

    assert rescue.release_lost("default", "w-child", "killed by SIGKILL") == 1

    job.refresh_from_db()
    assert job.status == JobStatus.READY
    assert "killed by SIGKILL" in job.errors[0]["traceback"]


def test_hand_back_does_not_count_the_attempt():
    job = run(tasks.noop, worker_id="w-1")
    assert job.attempts == 1 and job.worker_ids == ["w-1"]

    assert rescue.hand_back("default", "w-1") == 1

    job.refresh_from_db()
    assert job.status == JobStatus.READY
    assert job.attempts == 0 and job.worker_ids == [] and job.started_at is None
    assert job.errors == []


def test_hand_back_of_chosen_jobs_only():
    first = run(tasks.noop, worker_id="w-1")
    second = run(tasks.noop, worker_id="w-1")
    other_worker = run(tasks.noop, worker_id="w-2")

    assert rescue.hand_back("default", "w-1", job_ids=[first.pk]) == 1
    assert rescue.hand_back("default", "w-1", keep=[first.pk]) == 1
    assert rescue.hand_back("default", "w-1", job_ids=[]) == 0

    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses[first.pk] == statuses[second.pk] == JobStatus.READY
    assert statuses[other_worker.pk] == JobStatus.RUNNING


def test_a_handed_back_job_whose_cancel_was_requested_ends_cancelled():
    job = run(tasks.noop, worker_id="w-1")
    assert cancel(job.pk) == CancelResult.REQUESTED

    rescue.hand_back("default", "w-1")

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None


def test_heartbeat_revives_a_missing_row():
    start_worker("w-1")
    assert heartbeat.beat("default", "w-1") is True
    Worker.objects.filter(id="w-1").delete()
    assert heartbeat.beat("default", "w-1") is False


# --- cancellation ----------------------------------------------------------------------


def test_cancel_a_ready_job():
    result = tasks.noop.enqueue()

    assert djtasks.cancel(result) == CancelResult.CANCELLED

    job = Job.objects.get(pk=result.id)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert claim("default", "w", ["default"], 10, timezone.now()) == []


def test_cancel_a_running_job_records_the_request():
    job = run(tasks.noop, worker_id="w-1")
    result = tasks.noop.get_backend().get_result(str(job.pk))
    assert is_cancel_requested(result) is False

    assert cancel(str(job.pk)) == CancelResult.REQUESTED
    assert cancel(str(job.pk)) == CancelResult.FINISHED  # already requested: nothing new

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is not None
    assert is_cancel_requested(result) is True


def test_cancel_many_counts_what_it_did():
    running = run(tasks.noop, worker_id="w-1").pk
    ready = tasks.noop.enqueue().id
    done = tasks.add.enqueue(1, 1).id
    Job.objects.filter(pk=done).update(status=JobStatus.SUCCESSFUL)

    assert cancel_many(Job.objects.filter(pk__in=[ready, running, done])) == (1, 1)
    assert cancel(Job.objects.filter(pk=done)) == (0, 0)


def test_cancel_watch_sees_requests_for_its_own_running_jobs():
    mine = run(tasks.noop, worker_id="w-1")
    other = run(tasks.noop, worker_id="w-2")
    cancel(mine.pk)
    cancel(other.pk)
    watch = CancelWatch("default", "w-1")

    watch.refresh()

    assert set(watch.requested) == {mine.pk}
    assert watch.overdue(mine.pk, grace=-1) is True
    assert watch.overdue(mine.pk, grace=3600) is False


def test_a_retry_of_a_job_cancelled_while_running_ends_cancelled():
    job = run(tasks.retry_once, worker_id="w-1")
    cancel(job.pk)
    retry = Outcome(job.pk, "READY", None, available_at=timezone.now())

    assert record("default", "w-1", [retry]) == 1

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None


# transaction=True: the supervisor closes its connections when it is done.
@pytest.mark.django_db(transaction=True)
def test_a_child_killed_for_a_job_past_its_timeout_counts_only_that_attempt():
    import multiprocessing

    from djtasks.worker.inflight_board import InFlightBoard
    from djtasks.worker.supervisor import Child, Supervisor

    overdue = run(tasks.noop, worker_id="w-wedged")  # max_attempts=1
    sibling = run(tasks.noop, worker_id="w-wedged")
    unstarted = run(tasks.noop, worker_id="w-wedged")
    board = InFlightBoard(multiprocessing.get_context("fork"), 2)
    board.running(0, overdue.pk)
    board.running(1, sibling.pk)
    child = Child(process=None, worker_id="w-wedged", status=[0.0, 1.0, 0.0], inflight=board)
    child.timed_out_threads = [0]

    Supervisor()._release(child, "worker process 1 died (killed by the supervisor)")

    rows = Job.objects.in_bulk([overdue.pk, sibling.pk, unstarted.pk])
    # The job over its timeout used its one attempt, as a timeout does.
    assert rows[overdue.pk].status == JobStatus.FAILED
    assert rows[overdue.pk].lost_attempts == 0
    # Its sibling was lost through no fault of its own: it runs again.
    assert rows[sibling.pk].status == JobStatus.READY
    assert (rows[sibling.pk].lost_attempts, rows[sibling.pk].max_attempts) == (1, 2)
    # The one that never started is handed back uncounted.
    assert rows[unstarted.pk].status == JobStatus.READY
    assert (rows[unstarted.pk].attempts, rows[unstarted.pk].errors) == (0, [])


@pytest.mark.django_db(transaction=True)
def test_a_live_worker_whose_heartbeat_holds_its_row_keeps_its_jobs():
    """The rescue must not take a locked worker row for a missing one."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no row locks: its writers take turns")
    start_worker("w-beating")
    alive = run(tasks.noop, worker_id="w-beating")
    heartbeat_started = threading.Event()
    rescue_done = threading.Event()

    def heartbeat_in_flight():
        # The worker's heartbeat UPDATE, its transaction still open.
        with transaction.atomic():
            Worker.objects.filter(id="w-beating").update(last_heartbeat_at=timezone.now())
            heartbeat_started.set()
            rescue_done.wait(timeout=10)
        connections.close_all()

    thread = threading.Thread(target=heartbeat_in_flight)
    thread.start()
    heartbeat_started.wait(timeout=10)
    try:
        rescued = rescue.rescue_stale("default", stale_after=30, exclude="w-other")
    finally:
        rescue_done.set()
        thread.join()
    assert rescued == 0
    assert Job.objects.get(pk=alive.pk).status == JobStatus.RUNNING


def test_the_outcome_of_an_attempt_rescued_and_claimed_again_by_its_worker_changes_nothing():
    # A worker thought dead (e.g. through a long database outage) whose job
    # was rescued, and which then claimed the same job again: the outcome of
    # its first attempt arrives late. Only the attempt tells the two apart.
    start_worker("w-back")
    job = run(tasks.noop, worker_id="w-back")
    rescue.release_lost("default", "w-back", "thought dead")
    [again] = claim("default", "w-back", ["default"], 100, timezone.now())
    assert again.id == job.pk

    late = Outcome(job.pk, "SUCCESSFUL", timezone.now(), attempt=job.attempts)
    assert record("default", "w-back", [late]) == 0

    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at) == (JobStatus.RUNNING, 2, None)
    current = Outcome(job.pk, "SUCCESSFUL", timezone.now(), attempt=2)
    assert record("default", "w-back", [current]) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESSFUL


def test_the_outcome_of_a_lost_claim_made_again_by_its_worker_changes_nothing():
    # A claim that did not wait for the disk, lost with a crash of
    # PostgreSQL (djtasks.worker.claim): the row is as it was before it,
    # and the same worker claims the job again while the first run goes on.
    # Both claims count the same attempt; only the claim's time tells them
    # apart.
    start_worker("w-same")
    enqueued = tasks.noop.enqueue()
    [first] = claim("default", "w-same", ["default"], 100, timezone.now())
    Job.objects.filter(pk=first.id).update(
        status=JobStatus.READY,
        worker_id=None,
        attempts=0,
        worker_ids=[],
        started_at=None,
        last_attempted_at=None,
    )
    [again] = claim("default", "w-same", ["default"], 100, timezone.now() + timedelta(seconds=1))
    assert (str(again.id), again.attempts) == (enqueued.id, first.attempts)

    late = attempt_outcome(first, "SUCCESSFUL", timezone.now(), return_value="first")
    assert record("default", "w-same", [late]) == 0
    job = Job.objects.get(pk=first.id)
    assert (job.status, job.return_value) == (JobStatus.RUNNING, None)

    current = attempt_outcome(again, "SUCCESSFUL", timezone.now(), return_value="again")
    assert record("default", "w-same", [current]) == 1
    job.refresh_from_db()
    assert (job.status, job.return_value) == (JobStatus.SUCCESSFUL, "again")


@contextlib.contextmanager
def connection_time_zone(name):
    """DATABASES["default"]["TIME_ZONE"] = name, for the open connection."""
    wrapper = connections["default"]  # not the proxy: its cached properties
    saved = wrapper.settings_dict.get("TIME_ZONE")
    wrapper.settings_dict["TIME_ZONE"] = name
    for cached in ("timezone", "timezone_name"):
        wrapper.__dict__.pop(cached, None)
    try:
        yield
    finally:
        wrapper.settings_dict["TIME_ZONE"] = saved
        for cached in ("timezone", "timezone_name"):
            wrapper.__dict__.pop(cached, None)


def test_outcomes_are_recorded_when_the_database_keeps_local_times():
    # SQLite, MariaDB and MySQL store times without their zone, in the
    # connection's TIME_ZONE: the claim's time must read back as stored,
    # or the guard would refuse every outcome.
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL keeps the zone: Django refuses TIME_ZONE there with USE_TZ")
    with connection_time_zone("Asia/Kathmandu"):  # UTC+05:45
        start_worker("w-zone")
        tasks.noop.enqueue()
        [claimed] = claim("default", "w-zone", ["default"], 100, timezone.now())
        stored = Job.objects.get(pk=claimed.id)
        assert claimed.last_attempted_at == stored.last_attempted_at
        assert claimed.enqueued_at == stored.enqueued_at

        done = attempt_outcome(claimed, "SUCCESSFUL", timezone.now())
        assert record("default", "w-zone", [done]) == 1
        assert Job.objects.get(pk=claimed.id).status == JobStatus.SUCCESSFUL
