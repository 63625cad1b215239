"""Stored controls obeyed by real runworker processes: a live pause, a live concurrency limit."""

from datetime import timedelta

import pytest
from django.utils import timezone

import djtasks
from djtasks.control import queues
from djtasks.models import Job, JobStatus
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# What the docs promise: no claim of a paused queue's jobs from this long
# after the pause commits.
PAUSE_TAKES_EFFECT = timedelta(seconds=1)


def statuses(ids) -> dict:
    counts = {}
    for status in Job.objects.filter(pk__in=ids).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def test_a_pause_stops_two_workers_draining_a_queue_and_resume_finishes_it(start_worker):
    ids = [
        r.id
        for r in djtasks.bulk_enqueue(
            tasks.bracketed.using(queue_name="emails"), [((), {"seconds": 0.05})] * 400
        )
    ]
    other = [r.id for r in djtasks.bulk_enqueue(tasks.ledger, [(("other",), {})] * 20)]
    workers = [
        start_worker("--processes", "1", "--threads", "2", "--queues", "emails,default")
        for _ in range(2)
    ]
    wait_for(lambda: Ledger.objects.filter(tag="start").count() >= 20, 60, "a drain", workers)

    queues.pause_queue("emails", by="test")
    paused_at = timezone.now()  # the pause has committed (autocommit)
    # Work of other queues still flows: enqueued after the pause.
    later = [r.id for r in djtasks.bulk_enqueue(tasks.ledger, [(("later",), {})] * 10)]
    wait_for(lambda: statuses(later).get(JobStatus.SUCCESSFUL) == 10, 60, "other work", workers)
    wait_for(
        lambda: not Job.objects.filter(pk__in=ids, status=JobStatus.RUNNING).exists(),
        60,
        "the running jobs to finish",
        workers,
    )
    held = statuses(ids)
    # Nothing of the queue may start while it stays paused: watch a while.
    wait_for(lambda: timezone.now() > paused_at + timedelta(seconds=2), 10)

    assert statuses(ids) == held
    assert held.get(JobStatus.READY, 0) > 100, held
    claims = Job.objects.filter(pk__in=ids, started_at__isnull=False)
    last_claim = max(claims.values_list("started_at", flat=True))
    assert last_claim <= paused_at + PAUSE_TAKES_EFFECT, (last_claim, paused_at)
    # The ledger too: no job body started later than a claim could have.
    last_start = Ledger.objects.filter(tag="start").exclude(job_id__in=map(str, other + later))
    assert max(last_start.values_list("created_at", flat=True)) <= paused_at + timedelta(seconds=2)

    queues.resume_queue("emails", by="test")
    wait_for(lambda: statuses(ids).get(JobStatus.SUCCESSFUL) == 400, 120, "the drain", workers)

    # Each job ran once, and both workers took part.
    starts = Ledger.objects.filter(tag="start", job_id__in=map(str, ids))
    assert starts.count() == 400
    assert len(set(starts.values_list("pid", flat=True))) == 2


def test_a_live_concurrency_limit_holds_across_two_workers(start_worker):
    queues.limit_queue("emails", by="test", concurrency_limit=2)
    ids = [
        r.id
        for r in djtasks.bulk_enqueue(
            tasks.bracketed.using(queue_name="emails"), [((), {"seconds": 0.3})] * 12
        )
    ]
    workers = [
        start_worker("--processes", "1", "--threads", "3", "--queues", "emails") for _ in range(2)
    ]

    wait_for(lambda: statuses(ids).get(JobStatus.SUCCESSFUL) == 12, 90, "all jobs done", workers)

    # (time, +1 start / -1 end); sorted, an end goes before a start at the
    # same instant.
    events = sorted(
        (entry.created_at, 1 if entry.tag == "start" else -1)
        for entry in Ledger.objects.filter(job_id__in=map(str, ids))
    )
    assert len(events) == 24
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    assert most == 2, "more than 2 jobs of the queue ran at once, or never 2"
