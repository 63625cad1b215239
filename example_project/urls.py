from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

from example_project.demo import views
from example_project.demo.favicon import favicon

urlpatterns = [
    path("", views.index, name="index"),
    path("enqueue/<str:name>/", views.enqueue_demo, name="enqueue-demo"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:job_id>.json", views.job_json, name="job-json"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    # The Prometheus endpoint, /djtasks/metrics (staff or DJTASKS["METRICS_TOKEN"]).
    path("djtasks/", include("djtasks.urls")),
]

if settings.DEBUG:
    # The demo serves its static files itself (admin CSS, djtasks' badges)
    # when run under gunicorn with DEBUG on; production uses collectstatic.
    urlpatterns += staticfiles_urlpatterns()
