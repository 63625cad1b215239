"""The djtasks driver for bench/common.py (runs in the djtasks venv)."""

import json
import os
import sys

import django

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_djtasks.settings")
django.setup()

from bench_djtasks.tasks import noop, probe, sleep  # noqa: E402
from common import Adapter, emit, main  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

import djtasks  # noqa: E402
from djtasks.models import Job, Worker  # noqa: E402

# The columns of a finished job that history rows set; every other column
# takes its model default, so the rows stay valid as the model grows.
HISTORY_COLUMNS = {
    "id": "gen_random_uuid()",
    "task_path": "'bench_djtasks.tasks.noop'",
    "status": "'SUCCESSFUL'",
    "enqueued_at": "now() - interval '2 days' + g * interval '100 ms'",
    "available_at": "now() - interval '2 days' + g * interval '100 ms'",
    "started_at": "now() - interval '2 days' + g * interval '100 ms'",
    "last_attempted_at": "now() - interval '2 days' + g * interval '100 ms'",
    "finished_at": "now() - interval '2 days' + g * interval '100 ms' + interval '1 ms'",
    "attempts": "1",
    "worker_ids": "'[\"an-old-worker\"]'::jsonb",
    "return_value": "'null'::jsonb",
}


class DjtasksAdapter(Adapter):
    def setup(self):
        call_command("migrate", verbosity=0)

    def reset(self):
        tables = f"{Job._meta.db_table}, {Worker._meta.db_table}"
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {tables}")
            elif connection.vendor == "mysql":
                # A DELETE of 100,000 drained rows takes seconds there; the
                # job table's foreign key to the worker table would refuse
                # the TRUNCATE.
                cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
                for table in (Job._meta.db_table, Worker._meta.db_table):
                    cursor.execute(f"TRUNCATE {table}")
                cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
            else:
                cursor.execute(f"DELETE FROM {Job._meta.db_table}")
                cursor.execute(f"DELETE FROM {Worker._meta.db_table}")

    def enqueue_noop(self):
        noop.enqueue()

    def bulk_noop(self, count):
        djtasks.bulk_enqueue(noop, [((), {})] * count)

    def fill_atomic(self, count):
        with transaction.atomic():
            self.fill(count)

    def bulk_sleep(self, millis):
        djtasks.bulk_enqueue(sleep, [((ms,), {}) for ms in millis])

    def enqueue_probe(self, path, index):
        probe.enqueue(path, index)

    def failed(self):
        return Job.objects.filter(status="FAILED").count()

    def remaining(self):
        # Two counts in one statement (one snapshot), which PostgreSQL
        # reads from indexes that leave finished rows out (READY rows from
        # djtasks_job_status, RUNNING ones from djtasks_job_running), as
        # the baseline counts from its index of unfinished rows. Written as
        # "status IN ('READY', 'RUNNING')" the count read the whole table,
        # finished rows included, with parallel workers: some 200 ms of CPU
        # per count over a 1,100,000-row history, every few hundred ms of
        # the drain it timed, on the cores the drain ran on.
        table = Job._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT (SELECT COUNT(*) FROM {table} WHERE status = 'READY')"
                f" + (SELECT COUNT(*) FROM {table} WHERE status = 'RUNNING')"
            )
            return cursor.fetchone()[0]

    def extra(self, command, args):
        if command == "history":
            emit({"rows": add_history(int(args[0]))})
        elif command == "vacuum":
            # Between two drains over the history: what autovacuum does in
            # production after some 200,000 updated rows (here it may be off).
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM ANALYZE {Job._meta.db_table}")
            emit({"ok": True})
        elif command == "explain-claim":
            emit(explain_claim(int(args[0])))
        else:
            super().extra(command, args)


def add_history(count):
    """Insert ``count`` finished jobs in one statement, then VACUUM ANALYZE."""
    columns, values, params = [], [], []
    for field in Job._meta.concrete_fields:
        columns.append(field.column)
        if field.attname in HISTORY_COLUMNS:
            values.append(HISTORY_COLUMNS[field.attname])
        elif field.null:
            values.append("NULL")
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    sql = (
        f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(1, %s) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count])
        # What autovacuum would have done by the time a table holds this
        # much history; without it the planner works from stale statistics.
        cursor.execute(f"VACUUM ANALYZE {Job._meta.db_table}")
    return Job.objects.count()


def explain_claim(limit):
    """MariaDB: the plan of the claim's locking SELECT, and one run of it (ANALYZE).

    The statement and parameters of a worker's claim of ``limit`` jobs
    (djtasks.worker.claim_mysql), run in a transaction that is rolled back.
    """
    from django.db import transaction
    from django.utils import timezone

    from djtasks.worker import claim_mysql
    from djtasks.worker.claim import COLUMNS

    sql = claim_mysql._CANDIDATES.format(columns=", ".join(COLUMNS), skip_test="")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = ["default", "default", now, limit]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        names = [column[0] for column in cursor.description]
        plan = [dict(zip(names, row)) for row in cursor.fetchall()]
        cursor.execute("ANALYZE FORMAT=JSON " + sql, params)
        analyzed = json.loads(cursor.fetchone()[0])
        transaction.set_rollback(True)
    table = _find_table(analyzed)
    return {
        "plan": plan,
        "milliseconds": analyzed["query_block"].get("r_total_time_ms"),
        "rows_read": table.get("r_rows"),
        "index": table.get("key"),
        "access": table.get("access_type"),
        "sorted": "filesort" in json.dumps(analyzed),
    }


def _find_table(node):
    """The first "table" object of ANALYZE FORMAT=JSON's tree."""
    if isinstance(node, dict):
        if "table" in node and isinstance(node["table"], dict):
            return node["table"]
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return {}
    for child in children:
        found = _find_table(child)
        if found:
            return found
    return {}


if __name__ == "__main__":
    main(DjtasksAdapter())
