from django.contrib import admin
from django.urls import path

from example_project.demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("enqueue/<str:name>/", views.enqueue_demo, name="enqueue-demo"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:job_id>.json", views.job_json, name="job-json"),
    path("admin/", admin.site.urls),
]
