"""Workflows: chain, group and chord on the real claim/execute/record path."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import djtasks
from djtasks.compat import InvalidTask
from djtasks.control import operations
from djtasks.models import Job, JobStatus
from djtasks.prune import prune
from djtasks.worker import rescue
from djtasks.worker.claim import claim
from djtasks.worker.outcomes import Outcome, record
from tests import tasks
from tests.conftest import WORKER_ID

pytestmark = pytest.mark.django_db


def run_all(run_jobs, **kwargs):
    """Run due jobs until none is left."""
    while run_jobs(**kwargs):
        pass


def job(result) -> Job:
    return Job.objects.get(pk=result.id)


def statuses(flow) -> list:
    return [job(result).status for result in flow.results]


# --- building and enqueueing ---------------------------------------------------------------


def test_chain_enqueues_every_step_and_only_the_first_is_ready(backend):
    flow = djtasks.chain(tasks.add.step(1, 2), tasks.double.step(), tasks.double).enqueue()

    assert statuses(flow) == [JobStatus.READY, JobStatus.WAITING, JobStatus.WAITING]
    rows = Job.objects.filter(workflow_id=flow.id).order_by("workflow_stage")
    assert [(row.workflow_stage, row.waiting_for) for row in rows] == [(0, 0), (1, 1), (2, 1)]
    # Seen through the standard TaskResult, a WAITING step is READY.
    assert [result.status for result in flow.results] == ["READY"] * 3
    # WAITING rows are never claimed.
    claimed = claim(backend.alias, WORKER_ID, ["default"], 10, flow.results[0].enqueued_at)
    assert [claimed_job.id for claimed_job in claimed] == [uuid.UUID(flow.results[0].id)]


def test_a_step_may_be_a_dotted_path_or_a_task_with_options():
    flow = djtasks.chain(
        djtasks.step("tests.tasks.add", 1, 2),
        tasks.double.using(priority=7, queue_name="emails").step(),
    ).enqueue()

    second = job(flow.results[1])
    assert (second.task_path, second.priority, second.queue_name) == (
        "tests.tasks.double",
        7,
        "emails",
    )


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: djtasks.chain(tasks.add.step(1, object())), djtasks.ArgumentNotSerializable),
        (lambda: djtasks.chain(tasks.noop.using(queue_name="nope").step()), InvalidTask),
        (lambda: djtasks.group(tasks.noop.using(unique=True).step()), InvalidTask),
        (lambda: djtasks.chain(tasks.noop, djtasks.step("tests.tasks.missing")), Exception),
        (lambda: djtasks.chain(tasks.noop, print), TypeError),
        (lambda: djtasks.chain(), ValueError),
        (lambda: djtasks.group(tasks.noop, djtasks.chain(tasks.noop)), TypeError),
    ],
)
def test_a_bad_step_fails_at_enqueue_and_inserts_nothing(build, error):
    with pytest.raises(error):
        build().enqueue()
    assert not Job.objects.exists()


def test_a_rolled_back_transaction_leaves_no_step():
    with pytest.raises(RuntimeError), transaction.atomic():
        djtasks.chord([tasks.add.step(1, 1)] * 3, tasks.collect.step()).enqueue()
        assert Job.objects.count() == 4
        raise RuntimeError("the caller's transaction fails")
    assert not Job.objects.exists()


# --- passing results -----------------------------------------------------------------------


def test_chain_passes_each_result_as_the_first_argument(run_jobs):
    flow = djtasks.chain(
        tasks.add.step(1, 2), tasks.add.step(10), tasks.double.step(), tasks.echo.step("x", k=1)
    ).enqueue()

    run_all(run_jobs)
    flow.refresh()

    assert [result.status for result in flow.results] == ["SUCCESSFUL"] * 4
    assert [result.return_value for result in flow.results[:3]] == [3, 13, 26]
    assert flow.return_value == {"args": [26, "x"], "kwargs": {"k": 1}}
    # The released step's arguments show what it was given.
    assert job(flow.results[3]).args == [26, "x"]


def test_group_collects_results_in_its_order_whatever_order_they_ran_in(run_jobs):
    # Higher priority runs first: the last member runs first.
    members = [tasks.add.using(priority=index).step(index, 100) for index in range(5)]
    flow = djtasks.group(members).enqueue()

    for _ in range(5):
        run_jobs(limit=1)
    flow.refresh()

    ran = Job.objects.filter(workflow_id=flow.id).order_by("started_at")
    assert [row.workflow_index for row in ran] == [4, 3, 2, 1, 0]
    assert flow.return_value == [100, 101, 102, 103, 104]
    assert isinstance(flow.last, list)


def test_chord_callback_is_released_once_the_last_header_step_finishes(run_jobs):
    header = [tasks.add.step(index, 1) for index in range(3)]
    flow = djtasks.chord(header, tasks.collect.step("done")).enqueue()
    callback = flow.last

    run_jobs(limit=1)
    run_jobs(limit=1)
    assert (job(callback).status, job(callback).waiting_for) == (JobStatus.WAITING, 1)
    run_jobs(limit=1)
    assert (job(callback).status, job(callback).args) == (JobStatus.READY, [[1, 2, 3], "done"])

    run_all(run_jobs)
    callback.refresh()
    assert callback.return_value == {"values": [1, 2, 3], "args": ["done"]}


def test_each_step_of_a_group_after_a_group_gets_the_whole_list(run_jobs):
    flow = djtasks.chain(
        djtasks.group(tasks.add.step(1, 1), tasks.add.step(2, 2)),
        djtasks.group(tasks.collect.step("a"), tasks.collect.step("b")),
    ).enqueue()

    run_all(run_jobs)
    flow.refresh()

    assert flow.return_value == [
        {"values": [2, 4], "args": ["a"]},
        {"values": [2, 4], "args": ["b"]},
    ]


def test_a_plain_batch_pays_no_workflow_query(backend, run_jobs):
    ids = [tasks.noop.enqueue().id for _ in range(3)]
    now = Job.objects.get(pk=ids[-1]).enqueued_at
    jobs = claim(backend.alias, WORKER_ID, ["default"], 10, now)
    outcomes = [Outcome(claimed.id, "SUCCESSFUL", None, attempt=1) for claimed in jobs]

    with CaptureQueriesContext(transaction.get_connection()) as queries:
        record(backend.database, WORKER_ID, outcomes)

    sql = [query["sql"] for query in queries.captured_queries]
    assert sum("UPDATE djtasks_job" in text for text in sql) == 1
    assert not any("workflow" in text for text in sql)


# --- failures ------------------------------------------------------------------------------


def step_failed_entry(row):
    [entry] = row.errors
    return entry


def test_a_failed_step_cancels_the_rest_and_runs_the_error_callback(run_jobs):
    flow = djtasks.chain(
        tasks.add.step(1, 2),
        tasks.failing.step(),
        tasks.double.step(),
        tasks.double.step(),
        on_error=tasks.on_workflow_error.step(tag="alert"),
    ).enqueue()
    failed_id = flow.results[1].id

    run_all(run_jobs)
    flow.refresh()

    assert statuses(flow) == [
        JobStatus.SUCCESSFUL,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.CANCELLED,
    ]
    entry = step_failed_entry(job(flow.results[2]))
    assert entry["exception_class_path"] == "djtasks.exceptions.WorkflowStepFailed"
    assert f"tests.tasks.failing (job {failed_id}) ended FAILED" in entry["traceback"]
    assert flow.results[2].errors[0].exception_class_path.endswith("WorkflowStepFailed")
    assert flow.on_error.status == "SUCCESSFUL"
    assert flow.on_error.return_value == {"failed": failed_id, "tag": "alert"}


def test_the_error_callback_goes_when_every_step_succeeded(run_jobs):
    flow = djtasks.chain(
        tasks.add.step(1, 2), tasks.double.step(), on_error=tasks.on_workflow_error.step()
    ).enqueue()
    error_id = flow.on_error.id
    assert job(flow.on_error).waiting_for == 2

    run_all(run_jobs)
    flow.refresh()

    assert not Job.objects.filter(pk=error_id).exists()
    assert flow.on_error is None
    assert flow.return_value == 6


def test_a_failed_group_member_runs_the_error_callback_once(run_jobs):
    flow = djtasks.chord(
        [tasks.failing.step(), tasks.failing.step(), tasks.add.step(1, 1)],
        tasks.collect.step(),
        on_error=tasks.on_workflow_error.step(),
    ).enqueue()

    run_all(run_jobs)

    rows = {row.task_path: row for row in Job.objects.filter(workflow_id=flow.id)}
    assert rows["tests.tasks.collect"].status == JobStatus.CANCELLED
    # The other members still ran; the callback ran once, for the first failure.
    assert rows["tests.tasks.add"].status == JobStatus.SUCCESSFUL
    assert Job.objects.filter(task_path="tests.tasks.on_workflow_error").count() == 1
    assert job(flow.on_error).status == JobStatus.SUCCESSFUL


def test_a_step_fails_the_chain_only_after_its_last_attempt(run_jobs, later):
    flow = djtasks.chain(tasks.failing.using(max_attempts=2).step(), tasks.double.step()).enqueue()

    run_jobs()
    assert statuses(flow) == [JobStatus.READY, JobStatus.WAITING]
    run_jobs(now=later)
    assert statuses(flow) == [JobStatus.FAILED, JobStatus.CANCELLED]


def test_an_expired_step_fails_the_chain(run_jobs, later):
    flow = djtasks.chain(tasks.noop.using(expires=1).step(), tasks.double.step()).enqueue()

    run_jobs(now=later)

    assert statuses(flow) == [JobStatus.EXPIRED, JobStatus.CANCELLED]


def test_expiry_of_a_later_step_counts_from_its_release(run_jobs, later):
    flow = djtasks.chain(tasks.noop.step(), tasks.echo.using(expires=60).step()).enqueue()
    enqueued = job(flow.results[1]).expires_at

    run_jobs(now=later)

    released = job(flow.results[1])
    assert released.status == JobStatus.READY
    assert released.expires_at > enqueued


def test_a_stale_outcome_does_not_advance_the_workflow(backend):
    flow = djtasks.chain(tasks.add.step(1, 2), tasks.double.step()).enqueue()
    [claimed] = claim(backend.alias, WORKER_ID, ["default"], 10, flow.results[0].enqueued_at)

    stale = Outcome(claimed.id, "SUCCESSFUL", None, 3, attempt=99, workflow_id=flow.id)
    record(backend.database, WORKER_ID, [stale])

    assert statuses(flow) == [JobStatus.RUNNING, JobStatus.WAITING]


def test_cancelling_a_waiting_step_fails_the_rest(run_jobs):
    flow = djtasks.chain(
        tasks.add.step(1, 2),
        tasks.double.step(),
        tasks.double.step(),
        on_error=tasks.on_workflow_error.step(),
    ).enqueue()

    assert djtasks.cancel(flow.results[1].id) == "cancelled"

    assert statuses(flow) == [JobStatus.READY, JobStatus.CANCELLED, JobStatus.CANCELLED]
    assert job(flow.on_error).args == [flow.results[1].id]
    run_all(run_jobs)
    assert statuses(flow)[0] == JobStatus.SUCCESSFUL
    assert job(flow.on_error).status == JobStatus.SUCCESSFUL


def test_a_step_rescued_to_failed_fails_its_dependants(backend):
    flow = djtasks.chain(
        tasks.add.step(1, 2), tasks.double.step(), on_error=tasks.on_workflow_error.step()
    ).enqueue()
    claim(backend.alias, "dead-worker", ["default"], 10, flow.results[0].enqueued_at)

    # With MAX_LOST_ATTEMPTS 1 the first loss fails the step (by default a
    # lost step goes back to READY, see test_worker_rescue).
    with override_settings(DJTASKS={"MAX_LOST_ATTEMPTS": 1}):
        assert rescue.release_lost(backend.database, "dead-worker", "it was killed") == 1

    assert statuses(flow) == [JobStatus.FAILED, JobStatus.CANCELLED]
    assert job(flow.on_error).status == JobStatus.READY


def test_a_cancelled_step_handed_back_on_shutdown_fails_its_dependants(backend):
    flow = djtasks.chain(tasks.add.step(1, 2), tasks.double.step()).enqueue()
    claim(backend.alias, "stopping-worker", ["default"], 10, flow.results[0].enqueued_at)
    Job.objects.filter(pk=flow.results[0].id).update(
        cancel_requested_at=flow.results[0].enqueued_at
    )

    assert rescue.hand_back(backend.database, "stopping-worker") == 1

    assert statuses(flow) == [JobStatus.CANCELLED, JobStatus.CANCELLED]


def test_admin_retry_reruns_the_failed_step_alone(run_jobs, later):
    flow = djtasks.chain(tasks.failing.step(), tasks.double.step()).enqueue()
    run_all(run_jobs)

    retried = operations.retry(Job.objects.filter(workflow_id=flow.id))

    # The cancelled step never got its input: it is not put back.
    assert retried == 1
    assert statuses(flow) == [JobStatus.READY, JobStatus.CANCELLED]
    run_all(run_jobs, now=later)
    assert statuses(flow) == [JobStatus.FAILED, JobStatus.CANCELLED]


def test_prune_keeps_the_steps_of_an_unfinished_workflow(run_jobs, later):
    flow = djtasks.chain(tasks.add.step(1, 2), tasks.double.using(run_after=later).step()).enqueue()
    run_jobs()
    assert statuses(flow) == [JobStatus.SUCCESSFUL, JobStatus.READY]

    pruned = prune(now=later, older_than=timedelta(0), workers=False)
    assert pruned.total_jobs == 0
    assert Job.objects.filter(workflow_id=flow.id).count() == 2

    run_jobs(now=later)
    prune(now=later, older_than=timedelta(0), workers=False)
    assert not Job.objects.filter(workflow_id=flow.id).exists()


# --- two header steps finishing at once ----------------------------------------------------


def _waiting_on_a_lock() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_header_steps_recorded_at_once_release_the_callback_once(backend):
    import threading
    import time

    from django.db import connections

    header = [tasks.add.step(1, 1), tasks.add.step(2, 2)]
    flow = djtasks.chord(header, tasks.collect.step()).enqueue()
    now = flow.results[1].enqueued_at
    [first] = claim(backend.alias, "w1", ["default"], 1, now)
    [second] = claim(backend.alias, "w2", ["default"], 1, now)
    recorded, release = threading.Event(), threading.Event()

    def outcome(claimed, value):
        return Outcome(claimed.id, "SUCCESSFUL", None, value, attempt=1, workflow_id=flow.id)

    def first_worker():
        try:
            # The outer transaction keeps the first outcome uncommitted, its
            # locks held, while the second worker records its own.
            with transaction.atomic():
                record(backend.database, "w1", [outcome(first, 2)])
                recorded.set()
                release.wait(timeout=30)
        finally:
            recorded.set()
            connections.close_all()

    def second_worker():
        try:
            record(backend.database, "w2", [outcome(second, 4)])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_worker), threading.Thread(target=second_worker)]
    threads[0].start()
    assert recorded.wait(timeout=30)
    threads[1].start()
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _waiting_on_a_lock(), "the second record() should wait for the first one's locks"
    release.set()
    for thread in threads:
        thread.join(timeout=30)

    callback = job(flow.last)
    assert (callback.status, callback.waiting_for) == (JobStatus.READY, 0)
    header = Job.objects.filter(workflow_id=flow.id, workflow_stage=0).order_by("workflow_index")
    assert callback.args[0] == [row.return_value for row in header]
    assert sorted(callback.args[0]) == [2, 4]


# --- deleting steps, reading a workflow back ---------------------------------------------


def test_deleting_a_step_of_an_unfinished_workflow_fails_the_rest(run_jobs):
    flow = djtasks.chord(
        [tasks.add.step(1, 1), tasks.add.step(2, 2)],
        tasks.collect.step(),
        on_error=tasks.on_workflow_error.step(),
    ).enqueue()
    deleted_id = flow.results[0].id

    assert operations.delete(Job.objects.filter(pk=deleted_id)) == 1

    callback = job(flow.last)
    assert callback.status == JobStatus.CANCELLED
    assert f"(job {deleted_id}) was deleted" in callback.errors[0]["traceback"]
    run_all(run_jobs)
    assert job(flow.on_error).return_value == {"failed": deleted_id, "tag": ""}


def test_deleting_the_steps_of_finished_workflows_touches_nothing_else(run_jobs):
    flow = djtasks.chain(tasks.add.step(1, 1), tasks.double.step()).enqueue()
    run_all(run_jobs)

    assert operations.delete(Job.objects.filter(pk=flow.results[0].id)) == 1
    assert job(flow.results[1]).status == JobStatus.SUCCESSFUL


def test_get_workflow_reads_the_steps_back(run_jobs):
    flow = djtasks.chain(
        djtasks.group(tasks.add.step(1, 1), tasks.add.step(2, 2)),
        tasks.collect.step(),
        on_error=tasks.on_workflow_error.step(),
    ).enqueue()

    read = djtasks.get_workflow(flow.id)

    assert read.id == flow.id
    assert [[result.id for result in stage] for stage in read.stages] == [
        [result.id for result in stage] for stage in flow.stages
    ]
    assert read.grouped == [True, False]
    assert read.on_error.id == flow.on_error.id
    run_all(run_jobs)
    assert djtasks.get_workflow(str(flow.id)).return_value == {"values": [2, 4], "args": []}
    with pytest.raises(Exception, match="No workflow"):
        djtasks.get_workflow(uuid.uuid4())


def test_refresh_reads_every_step_in_one_query(run_jobs, django_assert_num_queries):
    flow = djtasks.chord([tasks.add.step(index, 0) for index in range(10)], tasks.collect).enqueue()
    run_all(run_jobs)

    with django_assert_num_queries(1):
        flow.refresh()

    assert flow.return_value == {"values": list(range(10)), "args": []}
    assert all(result.status == "SUCCESSFUL" for result in flow.results)
