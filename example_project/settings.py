"""Settings of the djtasks example site, read from the environment.

DATABASE_URL defaults to a SQLite file under var/, so the demo needs no
server; point it at PostgreSQL (postgres://user@host/db) for production.
"""

from importlib.util import find_spec
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="insecure-demo-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# On Django 5.2 the tasks API comes from the django-tasks backport, which is
# an app of its own; on Django 6 it is part of Django.
TASKS_FRAMEWORK_APPS = [] if find_spec("django.tasks") else ["django_tasks"]

INSTALLED_APPS = [
    # Before the admin, so djtasks' admin/index.html (which adds a link to the
    # jobs dashboard) takes precedence over the admin's own.
    "djtasks",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *TASKS_FRAMEWORK_APPS,
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

(BASE_DIR / "var").mkdir(exist_ok=True)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'demo.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the database lock at BEGIN (no "database is locked" when
    # a worker, a beat and the site write at once), wait up to 20 s for it,
    # and the WAL journal lets readers and one writer work side by side.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Workers and the site keep their connections open between requests.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)

TASKS = {
    "default": {
        "BACKEND": "djtasks.backend.DatabaseBackend",
        "QUEUES": ["default", "emails"],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The worker prints one line per attempt: djtasks' outcome line. Its start
# line is filtered out, and the standard framework's logger (django.tasks, or
# django_tasks with the backport) is quieted: it repeats each job twice more,
# with a traceback for every planned retry. The admin keeps every traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"outcomes_only": {"()": "example_project.demo.logs.OutcomesOnly"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["outcomes_only"],
        }
    },
    "loggers": {
        "djtasks": {"handlers": ["console"], "level": env("DJTASKS_LOG_LEVEL", default="INFO")},
        # A level, not propagate=False: tests can still lower it to read its records.
        "django.tasks": {"level": "CRITICAL"},
        "django_tasks": {"level": "CRITICAL"},
    },
}
