"""The Prometheus endpoint: staff users, or a scraper with the METRICS_TOKEN bearer token."""

import hmac

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from djtasks.compat import task_backends
from djtasks.conf import settings

try:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from djtasks import metrics
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImproperlyConfigured(
        "djtasks' metrics endpoint needs prometheus-client: install djtasks[metrics]."
    ) from error


def allowed(request) -> bool:
    """A logged-in staff user, or the configured bearer token."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given, token)


@never_cache
@require_GET
def metrics_view(request):
    if not allowed(request):
        response = HttpResponse("Staff users or the METRICS_TOKEN only.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="djtasks"'
        return response
    # ?backend=ALIAS: the figures of that backend's database, for a
    # backend whose jobs are in another database than the default one's
    # (one scrape job per database).
    alias = request.GET.get("backend") or "default"
    if alias not in task_backends.settings or not hasattr(task_backends[alias], "database"):
        raise Http404(f"No djtasks backend {alias!r} in TASKS.")
    return HttpResponse(metrics.render(alias), content_type=CONTENT_TYPE_LATEST)
