"""Retry, cancel or delete every job the job list's filter matches, not only one page.

The job list links to ``bulk/<operation>/?<its filters>``. That page counts
the matching jobs the operation would change and asks for confirmation,
stating the number; the POST repeats the filters and runs the operation
through djtasks.control.bulk, a batch of keys per transaction, so it never
holds a long lock. The filters are those of the list itself (the admin's
own ChangeList reads them), so the rows acted on are the rows shown.
"""

from django.contrib import messages
from django.contrib.admin.options import IS_POPUP_VAR, IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from djtasks.admin import actions
from djtasks.control import operations
from djtasks.control.bulk import apply_in_batches


class BulkOperation:
    def __init__(self, verb, eligible, function, done, permission, empty=0):
        self.verb = verb
        self.eligible = eligible
        self.function = function
        self.done = done
        self.permission = permission
        self.empty = empty


OPERATIONS = {
    "retry": BulkOperation(
        "Retry", operations.retryable_among, operations.retry, actions.retried, "change"
    ),
    "cancel": BulkOperation(
        "Cancel",
        operations.cancellable_among,
        operations.cancel,
        actions.cancelled,
        "change",
        empty=(0, 0),
    ),
    "delete": BulkOperation(
        "Delete", lambda jobs: jobs, operations.delete, actions.deleted, "delete"
    ),
}

# The changelist's own parameters that are not filters (kept out of the count's query).
NOT_FILTERS = {"o", "p", IS_POPUP_VAR, "_changelist_filters"}


def links(model_admin, request, changelist) -> list[tuple[str, str]]:
    """(url, label) of each bulk operation the user may run on the list's current filter."""
    if not _is_filtered(changelist):
        return []
    query = _filter_query(request.GET)
    return [
        (reverse("admin:djtasks_job_bulk", args=[name]) + "?" + query, f"{op.verb} all matching")
        for name, op in OPERATIONS.items()
        if _permitted(model_admin, request, op)
    ]


def bulk_view(model_admin, request, operation: str):
    """GET: the confirmation page stating N; POST: run the operation in batches."""
    op = OPERATIONS.get(operation)
    if op is None:
        raise Http404("No such bulk operation.")
    if not _permitted(model_admin, request, op):
        raise PermissionDenied
    filters = request.GET.copy()
    changelist_url = reverse("admin:djtasks_job_changelist") + "?" + _filter_query(filters)
    # The admin's ChangeList applies the list filters and the search as the list did.
    request.GET = _without(filters, NOT_FILTERS)
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        model_admin.message_user(request, "That filter is not one the job list offers.")
        return HttpResponseRedirect(reverse("admin:djtasks_job_changelist"))
    if not _is_filtered(changelist):
        model_admin.message_user(
            request, "Choose a filter or a search first: this acts on every job it matches."
        )
        return HttpResponseRedirect(changelist_url)
    jobs = op.eligible(changelist.get_queryset(request).order_by())
    if request.method == "POST":
        done = apply_in_batches(jobs, op.function, empty=op.empty)
        model_admin.message_user(request, op.done(done), messages.SUCCESS)
        return HttpResponseRedirect(changelist_url)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{op.verb} all matching jobs?",
        "opts": model_admin.opts,
        "operation": op,
        "count": jobs.count(),
        "filters": _describe(changelist),
        "changelist_url": changelist_url,
    }
    return TemplateResponse(request, "admin/djtasks/job/bulk_confirm.html", context)


def _permitted(model_admin, request, op) -> bool:
    check = getattr(model_admin, f"has_{op.permission}_permission")
    return check(request)


def _is_filtered(changelist) -> bool:
    return bool(changelist.has_active_filters or changelist.query)


def _filter_query(params) -> str:
    return _without(params, NOT_FILTERS).urlencode()


def _without(params, names):
    kept = params.copy()
    for name in names:
        kept.pop(name, None)
    return kept


def _describe(changelist) -> list[str]:
    """The active filters and search as "name: value" lines for the confirmation page."""
    lines = [
        f"{name}: {', '.join(value) if isinstance(value, list) else value}"
        for name, value in sorted(changelist.get_filters_params().items())
    ]
    if changelist.query:
        lines.append(f"search: {changelist.query}")
    return lines
