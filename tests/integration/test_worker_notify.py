"""LISTEN/NOTIFY wake-ups on PostgreSQL: the trigger and the listener."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from djtasks.worker import rescue
from djtasks.worker.claim import claim
from djtasks.worker.wakeup import Doorbell, Listener, listen_enabled
from tests import tasks

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listening():
    """A separate connection LISTENing on the djtasks channel."""
    import psycopg

    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute("LISTEN djtasks")
        yield listener


def received(listener, timeout=2.0, expect=None):
    """Payloads received within ``timeout`` s (sooner once ``expect`` arrived)."""
    return [note.payload for note in listener.notifies(timeout=timeout, stop_after=expect)]


def test_enqueue_notifies_at_commit_not_before(listening):
    with transaction.atomic():
        tasks.noop.enqueue()
        assert received(listening, timeout=0.3) == []
    [payload] = received(listening, expect=1)
    queue, epoch = payload.split(" ")
    assert queue == "default"
    assert abs(float(epoch) - time.time()) < 60


def test_bulk_enqueue_sends_one_notification_per_queue(listening):
    backend = tasks.noop.get_backend()
    backend.bulk_enqueue(
        [(tasks.noop, (), {}), (tasks.noop, (), {}), (tasks.on_other_queue, (), {})]
    )
    payloads = received(listening, expect=2)
    assert sorted(payload.split(" ")[0] for payload in payloads) == ["default", "other"]


def test_a_rolled_back_enqueue_notifies_nobody(listening):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.noop.enqueue()
        raise RuntimeError("rollback")
    assert received(listening, timeout=0.5) == []


def test_a_deferred_job_announces_when_it_is_due(listening):
    due = timezone.now() + timezone.timedelta(seconds=90)
    tasks.noop.using(run_after=due).enqueue()
    [payload] = received(listening, expect=1)
    assert float(payload.split(" ")[1]) == pytest.approx(due.timestamp(), abs=0.01)


def test_a_job_ready_again_notifies(listening):
    tasks.noop.enqueue()
    received(listening, expect=1)
    claim("default", "w-1", ["default"], 10, timezone.now())
    assert received(listening, timeout=0.3) == []  # claiming is silent

    rescue.hand_back("default", "w-1")

    assert [payload.split(" ")[0] for payload in received(listening, expect=1)] == ["default"]


def test_listener_rings_the_doorbell_for_its_queues_only():
    bell = Doorbell()
    stopping = threading.Event()
    listener = Listener("default", ["emails"], bell, stopping)
    listener.start()
    try:
        assert listener.listening.wait(10), "LISTEN did not start"
        rings = bell.rings
        tasks.noop.enqueue()  # queue "default": not ours
        tasks.send_email.enqueue("a@example.com")
        deadline = time.monotonic() + 5
        while bell.rings == rings and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bell.rings == rings + 1
    finally:
        stopping.set()
        listener.join(5)


def test_listen_can_be_switched_off():
    assert listen_enabled("default") is True
    with override_settings(DJTASKS={"LISTEN": False}):
        assert listen_enabled("default") is False


class SessionMovingPooler:
    """A connection as a transaction-mode pooler hands it out: each statement
    may run on another server session, so LISTEN and its notifications part."""

    def __init__(self, connect):
        self._listen_session = connect()
        self._read_session = connect()

    def execute(self, query, params=None):
        return self._listen_session.execute(query, params)

    def notifies(self, timeout=None, stop_after=None):
        return self._read_session.notifies(timeout=timeout, stop_after=stop_after)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._listen_session.close()
        self._read_session.close()


def test_a_pooler_that_moves_sessions_is_detected_and_workers_poll(monkeypatch, caplog):
    import djtasks.worker.wakeup

    monkeypatch.setattr(djtasks.worker.wakeup, "PING_TIMEOUT", 0.3)
    doorbell = Doorbell()
    listener = Listener("default", ["default"], doorbell, threading.Event())
    plain_connect = listener._connect
    monkeypatch.setattr(listener, "_connect", lambda: SessionMovingPooler(plain_connect))

    with caplog.at_level("WARNING", logger="djtasks"):
        listener.start()
        listener.join(timeout=10)

    assert not listener.is_alive(), "the listener gives up instead of listening in vain"
    assert listener.broken
    assert not listener.listening.is_set()
    assert "transaction-mode pooler" in caplog.text
    # Nothing rings the doorbell: idle claim threads wait out POLL_INTERVAL.
    assert doorbell.rings == 0


def test_a_direct_connection_passes_the_ping(monkeypatch):
    import djtasks.worker.wakeup

    monkeypatch.setattr(djtasks.worker.wakeup, "PING_TIMEOUT", 2.0)
    stopping = threading.Event()
    listener = Listener("default", ["default"], Doorbell(), stopping)
    listener.start()
    try:
        assert listener.listening.wait(5)
        assert not listener.broken
    finally:
        stopping.set()
        listener.join(timeout=5)
