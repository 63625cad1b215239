"""The Django admin for djtasks: jobs, schedules, workers, queues and the dashboard.

Importing this package registers the ModelAdmins (Django's admin
autodiscovery imports it). JobsAboutMixin and JobsInline are for a project's
own ModelAdmins: they list an object's jobs on its page.
"""

from django.contrib import admin

from djtasks.admin.about import JobsAboutMixin, JobsInline
from djtasks.admin.jobs import JobAdmin
from djtasks.admin.queues import QueuesAdmin
from djtasks.admin.schedules import ScheduleAdmin
from djtasks.admin.workers import WorkerAdmin
from djtasks.models import Control, Schedule, Worker

admin.site.register(Schedule, ScheduleAdmin)
admin.site.register(Worker, WorkerAdmin)
admin.site.register(Control, QueuesAdmin)

__all__ = [
    "JobAdmin",
    "JobsAboutMixin",
    "JobsInline",
    "QueuesAdmin",
    "ScheduleAdmin",
    "WorkerAdmin",
]
