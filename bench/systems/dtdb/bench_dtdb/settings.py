"""Production-like settings: DEBUG off, persistent connections."""

from importlib.util import find_spec

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = "benchmark-only"
ALLOWED_HOSTS = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    # Django 5.2 takes the tasks framework from the django-tasks backport.
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "django_tasks_db",
    "bench_dtdb",
]

DATABASES = {"default": env.db("DATABASE_URL")}
# Persistent connections: with Django's default (CONN_MAX_AGE=0) the worker
# reconnects for every task and drains about three times slower.
DATABASES["default"]["CONN_MAX_AGE"] = None

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
