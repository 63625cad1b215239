"""The benchmark's smoke mode still runs, so bench/run.py cannot rot.

It starts real ``manage.py runworker`` processes against the test run's
database server (DATABASE_URL) or a SQLite file; figures are not asserted
(speed is not tested), only that every step produced them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.acceptance.conftest import database_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

SMOKE_FIGURES = (
    "enqueue_one",
    "enqueue_bulk",
    "drain_1",
    "drain_2",
    "latency_p50",
    "latency_p99",
    "drain_1_rss",
)


def test_bench_smoke_measures_every_figure(tmp_path):
    report = tmp_path / "benchmarks.md"
    environment = dict(os.environ, BENCH_WORK_DIR=str(tmp_path))
    # Base the smoke databases on the test run's own name (see HELPERS),
    # so concurrent runs do not share them.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--output", str(report)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["errors"] == {}
    figures = data["results"]["djtasks"]
    for figure in SMOKE_FIGURES:
        assert figures[figure]["median"] > 0, figure
    # Every probe started after it was enqueued.
    assert figures["latency_p50"]["min"] > 0
    text = report.read_text()
    assert "| djtasks, `manage.py runworker` |" in text
    assert "djtasks against the targets of issue 6" in text


@pytest.mark.postgresql
def test_enqueue_anatomy_runs_every_way():
    # Its own database: the script migrates it and deletes every job.
    settings_dict = connection.settings_dict
    name = f"{settings_dict['NAME']}_anatomy"
    server = psycopg.connect(database_url({**settings_dict, "NAME": "postgres"}), autocommit=True)
    server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    server.execute(f'CREATE DATABASE "{name}"')
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "enqueue_anatomy.py"), "--rounds", "1"]
            + ["--calls", "5"],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
                "DATABASE_URL": database_url({**settings_dict, "NAME": name}),
                "PYTHONPATH": str(ROOT),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.close()

    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    assert len(lines) == 6, done.stdout
    assert all("/s" in line for line in lines), done.stdout
