"""MariaDB and MySQL: the schema djtasks.schema builds there, and what the server checks.

They have no partial indexes: the unique constraints are unique indexes on
generated columns. These tests read what the server built and enforces (the
claim's plan is in test_mariadb_plan).
"""

import re
import threading
import time

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from djtasks.backend import _check_mysql_isolation
from djtasks.models import Job, JobStatus

pytestmark = [pytest.mark.mysql]


def _insert_live(key, status="READY"):
    Job.objects.create(
        task_path="tests.tasks.noop",
        backend="default",
        queue_name="default",
        unique_key=key,
        status=status,
        available_at=timezone.now(),
    )


@pytest.mark.django_db(transaction=True)
def test_one_live_job_per_unique_key_is_held_by_the_database():
    _insert_live("report-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert_live("report-1", status="RUNNING")
    # Finished jobs of the key, and keyless jobs, never conflict.
    Job.objects.filter(unique_key="report-1").update(status=JobStatus.SUCCESSFUL)
    _insert_live("report-1")
    _insert_live("report-1", status="SUCCESSFUL")
    _insert_live(None)
    _insert_live(None)
    assert Job.objects.filter(unique_key="report-1").count() == 3


@pytest.mark.django_db(transaction=True)
def test_two_connections_racing_for_a_unique_key_get_one_job():
    """The second inserts while the first's transaction is open: it waits, then is refused."""
    first_inserted = threading.Event()
    outcomes = {}

    def first():
        with transaction.atomic():
            _insert_live("race")
            first_inserted.set()
            time.sleep(0.5)  # the second's INSERT is under way meanwhile
        outcomes["first"] = "inserted"
        connections.close_all()

    def second():
        first_inserted.wait()
        try:
            with transaction.atomic():
                _insert_live("race")
            outcomes["second"] = "inserted"
        except IntegrityError:
            outcomes["second"] = "refused"
        connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {"first": "inserted", "second": "refused"}
    assert Job.objects.filter(unique_key="race").count() == 1


@pytest.mark.django_db
def test_a_connection_not_in_read_committed_is_an_error():
    for level in ("repeatable read", None):  # None: the server's own, REPEATABLE READ
        errors = list(_check_mysql_isolation("default", "default", _FakeConnection(level)))
        assert [error.id for error in errors] == ["djtasks.E008"]
    assert not list(_check_mysql_isolation("default", "default", _FakeConnection(None, set=False)))
    assert not list(_check_mysql_isolation("default", "default", connection))


class _FakeConnection:
    def __init__(self, level, set=True):  # noqa: A002
        self.settings_dict = {"OPTIONS": {"isolation_level": level} if set else {}}


@pytest.mark.django_db(transaction=True)
def test_a_table_made_from_the_model_gets_the_unique_construction_too():
    """A squashed migration or a test run without migrations makes the table in one go."""
    from django.db import models as django_models

    from djtasks.schema import PartialUniqueConstraint

    class Probe(django_models.Model):
        key = django_models.CharField(max_length=20)
        live = django_models.BooleanField(default=True)

        class Meta:
            app_label = "tests"
            db_table = "djtasks_probe_unique"
            constraints = [
                PartialUniqueConstraint(
                    fields=["key"], condition=Q(live=True), name="djtasks_probe_one_live_key"
                )
            ]

        def __str__(self):
            return self.key

    with connection.schema_editor() as editor:
        editor.create_model(Probe)
    try:
        Probe.objects.create(key="a")
        Probe.objects.create(key="a", live=False)
        with pytest.raises(IntegrityError), transaction.atomic():
            Probe.objects.create(key="a")
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Probe)


def _claim_statements(now):
    from django.test.utils import CaptureQueriesContext

    from djtasks.worker.claim import claim

    with CaptureQueriesContext(connection) as queries:
        claimed = claim("default", "w", ["default"], 10, now)
    return claimed, [query["sql"] for query in queries.captured_queries]


@pytest.mark.django_db
def test_a_concurrency_keys_named_lock_is_released_when_its_claim_ends():
    from tests.tasks import per_customer

    per_customer.enqueue(1)
    claimed, statements = _claim_statements(timezone.now())
    assert len(claimed) == 1
    [name] = [
        re.search(r"GET_LOCK\('([^']+)'", sql).group(1) for sql in statements if "GET_LOCK" in sql
    ]
    assert any("RELEASE_ALL_LOCKS" in sql for sql in statements)
    with connection.cursor() as cursor:
        cursor.execute("SELECT IS_FREE_LOCK(%s)", [name])
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_a_claim_that_takes_no_named_lock_releases_none():
    from tests.tasks import rate_limited

    rate_limited.enqueue()
    claimed, statements = _claim_statements(timezone.now())
    assert len(claimed) == 1
    assert not any("GET_LOCK" in sql or "RELEASE_ALL_LOCKS" in sql for sql in statements)


@pytest.mark.django_db
def test_the_system_checks_of_the_database_find_nothing_to_warn_about():
    """What migrate prints: no warning about djtasks' schema on MariaDB.

    Django would warn that the partial unique constraints are left out
    (models.W036; djtasks builds them itself) and that a unique CharField
    over 255 characters may be refused (mysql.W003; not by the servers
    Django supports).
    """
    from django.core import checks

    found = checks.run_checks(databases=["default"], include_deployment_checks=False)
    assert [message for message in found if message.level >= checks.WARNING] == []


@pytest.mark.django_db
def test_a_batch_of_outcomes_too_big_for_one_packet_is_written_in_several_updates(monkeypatch):
    from django.test.utils import CaptureQueriesContext

    from djtasks.worker.claim import claim
    from djtasks.worker.outcomes import Outcome, record
    from tests.tasks import noop

    for _ in range(3):
        noop.enqueue()
    claimed = claim("default", "w", ["default"], 10, timezone.now())
    # Each failure's traceback alone takes most of a statement's budget.
    monkeypatch.setattr(connection, "_djtasks_statement_budget", 100_000, raising=False)
    error = {"exception_class_path": "builtins.ValueError", "traceback": "x" * 40_000}
    outcomes = [
        Outcome(job.id, "FAILED", timezone.now(), error=error, attempt=1) for job in claimed
    ]
    with CaptureQueriesContext(connection) as queries:
        assert record("default", "w", outcomes) == 3
    updates = [query for query in queries.captured_queries if "JSON_TABLE" in query["sql"]]
    assert len(updates) == 3
    for job in Job.objects.all():
        assert job.status == JobStatus.FAILED
        assert job.errors == [error]
