"""The job list's queue and task filters, without a DISTINCT over every job."""

from django.contrib import admin

from djtasks.admin import schedules, workers
from djtasks.admin.display import breakable_path


class QueueFilter(admin.SimpleListFilter):
    """Queues from the settings and the workers, not a DISTINCT over all jobs."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue, queue) for queue in workers.known_queues()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(queue_name=self.value())
        return queryset


class TaskFilter(admin.SimpleListFilter):
    """Tasks from the registry, not a DISTINCT over all jobs."""

    title = "task"
    parameter_name = "task"

    def lookups(self, request, model_admin):
        # Long paths wrap at their dots and underscores, not mid-word.
        return [(path, breakable_path(path)) for path in schedules.task_choices()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(task_path=self.value())
        return queryset
