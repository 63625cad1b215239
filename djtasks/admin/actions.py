"""The job operations as admin actions (on selected rows) and buttons (on one job).

Each one calls djtasks.control.operations, whose guarded UPDATEs leave alone
a job that a worker claimed or finished since the page was loaded.
"""

from django.contrib import admin, messages
from django.utils.translation import ngettext

from djtasks.control import operations


def _operation_action(name, function, description, done_message):
    """An admin action ``name`` that runs ``function`` on the selected jobs."""

    def action(modeladmin, request, queryset):
        count = function(queryset)
        modeladmin.message_user(request, done_message(count), messages.SUCCESS)

    action.__name__ = name
    return admin.action(description=description, permissions=["change"])(action)


def retried(count):
    return ngettext("%d job put back to ready.", "%d jobs put back to ready.", count) % count


def ran_now(count):
    return ngettext("%d ready job will run now.", "%d ready jobs will run now.", count) % count


def deleted(count):
    return ngettext("%d job deleted.", "%d jobs deleted.", count) % count


def cancelled(counts):
    """What a Cancel did, as sentences: ready jobs stop now, running ones soon."""
    cancelled, requested = counts
    parts = []
    if cancelled:
        parts.append(
            ngettext("%d job was cancelled.", "%d jobs were cancelled.", cancelled) % cancelled
        )
    if requested:
        parts.append(
            ngettext(
                "%d running job was asked to stop: its worker stops it at its next check "
                "and marks it cancelled.",
                "%d running jobs were asked to stop: their workers stop them at their next "
                "check and mark them cancelled.",
                requested,
            )
            % requested
        )
    return " ".join(parts) or "No job was cancelled: none was ready, waiting or running."


retry_jobs = _operation_action("retry_jobs", operations.retry, "Retry (fresh attempts)", retried)
cancel_jobs = _operation_action("cancel_jobs", operations.cancel, "Cancel", cancelled)
run_jobs_now = _operation_action("run_jobs_now", operations.run_now, "Run now", ran_now)

OPERATIONS = {
    "retry": (operations.retry, retried),
    "cancel": (operations.cancel, cancelled),
    "run-now": (operations.run_now, ran_now),
}
