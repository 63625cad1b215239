"""Settings for the test suite: the example project's, plus the test app.

DATABASE_URL picks the database (SQLite by default, PostgreSQL on CI).
"""

from example_project.settings import *  # noqa: F403
from example_project.settings import BASE_DIR, DATABASES, INSTALLED_APPS, TASKS, env

INSTALLED_APPS = [*INSTALLED_APPS, "tests"]

TASKS = {
    **TASKS,
    "default": {**TASKS["default"], "QUEUES": ["default", "emails", "other"]},
    # A second alias on the same database: its jobs are its own (the claim,
    # run_jobs() and `runworker --backend second` serve only them).
    "second": {"BACKEND": "djtasks.backend.DatabaseBackend", "QUEUES": ["default", "emails"]},
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not pytest-django's in-memory default, so that the worker and
    # beat processes the acceptance tests start see the same database. Set
    # DJTASKS_TEST_SQLITE to give concurrent test runs their own file.
    DATABASES["default"]["TEST"] = {
        "NAME": env("DJTASKS_TEST_SQLITE", default=str(BASE_DIR / "var" / "test.sqlite3"))
    }
