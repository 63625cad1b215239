"""The standard per-job INFO lines are not built while nothing would emit them.

Django's default LOGGING with DEBUG off drops the django.tasks INFO lines
(djtasks.worker.framework_logs); a worker then does not build them, and
still logs a failure at ERROR. The handlers below stand for that
configuration and others.
"""

import logging
import signal

import pytest
from django.utils.log import RequireDebugTrue

from djtasks.compat import signals
from djtasks.models import Job, JobStatus
from djtasks.worker import framework_logs
from djtasks.worker.process import WorkerProcess
from tests import tasks
from tests.tasks import connected

pytestmark = pytest.mark.django_db(transaction=True)

# django.tasks on Django 6, django_tasks with the backport on Django 5.2.
LOGGER = signals.logger


class Kept(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self, level):
        super().__init__(level)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def task_logger():
    """django.tasks, not propagating: a test gives it its own handlers.

    pytest adds its capture handler to every logger that does not
    propagate when a test starts, so each test sets the handlers it means.
    """
    saved = (LOGGER.handlers[:], LOGGER.propagate, LOGGER.level, LOGGER.filters[:])
    LOGGER.handlers[:] = []
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)
    yield LOGGER
    LOGGER.handlers[:], LOGGER.propagate, _, LOGGER.filters[:] = saved
    # setLevel, not the attribute: it also clears the loggers' cached levels.
    LOGGER.setLevel(saved[2])


def debug_only_console():
    """Django's default "console" handler: INFO and up, only while DEBUG is on."""
    handler = Kept(logging.INFO)
    handler.addFilter(RequireDebugTrue())
    return handler


def run_burst():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        WorkerProcess(burst=True, poll_interval=0.01).run()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("handlers", "debug", "nowhere"),
    [
        # Django's default LOGGING: console (DEBUG only) and mail_admins (ERROR).
        (lambda: [debug_only_console(), Kept(logging.ERROR)], False, True),
        (lambda: [debug_only_console(), Kept(logging.ERROR)], True, False),
        (lambda: [Kept(logging.INFO)], False, False),
        (lambda: [Kept(logging.WARNING)], False, True),
        # No handler at all: logging's last resort emits WARNING and up only.
        (lambda: [], False, True),
    ],
)
def test_whether_info_lines_go_nowhere(task_logger, settings, handlers, debug, nowhere):
    settings.DEBUG = debug
    task_logger.handlers[:] = handlers()

    assert framework_logs.info_goes_nowhere(task_logger) is nowhere


def test_a_handler_reached_through_propagation_counts(task_logger):
    task_logger.handlers[:] = []
    task_logger.propagate = True
    parent = task_logger.parent
    saved = (parent.handlers[:], parent.propagate)
    parent.handlers[:] = [Kept(logging.INFO)]
    parent.propagate = False
    try:
        assert not framework_logs.info_goes_nowhere(task_logger)
        parent.handlers[:] = [debug_only_console()]
        assert framework_logs.info_goes_nowhere(task_logger)
    finally:
        parent.handlers[:], parent.propagate = saved


def test_a_tool_that_reads_records_without_a_handler_counts(task_logger, monkeypatch):
    # As Sentry's logging integration does: it wraps Logger.callHandlers.
    original = logging.Logger.callHandlers

    def call_handlers(self, record):
        return original(self, record)

    task_logger.handlers[:] = [Kept(logging.ERROR)]
    assert framework_logs.info_goes_nowhere(task_logger)
    monkeypatch.setattr(logging.Logger, "callHandlers", call_handlers)

    assert not framework_logs.info_goes_nowhere(task_logger)


def test_a_filter_on_the_logger_or_info_off_leaves_the_receivers(task_logger):
    task_logger.addFilter(logging.Filter(task_logger.name))
    assert not framework_logs.info_goes_nowhere(task_logger)
    task_logger.filters[:] = []
    task_logger.setLevel(logging.WARNING)
    assert not framework_logs.info_goes_nowhere(task_logger)


def test_a_worker_builds_no_info_line_nobody_sees_and_still_logs_failures(task_logger):
    errors = Kept(logging.ERROR)
    task_logger.handlers[:] = [debug_only_console(), errors]
    ok = tasks.receivers_during_run.enqueue()
    failed = tasks.failing.enqueue("boom")

    run_burst()

    # While the job ran, Django's INFO receivers were off (the task saw it).
    assert Job.objects.get(pk=ok.id).return_value == {"started": False, "finished": False}
    # The failure's ERROR line, with its traceback, is kept.
    [record] = errors.records
    assert record.levelno == logging.ERROR
    assert str(failed.id) in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert Job.objects.get(pk=failed.id).status == JobStatus.FAILED
    # After the worker, Django's receivers are back as they were.
    assert connected(signals.task_started, signals.log_task_started)
    assert connected(signals.task_finished, signals.log_task_finished)


def test_a_worker_keeps_the_info_lines_someone_sees(task_logger):
    seen = Kept(logging.INFO)
    task_logger.handlers[:] = [seen]
    ok = tasks.receivers_during_run.enqueue()

    run_burst()

    assert Job.objects.get(pk=ok.id).return_value == {"started": True, "finished": True}
    assert [record.levelno for record in seen.records] == [logging.INFO, logging.INFO]
    assert all(str(ok.id) in record.getMessage() for record in seen.records)
