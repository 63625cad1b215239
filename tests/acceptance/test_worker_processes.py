"""runworker end to end: several processes, burst, signals, recycling."""

import signal
import time
from collections import Counter

import pytest

from djtasks.models import Job, JobStatus, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def statuses(ids):
    return Counter(Job.objects.filter(pk__in=ids).values_list("status", flat=True))


def all_in(ids, status):
    return statuses(ids) == Counter({status: len(ids)})


def test_several_workers_never_run_a_job_twice(start_worker):
    results = tasks.ledger.get_backend().bulk_enqueue(
        [(tasks.ledger, (f"job-{index}",), {}) for index in range(400)]
    )
    ids = [result.id for result in results]
    workers = [
        start_worker("--processes", "2", "--threads", "2"),
        start_worker("--processes", "2", "--threads", "1"),
    ]

    wait_for(lambda: all_in(ids, JobStatus.SUCCESSFUL), 60, "all jobs done", workers)

    runs = Counter(Ledger.objects.values_list("job_id", flat=True))
    assert len(runs) == 400
    assert set(runs.values()) == {1}, "a job ran more than once"
    assert Job.objects.filter(pk__in=ids, attempts=1).count() == 400
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0


def test_burst_drains_the_queues_and_exits_zero(start_worker):
    ids = [tasks.ledger.enqueue(f"burst-{index}").id for index in range(20)]
    other = tasks.on_other_queue.enqueue().id

    worker = start_worker("--burst", "--processes", "2", "--queues", "default")

    assert worker.wait() == 0
    assert all_in(ids, JobStatus.SUCCESSFUL)
    # Only the queues asked for.
    assert Job.objects.get(pk=other).status == JobStatus.READY
    assert not Worker.objects.filter(stopped_at__isnull=True).exists()


def test_sigterm_lets_the_running_job_finish_and_hands_back_the_rest(start_worker):
    running = tasks.ledger.enqueue("slow", seconds=1.5).id
    worker = start_worker("--processes", "1", "--threads", "1", "--shutdown-timeout", "20")
    wait_for(lambda: Ledger.objects.filter(job_id=running).exists(), 20, "job start", worker)
    waiting = [tasks.ledger.enqueue(f"after-{index}").id for index in range(5)]

    worker.signal(signal.SIGTERM)

    assert worker.wait() == 0
    assert Job.objects.get(pk=running).status == JobStatus.SUCCESSFUL
    # Not started: still READY, no attempt counted, nothing RUNNING left.
    for job in Job.objects.filter(pk__in=waiting):
        assert job.status == JobStatus.READY and job.attempts == 0, job
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    assert "stopping gracefully" in worker.log()
    assert not Worker.objects.filter(stopped_at__isnull=True).exists()


def test_shutdown_timeout_hands_back_the_unfinished_job_uncounted(start_worker):
    job_id = tasks.ledger.enqueue("too slow", seconds=30).id
    worker = start_worker("--processes", "1", "--shutdown-timeout", "1")
    wait_for(lambda: Ledger.objects.filter(job_id=job_id).exists(), 20, "job start", worker)

    worker.signal(signal.SIGTERM)

    assert worker.wait() == 0
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.READY
    assert job.attempts == 0 and job.worker_ids == []
    assert "after the 1s timeout" in worker.log()


def test_second_sigint_stops_at_once(start_worker):
    job_id = tasks.ledger.enqueue("interrupted", seconds=30).id
    worker = start_worker("--processes", "1", "--shutdown-timeout", "60")
    wait_for(lambda: Ledger.objects.filter(job_id=job_id).exists(), 20, "job start", worker)

    worker.signal(signal.SIGINT)
    worker.wait_for_log("stopping gracefully")
    worker.signal(signal.SIGINT)

    assert worker.wait(timeout=15) == 0
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.READY and job.attempts == 0
    assert "stopping at once" in worker.log()


def test_max_tasks_per_child_recycles_processes(start_worker):
    ids = [tasks.ledger.enqueue(f"recycle-{index}").id for index in range(12)]

    worker = start_worker("--processes", "1", "--max-tasks-per-child", "5")

    wait_for(lambda: all_in(ids, JobStatus.SUCCESSFUL), 30, "all jobs done", worker)
    pids = set(Ledger.objects.values_list("pid", flat=True))
    assert len(pids) == 3, "12 jobs at 5 per process need 3 processes"
    assert set(Counter(Ledger.objects.values_list("job_id", flat=True)).values()) == {1}
    worker.wait_for_log("recycled", count=2)


def test_max_memory_per_child_recycles_processes(start_worker):
    first = tasks.ledger.enqueue("memory").id
    # Every process is over 1 MB: each is replaced after its first check.
    worker = start_worker("--processes", "1", "--max-memory-per-child", "1024")

    wait_for(lambda: Job.objects.get(pk=first).status == JobStatus.SUCCESSFUL, 20, "job", worker)
    worker.wait_for_log("recycling")
    worker.wait_for_log("recycled")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


@pytest.mark.postgresql
def test_notify_wakes_an_idle_worker_long_before_its_poll(start_worker):
    worker = start_worker("--processes", "1", "--poll-interval", "60")
    worker.wait_for_log("LISTEN on channel 'djtasks' ready")
    # Let the claim at start find nothing; after it only a NOTIFY can wake
    # the worker before the poll.
    time.sleep(0.5)

    job_id = tasks.ledger.enqueue("woken").id

    wait_for(
        lambda: Job.objects.get(pk=job_id).status == JobStatus.SUCCESSFUL,
        20,
        "the job, woken by NOTIFY (the poll is 60 s away)",
        worker,
    )
