"""Stored queue and task controls as the claim sees them, on the real database."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

import djtasks
from djtasks import controls
from djtasks.control import queues
from djtasks.models import Control, ControlKind, Job, JobStatus
from djtasks.worker.claim import claim
from djtasks.worker.outcomes import Outcome, record
from tests import tasks

pytestmark = pytest.mark.django_db

QUEUES = ["default", "emails", "other"]
NOOP = "tests.tasks.noop"
ADD = "tests.tasks.add"


def claim_now(limit=100, worker="w", queues=QUEUES, now=None):
    # The controls as stored now, as a worker reads them (at most 0.5 s old).
    stored = controls.read("default")
    return claim("default", worker, queues, limit, now or timezone.now(), stored=stored)


def finish(jobs, worker="w"):
    now = timezone.now()
    record("default", worker, [Outcome(job.id, "SUCCESSFUL", now, attempt=1) for job in jobs])


def test_a_claim_given_no_controls_obeys_none():
    tasks.noop.enqueue()
    queues.pause_queue("default", by="test")

    assert len(claim("default", "w", QUEUES, 100, timezone.now())) == 1


def test_run_jobs_obeys_the_stored_controls():
    from djtasks.testing import run_jobs

    job = tasks.noop.enqueue()
    queues.pause_task(NOOP, by="test")
    assert run_jobs() == []

    queues.resume_task(NOOP, by="test")
    assert [result.id for result in run_jobs()] == [job.id]


def test_a_paused_queue_is_not_claimed_and_resume_makes_it_claimable():
    emails = djtasks.bulk_enqueue(tasks.noop.using(queue_name="emails"), [((), {})] * 3)
    other = tasks.noop.using(queue_name="other").enqueue()

    queues.pause_queue("emails", by="test")
    claimed = claim_now()

    assert [str(job.id) for job in claimed] == [other.id]
    assert Job.objects.filter(queue_name="emails", status=JobStatus.READY).count() == 3

    queues.resume_queue("emails", by="test")
    assert sorted(str(job.id) for job in claim_now()) == sorted(r.id for r in emails)


def test_a_paused_task_is_skipped_in_every_queue_and_its_rows_flagged():
    paused = [tasks.noop.using(queue_name=queue).enqueue().id for queue in QUEUES]
    other = tasks.add.enqueue(1, 2)

    queues.pause_task(NOOP, by="test")

    assert Job.objects.filter(pk__in=paused, paused=True, status=JobStatus.READY).count() == 3
    assert [str(job.id) for job in claim_now()] == [other.id]
    assert Job.objects.filter(pk__in=paused, status=JobStatus.READY).count() == 3


def test_a_job_of_a_paused_task_enqueued_later_is_flagged_by_the_claim_not_run():
    queues.pause_task(NOOP, by="test")
    # Enqueued after the pause (or retried, or released by a workflow):
    # the pause's UPDATE never saw it.
    late = djtasks.bulk_enqueue(tasks.noop, [((), {})] * 5)
    other = tasks.add.enqueue(1, 2)

    claimed = claim_now(limit=3)

    # The 5 flagged rows did not use up the batch: the claim went on.
    assert [str(job.id) for job in claimed] == [other.id]
    late_rows = Job.objects.filter(pk__in=[r.id for r in late])
    assert set(late_rows.values_list("status", "paused")) == {(JobStatus.READY, True)}


def test_resuming_a_task_clears_its_flags_and_the_jobs_run():
    ids = [r.id for r in djtasks.bulk_enqueue(tasks.noop, [((), {})] * 4)]
    queues.pause_task(NOOP, by="test")
    assert claim_now() == []

    queues.resume_task(NOOP, by="test")

    assert not Job.objects.filter(paused=True).exists()
    assert sorted(str(job.id) for job in claim_now()) == sorted(ids)


def test_a_running_job_of_a_paused_task_is_left_running():
    [running] = claim_now() or [None]
    assert running is None
    job = tasks.noop.enqueue()
    [running] = claim_now()

    queues.pause_task(NOOP, by="test")

    row = Job.objects.get(pk=job.id)
    assert (row.status, row.paused) == (JobStatus.RUNNING, False)
    finish([running])
    assert Job.objects.get(pk=job.id).status == JobStatus.SUCCESSFUL


def test_a_paused_task_with_a_rate_limit_is_skipped_by_the_limited_claim():
    # rate_limited rows are "limited": they live in the other ready index.
    djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 3)
    queues.pause_task("tests.tasks.rate_limited", by="test")
    late = tasks.rate_limited.enqueue()

    assert claim_now() == []
    assert Job.objects.get(pk=late.id).paused


def test_a_queue_concurrency_limit_caps_running_jobs_across_claims():
    djtasks.bulk_enqueue(tasks.noop.using(queue_name="emails"), [((), {})] * 6)
    queues.limit_queue("emails", by="test", concurrency_limit=2)

    first = claim_now(worker="a")
    second = claim_now(worker="b")

    assert (len(first), len(second)) == (2, 0)
    finish(first[:1], worker="a")
    assert len(claim_now(worker="b")) == 1
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 2


def test_clearing_the_concurrency_limit_lets_the_queue_flow_again():
    djtasks.bulk_enqueue(tasks.noop.using(queue_name="emails"), [((), {})] * 5)
    queues.limit_queue("emails", by="test", concurrency_limit=1)
    assert len(claim_now()) == 1

    queues.limit_queue("emails", by="test", concurrency_limit=None)

    assert len(claim_now()) == 4


def test_a_stored_queue_rate_limit_overrides_the_setting(settings):
    settings.DJTASKS = {"QUEUE_RATE_LIMITS": {"emails": "100/s"}}
    djtasks.bulk_enqueue(tasks.noop.using(queue_name="emails"), [((), {})] * 6)
    queues.limit_queue("emails", by="test", rate_limit="2/m")

    assert len(claim_now()) == 2
    assert claim_now() == []
    assert controls.read("default").queue_rates()["emails"] == controls.Rate(2, 60)


def test_a_task_rate_override_limits_a_task_that_had_no_limit():
    djtasks.bulk_enqueue(tasks.noop, [((), {})] * 3)
    queues.limit_task(NOOP, "1/m", by="test")
    late = djtasks.bulk_enqueue(tasks.noop, [((), {})] * 2)

    assert len(claim_now()) == 1
    assert claim_now() == []
    # The late rows went to the limited claim the first time the plain one met them.
    assert all(Job.objects.filter(pk__in=[r.id for r in late]).values_list("limited", flat=True))


def test_a_task_rate_override_wins_over_the_tasks_own():
    djtasks.bulk_enqueue(tasks.rate_limited, [((), {})] * 8)  # 5/s in code
    queues.limit_task("tests.tasks.rate_limited", "2/h", by="test")

    assert len(claim_now()) == 2
    assert claim_now() == []

    queues.limit_task("tests.tasks.rate_limited", None, by="test")
    later = timezone.now() + timedelta(seconds=2)
    assert len(claim_now(now=later)) == 5


def test_each_change_is_stored_with_who_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="djtasks"):
        queues.pause_queue("emails", by="cli:ada")
        queues.limit_queue("emails", by="admin:bob", rate_limit="10/s")

    control = Control.objects.get(kind=ControlKind.QUEUE, name="emails")
    assert (control.paused, control.rate_limit, control.changed_by) == (True, "10/s", "admin:bob")
    assert "queue emails: paused by cli:ada" in caplog.text
    assert "queue emails: rate limit 10/s by admin:bob" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: queues.pause_queue("nope", by="t"), "Unknown queue 'nope'"),
        (lambda: queues.pause_task("os.system", by="t"), "not a registered task"),
        (lambda: queues.limit_queue("emails", by="t", rate_limit="fast"), "not a rate limit"),
        (
            lambda: queues.limit_queue("emails", by="t", concurrency_limit=0),
            "not a concurrency limit",
        ),
        (lambda: queues.limit_task(NOOP, "0/s", by="t"), "not a rate limit"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(change, message):
    with pytest.raises(queues.ControlError, match=message):
        change()
    assert not Control.objects.exists()


def test_a_big_backlog_is_flagged_and_unflagged_in_batches(monkeypatch):
    monkeypatch.setattr(queues, "FLAG_BATCH", 2)
    ids = [r.id for r in djtasks.bulk_enqueue(tasks.noop, [((), {})] * 5)]

    queues.pause_task(NOOP, by="test")
    assert Job.objects.filter(pk__in=ids, paused=True).count() == 5

    queues.resume_task(NOOP, by="test")
    assert not Job.objects.filter(paused=True).exists()
