"""The TASKS aliases djtasks serves, for the admin's per-backend views.

Several aliases may keep their jobs in one database; each row (a job, a
worker) records its alias, and each alias's workers serve only its jobs.
The admin shows one alias's share when asked, and the choice only when
there is more than one.

The admin reads djtasks' tables in one database, the one Django's routers
pick for them ("default" without a router). An alias whose OPTIONS
DATABASE names another database has no rows there: it is left out of the
choice (it would always show nothing) and named on the dashboard instead.
"""

from django.contrib import admin

from djtasks.compat import task_backends
from djtasks.models import Job


def _databases() -> dict[str, str]:
    """{alias: its jobs' database} of the djtasks backends, in settings order."""
    found = {}
    for alias in task_backends.settings:
        database = getattr(task_backends[alias], "database", None)
        if database is not None:
            found[alias] = database
    return found


def djtasks_aliases() -> list[str]:
    """The djtasks backends whose jobs are in the admin's database, in settings order."""
    shown = Job.objects.db
    return [alias for alias, database in _databases().items() if database == shown]


def aliases_elsewhere() -> list[tuple[str, str]]:
    """(alias, database) of the djtasks backends whose jobs the admin cannot show."""
    shown = Job.objects.db
    return [(alias, database) for alias, database in _databases().items() if database != shown]


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
