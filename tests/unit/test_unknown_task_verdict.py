"""The verdict on a job whose task the claiming worker lacks, with a fixed clock."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from djtasks.worker.unknown_tasks import TaskKnowledge, WorkerTasks, verdict

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GRACE = 600.0
PATH = "app.tasks.new_task"


@dataclass
class FakeJob:
    task_path: str = PATH
    queue_name: str = "default"
    enqueued_at: datetime = NOW - timedelta(minutes=1)
    run_after: datetime | None = None


def worker(worker_id, tasks, live=True, seen=NOW, queues=("default",)):
    return WorkerTasks(worker_id, frozenset(tasks), frozenset(queues), live, seen)


def test_a_live_worker_with_the_task_means_wait_without_a_deadline():
    knowledge = TaskKnowledge([worker("old", ["app.tasks.a"]), worker("new", [PATH])])

    found = verdict(FakeJob(), knowledge, NOW, GRACE)

    assert found.runners == ["new"] and found.deadline is None and not found.fails


def test_a_task_no_worker_ever_had_fails_a_grace_after_the_enqueue():
    knowledge = TaskKnowledge([worker("old", ["app.tasks.a"])])
    job = FakeJob(enqueued_at=NOW - timedelta(seconds=GRACE - 1))

    waiting = verdict(job, knowledge, NOW, GRACE)
    failing = verdict(job, knowledge, NOW + timedelta(seconds=1), GRACE)

    assert not waiting.fails and waiting.deadline == NOW + timedelta(seconds=1)
    assert "fails at" in waiting.message
    assert failing.fails
    assert "is not a registered task of any live worker of its queue" in failing.message
    assert "UNKNOWN_TASK_GRACE (600 s)" in failing.message


def test_the_grace_counts_from_the_last_sight_of_a_worker_that_had_the_task():
    stopped_at = NOW - timedelta(seconds=60)
    knowledge = TaskKnowledge([worker("gone", [PATH], live=False, seen=stopped_at)])
    job = FakeJob(enqueued_at=NOW - timedelta(days=1))

    found = verdict(job, knowledge, NOW, GRACE)

    assert not found.fails
    assert found.deadline == stopped_at + timedelta(seconds=GRACE)
    assert "worker gone had it until" in found.message


def test_a_deferred_job_gets_its_grace_from_its_run_after():
    run_after = NOW - timedelta(seconds=10)
    job = FakeJob(enqueued_at=NOW - timedelta(days=1), run_after=run_after)

    found = verdict(job, TaskKnowledge([]), NOW, GRACE)

    assert not found.fails and found.deadline == run_after + timedelta(seconds=GRACE)


def test_a_grace_of_zero_fails_at_once_when_no_live_worker_has_the_task():
    found = verdict(FakeJob(), TaskKnowledge([worker("dead", [PATH], live=False)]), NOW, 0)

    assert found.fails


def test_a_worker_with_the_task_on_another_queue_does_not_count():
    knowledge = TaskKnowledge([worker("elsewhere", [PATH], queues=["reports"])])

    found = verdict(FakeJob(), knowledge, NOW, GRACE)

    assert found.runners == [] and found.deadline == FakeJob().enqueued_at + timedelta(
        seconds=GRACE
    )
