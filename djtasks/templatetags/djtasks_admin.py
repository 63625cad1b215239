"""Template filters for djtasks' pages: ``{% load djtasks_admin %}``."""

from django import template

from djtasks.admin.display import format_time

register = template.Library()


@register.filter
def djtasks_time(value):
    """A moment as every djtasks page shows it: ``2026-12-02 09:10:06 UTC``."""
    return format_time(value)
