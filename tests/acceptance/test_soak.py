"""Soak in CI: a few seconds of tests.reliability.soak, so the long run does not rot.

The real soak (10 minutes by default) is ``python -m tests.reliability.soak``
(docs/reliability.md). This one runs on the SQLite legs only: the PostgreSQL
legs already carry the chaos and outage runs.
"""

import pytest
from django.db import connection

from tests.acceptance.conftest import database_url
from tests.reliability import soak
from tests.reliability.runtime import write_settings

pytestmark = [pytest.mark.slow, pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]


def test_a_short_soak_samples_memory_and_leaves_no_job_stuck(tmp_path):
    report = soak.run(
        url=database_url(connection.settings_dict),
        settings_dir=write_settings(tmp_path / "settings"),
        log_dir=tmp_path,
        seconds=3,
        rate=30,
        samples=3,
        drain_timeout=30,
    )

    summary = "\n".join(report.lines())
    print(summary)
    assert report.stuck == [] and report.not_successful == [], summary
    assert report.enqueued >= 60, summary
    assert report.samples[-1].done == report.enqueued, summary
    # Memory was read from live worker processes.
    assert any(kb > 0 for sample in report.samples for kb in sample.rss_kb), summary
