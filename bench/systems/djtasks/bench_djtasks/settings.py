"""Production-like settings: DEBUG off, persistent connections.

DATABASE_URL picks PostgreSQL, MariaDB (mysql://, Django's default READ
COMMITTED) or SQLite. BENCH_QUIET_TASK_LOG=1 raises the django.tasks logger
to WARNING, to measure what its per-task INFO lines cost.
BENCH_PREPARE_THRESHOLD=N sets psycopg's prepare_threshold (Django leaves it
None: no prepared statements), to measure what preparing saves an enqueue.
BENCH_POLL_INTERVAL sets DJTASKS["POLL_INTERVAL"] (the polling latency on
MariaDB); BENCH_COUNT_DIR counts the statements sent to MariaDB
(bench/mysql_count.py). BENCH_LISTEN=0 sets DJTASKS["LISTEN"] = False (idle
workers poll; one connection fewer per worker process), for bench/hosts.py.
BENCH_CLAIM_AHEAD=0 sets DJTASKS["CLAIM_AHEAD"] = False (a claim thread
claims only between batches), to measure what claiming ahead gains.
"""

import os
from importlib.util import find_spec

import environ
import mysql_count

env = environ.Env()

DEBUG = False
SECRET_KEY = "benchmark-only"
ALLOWED_HOSTS = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    # Django 5.2 takes the tasks framework from the django-tasks backport.
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "djtasks",
    "bench_djtasks",
]

DATABASES = {"default": env.db("DATABASE_URL")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # What djtasks recommends for SQLite (see its system check W001).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = None
    if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
        mysql_count.install()
    elif os.environ.get("BENCH_PREPARE_THRESHOLD"):
        DATABASES["default"]["OPTIONS"] = {
            "prepare_threshold": int(os.environ["BENCH_PREPARE_THRESHOLD"])
        }

TASKS = {"default": {"BACKEND": "djtasks.backend.DatabaseBackend"}}

DJTASKS = {}
if os.environ.get("BENCH_POLL_INTERVAL"):
    DJTASKS["POLL_INTERVAL"] = float(os.environ["BENCH_POLL_INTERVAL"])
if os.environ.get("BENCH_LISTEN") == "0":
    DJTASKS["LISTEN"] = False

if os.environ.get("BENCH_QUIET_TASK_LOG"):
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {"django.tasks": {"level": "WARNING"}},
    }
if os.environ.get("BENCH_CLAIM_AHEAD") == "0":
    DJTASKS["CLAIM_AHEAD"] = False
