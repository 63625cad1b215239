"""Fixtures shared by the whole suite.

Jobs run through the real code path: ``claim()`` -> ``Executor.run()`` ->
``record()`` in the test's own thread (``run_jobs``), or a whole
``WorkerProcess(burst=True)`` (``burst_worker``, which uses threads and so
needs ``transaction=True`` tests to see the test's rows).

Marks: ``postgresql`` / ``mysql`` / ``sqlite`` tests run only on that database and are
skipped, with the reason, on the other one.
"""

import signal
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from djtasks.compat import PRIMARY, signals, task_backends
from djtasks.worker.claim import claim
from djtasks.worker.executor import Executor
from djtasks.worker.outcomes import record

WORKER_ID = "test-worker"


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite: needs SQLite (the default DATABASE_URL)")


def pytest_runtest_setup(item):
    vendor = connection.vendor
    if item.get_closest_marker("postgresql") and vendor != "postgresql":
        pytest.skip("PostgreSQL-only: run with DATABASE_URL=postgres://...")
    if item.get_closest_marker("mysql") and vendor != "mysql":
        pytest.skip("MariaDB/MySQL-only: run with DATABASE_URL=mysql://...")
    if item.get_closest_marker("sqlite") and vendor != "sqlite":
        pytest.skip("SQLite-only: run without DATABASE_URL (or with a sqlite:// one)")


@pytest.fixture
def backend():
    """The djtasks backend under test (TASKS['default'])."""
    return task_backends["default"]


@pytest.fixture
def run_jobs(backend):
    """Claim, run and record due jobs in this thread; return the outcomes.

    ``now`` moves the clock the claim sees (e.g. past a retry backoff or a
    run_after) without sleeping; ``limit`` caps the claim batch.
    """
    executor = Executor(WORKER_ID, type(backend))

    def run(*, now=None, queues=None, limit=100, worker_id=WORKER_ID):
        executor.worker_id = worker_id
        jobs = claim(
            backend.alias,
            worker_id,
            queues or sorted(backend.queues),
            limit,
            now or timezone.now(),
        )
        outcomes = [executor.run(job) for job in jobs]
        record(backend.database, worker_id, outcomes)
        return outcomes

    yield run
    executor.close()


@pytest.fixture
def later():
    """A time far enough ahead to pass any backoff used by tests/tasks.py."""
    return timezone.now() + timedelta(hours=1)


@pytest.fixture
def burst_worker():
    """Run a real WorkerProcess in burst mode until the queues are empty.

    WorkerProcess.run installs SIGTERM/SIGINT handlers when called from the
    main thread; put pytest's back afterwards.
    """
    from djtasks.worker.process import WorkerProcess

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def run(**options):
        worker = WorkerProcess(burst=True, poll_interval=0.01, **options)
        worker.run()
        return worker

    yield run
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def signal_log():
    """Record every standard signal: name, sender, result id, status, exc_info, times."""
    import sys

    log = []

    def receiver_for(name):
        def receive(sender, task_result, **kwargs):
            log.append(
                {
                    "signal": name,
                    "sender": sender,
                    "id": task_result.id,
                    "status": str(task_result.status),
                    "exception": sys.exc_info()[0],
                    "timestamps": {
                        name: getattr(task_result, name)
                        for name in ("enqueued_at", "started_at", "last_attempted_at")
                    },
                }
            )

        return receive

    receivers = {
        name: receiver_for(name) for name in ("task_enqueued", "task_started", "task_finished")
    }
    for name, receive in receivers.items():
        getattr(signals, name).connect(receive, weak=False)
    yield log
    for name, receive in receivers.items():
        getattr(signals, name).disconnect(receive)


@pytest.fixture
def framework():
    """The standard framework in use: django.tasks or the backport."""
    return PRIMARY


def in_thread(function, *args):
    """Run ``function`` in another thread (its own DB connection); return its result."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the other thread did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def other_thread():
    """Call a function in another thread, with its own database connection."""
    return in_thread
