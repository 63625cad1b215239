"""System checks for a djtasks setup."""

from django.conf import settings
from django.core import checks

from .compat import PRIMARY


@checks.register(checks.Tags.compatibility)
def check_backport_installed(app_configs=None, **kwargs):
    """On Django 5.2 the backport must be an installed app."""
    if PRIMARY["package"] == "django_tasks" and "django_tasks" not in settings.INSTALLED_APPS:
        return [
            checks.Error(
                "On Django 5.2, djtasks uses the django-tasks backport, which must "
                "be in INSTALLED_APPS.",
                hint="Add 'django_tasks' to INSTALLED_APPS before 'djtasks'.",
                id="djtasks.E002",
            )
        ]
    return []
