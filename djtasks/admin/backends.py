"""The TASKS aliases djtasks serves, for the admin's per-backend views.

Several aliases may keep their jobs in one database; each row (a job, a
worker) records its alias, and each alias's workers serve only its jobs.
The admin shows one alias's share when asked, and the choice only when
there is more than one.
"""

from django.contrib import admin

from djtasks.compat import task_backends


def djtasks_aliases() -> list[str]:
    """The TASKS aliases whose backend is djtasks' DatabaseBackend, in settings order."""
    return [alias for alias in task_backends.settings if hasattr(task_backends[alias], "database")]


class BackendFilter(admin.SimpleListFilter):
    """Rows of one TASKS alias; offered only when djtasks serves several."""

    title = "backend"
    parameter_name = "backend"

    def lookups(self, request, model_admin):
        aliases = djtasks_aliases()
        # No choices hides the filter: with one alias it would say nothing.
        return [(alias, alias) for alias in aliases] if len(aliases) > 1 else []

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(backend=self.value())
        return queryset
