"""The Queues page: every queue's figures and state, and the buttons that change them.

It is the admin page of djtasks.models.Control (its "view" permission shows
it); each button needs its own permission (Control's Meta.permissions):
pause_queue, limit_queue, pause_task, limit_task. A change goes through
djtasks.control.queues and is written to the admin's LogEntry history.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from djtasks import registry
from djtasks.admin.queue_rows import FAILED_SINCE, queue_rows, task_controls
from djtasks.admin.schedules import task_choices
from djtasks.control import queues
from djtasks.models import ControlKind, Job

# action: (permission codename, what it does with the POSTed form)
ACTIONS = {
    "pause-queue": ("pause_queue", lambda form, by: queues.pause_queue(form["name"], by)),
    "resume-queue": ("pause_queue", lambda form, by: queues.resume_queue(form["name"], by)),
    "pause-task": ("pause_task", lambda form, by: queues.pause_task(form["name"], by)),
    "resume-task": ("pause_task", lambda form, by: queues.resume_task(form["name"], by)),
    "limit-queue": (
        "limit_queue",
        lambda form, by: queues.limit_queue(
            form["name"],
            by,
            rate_limit=form.get("rate") or None,
            concurrency_limit=_concurrency(form.get("concurrency")),
        ),
    ),
    "limit-task": (
        "limit_task",
        lambda form, by: queues.limit_task(form["name"], form.get("rate") or None, by),
    ),
}


def _concurrency(value):
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise queues.ControlError(
            f"{value!r} is not a concurrency limit: give a whole number >= 1."
        ) from None


class QueuesAdmin(admin.ModelAdmin):
    # The rows are changed through the page's buttons only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        act = path("act/", self.admin_site.admin_view(self.act_view), name="djtasks_queues_act")
        return [act, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        database = Job.objects.db
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues",
            "opts": self.opts,
            "queues": queue_rows(database, timezone.now()),
            "tasks": [
                (control, _task_default_rate(control.name)) for control in task_controls(database)
            ],
            "task_choices": task_choices(),
            "failed_hours": int(FAILED_SINCE.total_seconds() // 3600),
            "act_url": reverse("admin:djtasks_queues_act"),
            "can": {codename: _allowed(request, codename) for codename, _ in ACTIONS.values()},
        }
        return TemplateResponse(request, "admin/djtasks/queues.html", context)

    def act_view(self, request):
        """One button of the page: POST action=..., name=... (and the limits)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        action = ACTIONS.get(request.POST.get("action", ""))
        if action is None:
            raise PermissionDenied
        codename, perform = action
        if not _allowed(request, codename):
            raise PermissionDenied
        form = request.POST
        try:
            control = perform(form, f"admin:{request.user.get_username()}")
        except queues.ControlError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            message = f"{control.kind} {control.name}: {_done(form['action'], control)}"
            self.log_change(request, control, message)
            self.message_user(request, message[0].upper() + message[1:] + ".")
        return HttpResponseRedirect(reverse("admin:djtasks_control_changelist"))


def _allowed(request, codename: str) -> bool:
    return request.user.has_perm(f"djtasks.{codename}")


def _done(action: str, control) -> str:
    if action.startswith(("pause", "resume")):
        return "paused" if control.paused else "resumed"
    parts = [f"rate limit {control.rate_limit or 'default'}"]
    if control.kind == ControlKind.QUEUE:
        parts.append(f"concurrency limit {control.concurrency_limit or 'none'}")
    return ", ".join(parts)


def _task_default_rate(path: str) -> str:
    try:
        return getattr(registry.get(path), "rate_limit", None) or ""
    except registry.UnknownTask:
        return ""
