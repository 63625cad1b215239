"""djtasks' URLs for a project's urls.py: ``path("djtasks/", include("djtasks.urls"))``.

Serves ``metrics`` (Prometheus' text format) under that prefix.
"""

from django.urls import path

from djtasks.views import metrics_view

app_name = "djtasks"

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
]
