"""tests.settings with a second PostgreSQL database and a TASKS backend on each.

Used by the processes tests/acceptance/test_two_databases.py starts: the
"default" database comes from DATABASE_URL as everywhere, "jobs_b" from
DJTASKS_JOBS_B_URL (a database the test creates and drops). The backend
"default" keeps its jobs, workers and schedules in "default"; "bulk" keeps
its own in "jobs_b". Both serve a queue named "default", so what keeps them
apart in the test is the database, not the queue names.
"""

from datetime import UTC, datetime

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, TASKS, env

DATABASES = {**DATABASES, "jobs_b": env.db("DJTASKS_JOBS_B_URL")}

TASKS = {
    "default": TASKS["default"],
    "bulk": {
        "BACKEND": "djtasks.backend.DatabaseBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {"DATABASE": "jobs_b"},
    },
}

# A one-off long past: a beat enqueues it (misfire policy "latest") on its
# first tick, then disables it. Each belongs to the database of its task's
# backend, and only that database's beat may take it up.
ONE_OFF = datetime(2020, 1, 1, tzinfo=UTC)

DJTASKS = {
    "POLL_INTERVAL": 0.2,
    "SCHEDULES": {
        "bulk-once": {
            "task": "tests.two_databases_tasks.bulk_report",
            "run_at": ONE_OFF,
            "args": ["from the beat"],
        },
        "default-once": {"task": "tests.tasks.noop", "run_at": ONE_OFF},
    },
}
