"""Time the djtasks admin pages against a large job table (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1/djtasks_measure \\
        python -m example_project.measure_admin --seed 1000000

--seed N first inserts N finished jobs with one INSERT ... SELECT
generate_series (1% failed, 0.1% ready, two queues, four tasks) and
ANALYZEs the table. Each page is then requested through Django's test
client as a superuser: one warm-up, then the median of --runs requests, with
the number of SQL queries and the slowest one.
"""

import argparse
import os
import statistics
import time

SEED_SQL = """
INSERT INTO djtasks_job (id, task_path, backend, queue_name, priority, args, kwargs, status,
  enqueued_at, available_at, started_at, last_attempted_at, finished_at, attempts,
  max_attempts, retry_policy, worker_ids, errors, return_value)
SELECT gen_random_uuid(),
  (ARRAY['example_project.demo.tasks.add', 'example_project.demo.tasks.slow_count',
         'example_project.demo.tasks.flaky', 'example_project.demo.tasks.build_report'])[1 + i % 4],
  'default', (ARRAY['default', 'emails'])[1 + (i % 7 = 0)::int], 0, '[1, 2]', '{}',
  CASE WHEN i % 100 = 0 THEN 'FAILED' WHEN i % 1000 = 1 THEN 'READY' ELSE 'SUCCESSFUL' END,
  now() - make_interval(secs => i * 2.0), now() - make_interval(secs => i * 2.0),
  now() - make_interval(secs => i * 2.0 - 0.1), now() - make_interval(secs => i * 2.0 - 0.1),
  CASE WHEN i % 1000 = 1 THEN NULL ELSE now() - make_interval(secs => i * 2.0 - 0.3) END,
  1, 1, '{}', '["w1"]',
  CASE WHEN i % 100 = 0
       THEN '[{"exception_class_path": "builtins.ValueError", "traceback": "..."}]'::jsonb
       ELSE '[]'::jsonb END,
  CASE WHEN i % 100 = 0 THEN NULL ELSE '3'::jsonb END
FROM generate_series(1, %s) AS i
"""

PAGES = {
    "jobs list": ("/admin/djtasks/job/", {}),
    "jobs list, status=SUCCESSFUL": ("/admin/djtasks/job/", {"status__exact": "SUCCESSFUL"}),
    "jobs list, status=FAILED": ("/admin/djtasks/job/", {"status__exact": "FAILED"}),
    "jobs list, queue=emails": ("/admin/djtasks/job/", {"queue": "emails"}),
    "jobs list, page 100": ("/admin/djtasks/job/", {"p": "100"}),
    "jobs list, search by id": ("/admin/djtasks/job/", {"q": None}),
    "jobs list, search by short id": ("/admin/djtasks/job/", {"q": 8}),
    "jobs list, search 'slow_count'": ("/admin/djtasks/job/", {"q": "slow_count"}),
    "job page": (None, {}),
    "dashboard": ("/admin/djtasks/job/dashboard/", {}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="insert this many jobs first")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--stock-paging",
        action="store_true",
        help="for comparison: Django's exact COUNTs (Paginator, full result count)",
    )
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    if options.seed:
        seed(options.seed)
    if options.stock_paging:
        from django.core.paginator import Paginator

        from djtasks.admin import JobAdmin

        JobAdmin.paginator = Paginator
        JobAdmin.show_full_result_count = True
    measure(options.runs)


def seed(count):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, [count])
        cursor.execute("ANALYZE djtasks_job")


def measure(runs):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from djtasks.models import Job

    user, _ = get_user_model().objects.get_or_create(
        username="measure-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    some_job = Job.objects.order_by().first()
    print(f"{Job.objects.count():,} jobs; median of {runs} requests after a warm-up")
    for name, (url, params) in PAGES.items():
        url = url or f"/admin/djtasks/job/{some_job.pk}/change/"
        params = {k: _param(v, some_job) for k, v in params.items()}
        client.get(url, params)
        timings = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, params)
                timings.append(time.perf_counter() - started)
            assert response.status_code == 200, (name, response.status_code)
        slowest = max(float(q["time"]) for q in queries.captured_queries)
        print(
            f"{name:32} {statistics.median(timings) * 1000:7.1f} ms  "
            f"{len(queries)} queries, slowest {slowest * 1000:.1f} ms"
        )


def _param(value, job):
    """None: the job's id; a number: that many leading characters of it."""
    if value is None:
        return str(job.pk)
    if isinstance(value, int):
        return str(job.pk)[:value]
    return value


if __name__ == "__main__":
    main()
