"""Chaos in CI: a small run of tests.reliability.chaos on PostgreSQL.

300 jobs of a standard task (max_attempts 1), 15 SIGKILLs of worker
processes (at least one of a whole runworker); every job must end
SUCCESSFUL (0 lost, 0 failed, 0 stuck) and run again only after a kill.
The full run (1,000 jobs, 100 kills) is ``python -m tests.reliability.chaos``
(docs/reliability.md).
"""

import random

import pytest
from django.db import connection

from tests.acceptance.conftest import database_url
from tests.reliability import chaos
from tests.reliability.runtime import write_settings

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def test_sigkilled_workers_lose_no_job_and_rerun_only_killed_work(tmp_path):
    seed = random.randrange(1_000_000)
    report = chaos.run(
        url=database_url(connection.settings_dict),
        settings_dir=write_settings(tmp_path / "settings"),
        log_dir=tmp_path,
        jobs=300,
        kills=15,
        runworkers=2,
        processes=3,
        interval=0.2,
        seed=seed,
        settle_timeout=60,
    )

    summary = "\n".join([f"seed {seed}", *report.lines()])
    print(summary)
    assert report.problems == [], summary
    assert (report.gone, report.failed, report.stuck) == (0, 0, 0), summary
    assert report.jobs >= 300
    assert report.kills == 15 and report.whole_runworker_kills >= 1, summary
    # The kills landed on running work: some attempts were lost and redone.
    assert report.lost_attempts >= 1, summary
