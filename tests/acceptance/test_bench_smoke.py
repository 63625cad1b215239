"""The benchmark's smoke mode still runs, so bench/run.py cannot rot.

It starts real ``manage.py runworker`` processes against the test run's
database server (DATABASE_URL) or a SQLite file, and on the MariaDB legs
the MariaDB systems too; figures are not asserted (speed is not tested),
only that every step produced them.
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


def run_smoke(tmp_path, *arguments):
    """``bench/run.py --smoke`` with its files in ``tmp_path``; its report."""
    report = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--output", str(report)]
        + list(arguments),
        cwd=ROOT,
        env=dict(os.environ, BENCH_WORK_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return report


def test_bench_smoke_measures_every_figure(tmp_path):
    # Base the smoke databases on the test run's own name (see HELPERS),
    # so concurrent runs do not share them.
    report = run_smoke(tmp_path)

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


# What the MariaDB systems measure besides SMOKE_FIGURES (djtasks' RSS aside).
MARIADB_FIGURES = (
    "latency_tuned_p50",
    "latency_tuned_p99",
    "idle_tuned_statements",
    "idle_tuned_claims",
    "anatomy_round_trips",
    # The server threads the workers reported for their connections.
    "anatomy_server_cpu_us",
)


@pytest.mark.mysql
def test_bench_smoke_on_mariadb(tmp_path):
    # The test run's server, under the benchmark's own database names
    # (djtasks_bench_smoke<pid>_...), never the test_* ones of the suite.
    url = database_url({**connection.settings_dict, "NAME": "djtasks_bench"})
    report = run_smoke(
        tmp_path, "--systems", "baseline_mariadb,djtasks_mariadb", "--mariadb-url", url
    )

    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["errors"] == {}
    assert data["context"]["left_out"] == {}
    for key in ("baseline_mariadb-100", "djtasks_mariadb"):
        figures = data["results"][key]
        for figure in SMOKE_FIGURES + MARIADB_FIGURES:
            assert figures[figure]["median"] > 0, (key, figure)
        # Counted even when an idle second held no claim.
        assert "idle_default_statements" in figures
    assert data["notes"]["djtasks_mariadb"]["explain_claim"]["index"] == "djtasks_job_ready"
    text = report.read_text()
    assert "| enqueue, one by one |" in text  # the MariaDB table
    assert "Polling on MariaDB" in text


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
