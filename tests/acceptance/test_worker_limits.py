"""Rate limits and concurrency keys held by several runworker processes."""

from datetime import timedelta

import pytest

import djtasks
from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def all_done(ids):
    return Job.objects.filter(pk__in=ids, status=JobStatus.SUCCESSFUL).count() == len(ids)


def most_in_any_window(starts, window):
    """The most starts in any half-open span (start - window, start]."""
    starts = sorted(starts)
    return max(sum(1 for other in starts if start - window < other <= start) for start in starts)


def test_a_rate_limit_holds_across_three_workers_while_other_jobs_flow(start_worker):
    # tasks.rate_limited: at most 5 starts in any second, whatever the queue.
    # Each worker serves its own queue, so all three take part for certain
    # (a shared queue may go to whichever worker polls first, every time).
    queues = ["default", "emails", "other"]
    limited = []
    for index, queue in enumerate(queues):
        task = tasks.rate_limited.using(queue_name=queue)
        limited += [r.id for r in djtasks.bulk_enqueue(task, [((), {})] * (6 - (index > 0)))]
    flowing = [r.id for r in djtasks.bulk_enqueue(tasks.ledger, [(("flow",), {})] * 20)]
    workers = [
        start_worker("--processes", "1", "--threads", "2", "--queues", queue) for queue in queues
    ]

    wait_for(lambda: all_done(limited + flowing), 40, "all jobs done", workers)

    limited_jobs = Job.objects.filter(pk__in=limited)
    assert limited_jobs.count() == 16
    # Each ran once, so last_attempted_at is its start, the time its claim
    # booked against the limit.
    starts = list(limited_jobs.values_list("last_attempted_at", flat=True))
    assert most_in_any_window(starts, timedelta(seconds=1)) <= 5
    # 16 starts at 5 a second span more than 3 seconds: the limit did bite.
    assert max(starts) - min(starts) >= timedelta(seconds=3)
    # The three workers shared the one limit.
    assert len({job.worker_id for job in limited_jobs}) == 3
    # The unlimited jobs of the same queue did not wait for the limited ones.
    flowed = Job.objects.filter(pk__in=flowing).order_by("-finished_at").first().finished_at
    assert flowed < max(starts)


def test_a_concurrency_key_is_never_exceeded_across_workers(start_worker):
    # tasks.per_customer: at most 2 running per customer; each sleeps 0.3 s.
    calls = [((customer,), {"seconds": 0.3}) for customer in (1, 2) for _ in range(6)]
    ids = [r.id for r in djtasks.bulk_enqueue(tasks.per_customer, calls)]
    workers = [start_worker("--processes", "1", "--threads", "3") for _ in range(3)]

    wait_for(lambda: all_done(ids), 40, "all jobs done", workers)

    customer_of = {str(pk): args[0] for pk, args in Job.objects.values_list("id", "args")}
    # (time, +1 start / -1 end, customer); sorted, an end goes before a
    # start at the same instant.
    events = sorted(
        (entry.created_at, 1 if entry.tag == "start" else -1, customer_of[entry.job_id])
        for entry in Ledger.objects.all()
    )
    assert len(events) == 2 * len(ids)
    running = {1: 0, 2: 0}
    most = {1: 0, 2: 0}
    for _, change, customer in events:
        running[customer] += change
        most[customer] = max(most[customer], running[customer])
    assert most == {1: 2, 2: 2}, "a customer had more than 2 jobs running, or never 2"
    pids = set(Ledger.objects.values_list("pid", flat=True))
    assert len(pids) >= 2
