"""Pruning against the real database: batches, retention per status, workers, command."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from djtasks.models import Job, JobStatus, Worker
from djtasks.prune import _delete_job_batch, prune

NOW = timezone.now()
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def default_settings(settings):
    """The default retentions, whatever the test settings say."""
    settings.DJTASKS = {}


def jobs(count, status, age, **fields):
    """``count`` jobs of ``status`` that finished ``age`` ago (oldest first, a second apart)."""
    rows = [
        Job(
            task_path="tests.tasks.noop",
            status=status,
            enqueued_at=NOW - age - timedelta(seconds=count - index + 60),
            finished_at=NOW - age - timedelta(seconds=count - index),
            **fields,
        )
        for index in range(count)
    ]
    return Job.objects.bulk_create(rows)


def statuses_left():
    return sorted(Job.objects.values_list("status", flat=True))


@pytest.mark.django_db
def test_many_old_rows_go_in_batches_of_the_given_size():
    jobs(250, JobStatus.SUCCESSFUL, 8 * DAY)
    jobs(5, JobStatus.SUCCESSFUL, 6 * DAY)  # younger than 7 days: kept
    with CaptureQueriesContext(connection) as queries:
        pruned = prune("default", now=NOW, statuses=["SUCCESSFUL"], batch_size=100)
    assert pruned.jobs == {"SUCCESSFUL": 250}
    deletes = [query for query in queries if "DELETE FROM djtasks_job" in query["sql"]]
    # 100 + 100 + 50: the short third batch says nothing older is left.
    assert len(deletes) == 3
    assert Job.objects.count() == 5


@pytest.mark.django_db
def test_a_batch_takes_the_oldest_rows_first():
    made = jobs(30, JobStatus.SUCCESSFUL, 8 * DAY)
    assert _delete_job_batch("default", "SUCCESSFUL", NOW - 7 * DAY, 10) == 10
    left = set(Job.objects.values_list("id", flat=True))
    assert left == {job.id for job in made[10:]}


@pytest.mark.django_db
def test_each_status_keeps_its_own_retention():
    jobs(2, JobStatus.SUCCESSFUL, 8 * DAY)  # past 7 days: pruned
    jobs(1, JobStatus.SUCCESSFUL, 2 * DAY)
    jobs(2, JobStatus.FAILED, 8 * DAY)  # FAILED are kept 30 days
    jobs(3, JobStatus.FAILED, 31 * DAY)
    jobs(1, JobStatus.CANCELLED, 8 * DAY)
    jobs(1, JobStatus.EXPIRED, 8 * DAY)
    pruned = prune("default", now=NOW)
    assert pruned.jobs == {"SUCCESSFUL": 2, "FAILED": 3, "CANCELLED": 1, "EXPIRED": 1}
    assert pruned.total_jobs == 7
    assert statuses_left() == ["FAILED", "FAILED", "SUCCESSFUL"]


@pytest.mark.django_db
def test_retention_none_keeps_a_status_for_ever(settings):
    settings.DJTASKS = {"RETENTION": {"FAILED": None, "SUCCESSFUL": timedelta(hours=1)}}
    jobs(2, JobStatus.FAILED, 400 * DAY)
    jobs(2, JobStatus.SUCCESSFUL, timedelta(hours=2))
    pruned = prune("default", now=NOW)
    assert "FAILED" not in pruned.jobs
    assert pruned.jobs["SUCCESSFUL"] == 2
    assert statuses_left() == ["FAILED", "FAILED"]


@pytest.mark.django_db
def test_ready_and_running_jobs_are_never_touched():
    # Even rows that look old in every column: only finished statuses go.
    jobs(2, JobStatus.READY, 100 * DAY)
    jobs(2, JobStatus.RUNNING, 100 * DAY)
    jobs(1, JobStatus.SUCCESSFUL, 100 * DAY)
    pruned = prune("default", now=NOW, older_than=timedelta(0))
    assert pruned.total_jobs == 1
    assert statuses_left() == ["READY", "READY", "RUNNING", "RUNNING"]


@pytest.mark.django_db
def test_dry_run_counts_and_deletes_nothing():
    jobs(4, JobStatus.SUCCESSFUL, 8 * DAY)
    Worker.objects.create(id="gone", hostname="h", pid=1, last_heartbeat_at=NOW - 30 * DAY)
    pruned = prune("default", now=NOW, dry_run=True)
    assert (pruned.jobs["SUCCESSFUL"], pruned.workers, pruned.dry_run) == (4, 1, True)
    assert Job.objects.count() == 4
    assert Worker.objects.count() == 1


# --- worker rows ------------------------------------------------------------------------------


def worker(worker_id, *, heartbeat_age, stopped_age=None):
    return Worker.objects.create(
        id=worker_id,
        hostname="host",
        pid=1,
        started_at=NOW - heartbeat_age - DAY,
        last_heartbeat_at=NOW - heartbeat_age,
        stopped_at=None if stopped_age is None else NOW - stopped_age,
    )


@pytest.mark.django_db
def test_old_stopped_and_stale_workers_go_unless_they_hold_running_jobs():
    worker("stopped-long-ago", heartbeat_age=8 * DAY, stopped_age=8 * DAY)
    worker("silent-long", heartbeat_age=8 * DAY)
    worker("stopped-recently", heartbeat_age=DAY, stopped_age=DAY)
    worker("alive", heartbeat_age=timedelta(seconds=2))
    holder = worker("silent-but-running", heartbeat_age=8 * DAY)
    jobs(1, JobStatus.RUNNING, 9 * DAY, worker=holder)
    # A finished job of a pruned worker keeps its (now dangling) worker id.
    old_job = jobs(1, JobStatus.FAILED, DAY, worker_id="silent-long")[0]
    pruned = prune("default", now=NOW)
    assert pruned.workers == 2
    assert sorted(Worker.objects.values_list("id", flat=True)) == [
        "alive",
        "silent-but-running",
        "stopped-recently",
    ]
    old_job.refresh_from_db()
    assert old_job.worker_id == "silent-long"


@pytest.mark.django_db
def test_worker_rows_in_batches_and_kept_when_asked(settings):
    for index in range(7):
        worker(f"w{index}", heartbeat_age=10 * DAY, stopped_age=10 * DAY)
    assert prune("default", now=NOW, workers=False).workers == 0
    assert Worker.objects.count() == 7
    settings.DJTASKS = {"WORKER_RETENTION": None}
    assert prune("default", now=NOW).workers == 0
    settings.DJTASKS = {}
    assert prune("default", now=NOW, batch_size=3).workers == 7
    assert not Worker.objects.exists()


# --- the command ------------------------------------------------------------------------------


def prunejobs(*args):
    out = StringIO()
    call_command("prunejobs", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_prunejobs_dry_run_prints_what_it_would_delete():
    jobs(3, JobStatus.SUCCESSFUL, 8 * DAY)
    jobs(2, JobStatus.FAILED, 31 * DAY)
    output = prunejobs("--dry-run")
    assert "Would delete 5 job(s) and 0 worker row(s)." in output
    assert "finished more than 30 days ago" in output
    assert Job.objects.count() == 5


@pytest.mark.django_db
def test_prunejobs_deletes_and_reports():
    jobs(3, JobStatus.SUCCESSFUL, 8 * DAY)
    jobs(1, JobStatus.CANCELLED, DAY)
    output = prunejobs()
    assert "Deleted 3 job(s)" in output
    assert statuses_left() == ["CANCELLED"]


@pytest.mark.django_db
def test_prunejobs_older_than_and_status_for_a_one_off_cleanup():
    jobs(2, JobStatus.FAILED, timedelta(hours=3))
    jobs(2, JobStatus.SUCCESSFUL, timedelta(hours=3))
    output = prunejobs("--older-than", "2h", "--status", "failed", "--no-workers")
    assert "FAILED" in output and "SUCCESSFUL" not in output
    assert "finished more than 2 hours ago" in output
    assert statuses_left() == ["SUCCESSFUL", "SUCCESSFUL"]


@pytest.mark.django_db
def test_prunejobs_refuses_bad_input():
    with pytest.raises(CommandError, match="not a duration"):
        prunejobs("--older-than", "7")
    with pytest.raises(CommandError, match="invalid choice"):
        prunejobs("--status", "RUNNING")
    with pytest.raises(CommandError, match="Unknown task backend"):
        prunejobs("--backend", "nope")


@pytest.mark.django_db
def test_prunejobs_reports_a_bad_setting_as_a_command_error(settings):
    settings.DJTASKS = {"RETENTION": {"DONE": timedelta(days=1)}}
    with pytest.raises(CommandError, match="names DONE"):
        prunejobs()


# --- locks ------------------------------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_row_locked_elsewhere_is_skipped_not_waited_for():
    locked, free = jobs(2, JobStatus.SUCCESSFUL, 8 * DAY)
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert holding.wait(10)
        with connection.cursor() as cursor:
            # Were the prune to wait for the lock, this would fail it fast.
            cursor.execute("SET lock_timeout = '2s'")
        pruned = prune("default", now=NOW)
    finally:
        release.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert pruned.jobs["SUCCESSFUL"] == 1
    assert list(Job.objects.values_list("id", flat=True)) == [locked.pk]
    # The next prune takes the row once it is free.
    assert prune("default", now=NOW).jobs["SUCCESSFUL"] == 1
    assert not Job.objects.exists()
