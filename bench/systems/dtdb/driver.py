"""The django-tasks-db driver for bench/common.py (runs in its own venv)."""

import os
import sys

import django

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_dtdb.settings")
django.setup()

from bench_dtdb.tasks import noop, probe  # noqa: E402
from common import Adapter, main  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402


class DtdbAdapter(Adapter):
    # django-tasks-db has no bulk enqueue (Django's task API has none).

    def setup(self):
        call_command("migrate", verbosity=0)

    def reset(self):
        DBTaskResult.objects.all().delete()

    def enqueue_noop(self):
        noop.enqueue()

    def enqueue_probe(self, path, index):
        probe.enqueue(path, index)

    def failed(self):
        return DBTaskResult.objects.filter(status="FAILED").count()

    def remaining(self):
        return DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).count()


if __name__ == "__main__":
    main(DtdbAdapter())
