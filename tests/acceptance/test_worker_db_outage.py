"""The database goes away under load and comes back: workers and beat carry on.

Uses a throwaway PostgreSQL server that the test starts itself (initdb and
pg_ctl on a free port, in a temporary directory), never the shared one:
tests.reliability.db_outage with a small load. Its database is its own, so
the test runs on the PostgreSQL legs only (once per Django version).
The longer run, which prints the recovery times, is
``python -m tests.reliability.db_outage`` (docs/reliability.md).
"""

import os

import pytest

from tests.reliability import db_outage, pgserver

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]


@pytest.fixture
def throwaway_postgres():
    if not pgserver.available():
        why = (
            f"needs PostgreSQL server binaries (initdb, pg_ctl) in {pgserver.PG_BIN}; "
            "set DJTASKS_PG_BIN"
        )
        # On CI the server is installed: a missing binary is a broken run, not a skip.
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    with pgserver.throwaway_server() as server:
        yield server


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "crashed"])
def test_workers_and_beat_survive_a_database_restart(throwaway_postgres, tmp_path, crash):
    # Crashed: the claims that did not wait for the disk (SYNCHRONOUS_CLAIMS
    # off, the default) may be lost; their jobs must run again, not vanish.
    report = db_outage.run(
        throwaway_postgres, tmp_path, jobs=300, down=2.0, runworkers=1, crash=crash
    )

    summary = "\n".join(report.lines())
    print(summary)
    assert report.problems == [], summary
    # Recovered: jobs finished and the beat enqueued after the restart.
    assert report.worker_recovery > 0 and report.beat_recovery > 0
    # At least once: every job ran; one may have run again if the outage cut
    # its outcome's write short and its attempt was retried.
    assert report.runs_of_jobs >= 300
    logs = "".join(path.read_text() for path in tmp_path.glob("runworker-*.log"))
    assert "database error" in logs
    assert "database reachable again" in logs
    beat_log = (tmp_path / "runbeat.log").read_text()
    assert "tick failed" in beat_log
