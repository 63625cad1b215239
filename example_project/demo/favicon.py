"""The demo's favicon, served at /favicon.ico so no page logs a 404 for it."""

from django.http import HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

# A blue rounded square with a white tick: small enough to live in the code.
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#1f5fbf"/>'
    '<path d="M4 8.5l2.5 2.5L12 5" fill="none" stroke="#fff" stroke-width="2"/>'
    "</svg>"
)


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):
    return HttpResponse(SVG, content_type="image/svg+xml")
