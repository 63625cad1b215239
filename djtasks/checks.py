"""System checks for a djtasks setup."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from djtasks import conf
from djtasks.compat import PRIMARY
from djtasks.limits import queue_rate_limits


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


@checks.register(checks.Tags.compatibility)
def check_time_zone_support(app_configs=None, **kwargs):
    """Job times are aware datetimes: USE_TZ must be on."""
    if not settings.USE_TZ:
        return [
            checks.Error(
                "djtasks stores and compares job and schedule times as aware "
                "datetimes, which needs USE_TZ = True.",
                hint="Set USE_TZ = True (Django's default since 5.0).",
                id="djtasks.E003",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility)
def check_queue_rate_limits(app_configs=None, **kwargs):
    """DJTASKS["QUEUE_RATE_LIMITS"] maps queue names to rates like "100/m"."""
    try:
        queue_rate_limits()
    except (ValueError, AttributeError, TypeError) as error:
        return [
            checks.Error(
                str(error) if isinstance(error, ValueError) else "must be a dict.",
                hint='For example DJTASKS["QUEUE_RATE_LIMITS"] = {"emails": "100/m"}.',
                id="djtasks.E004",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility)
def check_worker_loss_settings(app_configs=None, **kwargs):
    """MAX_LOST_ATTEMPTS and UNKNOWN_TASK_GRACE have the types workers expect."""
    found = []
    for read, hint, check_id in (
        (conf.max_lost_attempts, 'For example DJTASKS["MAX_LOST_ATTEMPTS"] = 3.', "djtasks.E006"),
        (
            conf.unknown_task_grace,
            'For example DJTASKS["UNKNOWN_TASK_GRACE"] = timedelta(minutes=10).',
            "djtasks.E007",
        ),
    ):
        try:
            read()
        except ImproperlyConfigured as error:
            found.append(checks.Error(str(error), hint=hint, id=check_id))
    return found
