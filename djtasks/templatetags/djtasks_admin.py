"""Template filters for djtasks' pages: ``{% load djtasks_admin %}``."""

from django import template

from djtasks.admin.display import breakable_path, format_duration, short_time

register = template.Library()


@register.filter
def djtasks_time(value):
    """A moment as every djtasks page shows it: ``2026-12-02 09:10:06 UTC``."""
    return short_time(value)


@register.filter
def djtasks_duration(value):
    """A timedelta as the job pages show durations: ``2.31 s``, ``4:05``, ``1:02:03``."""
    return format_duration(value)


@register.filter
def djtasks_path(value):
    """A dotted task path that wraps at its dots, not mid-word."""
    return breakable_path(value)
