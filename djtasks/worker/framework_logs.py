"""The standard per-job log lines of Django's tasks framework, unbuilt when nothing prints them.

Django's tasks framework connects a receiver to ``task_started`` and one to
``task_finished`` that log a line each on the ``django.tasks`` logger: at
INFO, or at ERROR for a failure (the django-tasks backport does the same on
``django_tasks``). Django's default LOGGING enables INFO on the ``django``
logger, but with DEBUG off its only handlers drop INFO records
(``console`` wants DEBUG, ``mail_admins`` wants ERROR). So a worker built
two log records per job that nobody saw: a third of its CPU for a no-op
job (60 against 41 µs, docs/benchmarks.md, sixth round).

While a worker process runs, for each framework whose logger would emit no
INFO record, the started receiver is disconnected and the finished one is
called for failures only: their ERROR line (and any mail it sends) is
kept, and the INFO lines, which would have gone nowhere, are not built.
Judged once, when the worker starts, from the configuration alone, and
cautiously: a handler counts as dropping INFO records only if its level is
above INFO, or if DEBUG is off and it carries Django's ``RequireDebugTrue``
filter (and handles records the standard way); a filter on the logger
itself, any other handler, or a ``Logger.callHandlers`` patched by a tool
that reads records without a handler (Sentry's logging integration does)
leaves the receivers as they are. The failures-only receiver is connected
after the receivers already there, so it runs after them, not first; it
is swapped back when the worker ends.
"""

import logging
from contextlib import contextmanager

from django.conf import settings
from django.utils.log import RequireDebugTrue

from djtasks.compat import FRAMEWORKS


@contextmanager
def info_lines_skipped_if_unseen():
    """While in the block: no INFO line per job is built if none would be emitted."""
    # Django's own framework, and the django-tasks backport, whichever are installed.
    modules = [framework["signals"] for framework in FRAMEWORKS]
    swapped = [_swap(module) for module in modules if info_goes_nowhere(module.logger)]
    try:
        yield
    finally:
        for restore in swapped:
            restore()


def info_goes_nowhere(logger: logging.Logger) -> bool:
    """Whether ``logger`` builds INFO records that no handler would emit."""
    if not logger.isEnabledFor(logging.INFO) or logger.filters or _call_handlers_patched():
        # Disabled: logger.info() returns at once, nothing to save.
        # Filtered: a filter may count or change records; leave it be.
        return False
    current = logger
    while current is not None:
        if not all(_drops_info(handler) for handler in current.handlers):
            return False
        if not current.propagate:
            break
        current = current.parent
    # Without any handler on the way, logging's last resort takes the
    # record, and it emits WARNING and above only.
    return True


def _drops_info(handler: logging.Handler) -> bool:
    if handler.level > logging.INFO:
        return True
    # RequireDebugTrue passes a record only while DEBUG is on, whatever the
    # record says; a handler that overrides handle() may skip its filters.
    return (
        not settings.DEBUG
        and type(handler).handle is logging.Handler.handle
        and any(isinstance(each, RequireDebugTrue) for each in handler.filters)
    )


def _call_handlers_patched() -> bool:
    # Records reach handlers through Logger.callHandlers; a tool that
    # replaces it sees every record, whatever the handlers say.
    return getattr(logging.Logger.callHandlers, "__module__", None) != "logging"


def _swap(module):
    """Disconnect ``module``'s INFO logging; return the function that puts it back."""
    started, finished = module.log_task_started, module.log_task_finished

    def log_failures(sender, task_result, **kwargs):
        # Called inside the executor's except block, as Django's receiver
        # expects: it reads the exception from sys.exc_info().
        if task_result.status == "FAILED":
            finished(sender, task_result=task_result, **kwargs)

    had_started = module.task_started.disconnect(started)
    had_finished = module.task_finished.disconnect(finished)
    if had_finished:
        module.task_finished.connect(log_failures, weak=False)

    def restore():
        if had_finished:
            module.task_finished.disconnect(log_failures)
            module.task_finished.connect(finished)
        if had_started:
            module.task_started.connect(started)

    return restore
