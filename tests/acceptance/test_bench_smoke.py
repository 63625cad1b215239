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

import pytest

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
