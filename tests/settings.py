"""Settings for the test suite: the example project's, plus the test app.

DATABASE_URL picks the database (SQLite by default, PostgreSQL on CI).
"""

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS, TASKS

INSTALLED_APPS = [*INSTALLED_APPS, "tests"]

TASKS = {
    **TASKS,
    "default": {**TASKS["default"], "QUEUES": ["default", "emails", "other"]},
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
