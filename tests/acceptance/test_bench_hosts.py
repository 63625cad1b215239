"""bench/hosts.py still runs (its smoke mode), so the several-hosts benchmark cannot rot.

It needs root and ``ip netns`` (CI runs as root on Linux) and PostgreSQL's
server binaries: it makes its own PostgreSQL cluster and network
namespaces, named after its pid, so concurrent test legs never share them.
Speed is not asserted; the connection counts are, because they are the
documented P × (T + 2), and so is the clean-up.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ROOT / "bench" / "hosts.py"

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]


def environment(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return {**environ, "BENCH_WORK_DIR": str(tmp_path)}


def why_not_here(tmp_path):
    """hosts.py's own verdict: None, or why it cannot run on this machine."""
    done = subprocess.run(
        [sys.executable, str(HOSTS), "--check"],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return None if done.returncode == 0 else done.stderr.strip() or done.stdout.strip()


def test_hosts_smoke_measures_every_host_and_cleans_up(tmp_path):
    reason = why_not_here(tmp_path)
    if reason:
        pytest.skip(reason)
    report = tmp_path / "hosts.md"
    process = subprocess.Popen(
        [sys.executable, str(HOSTS), "--smoke", "--output", str(report)],
        cwd=ROOT,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-4000:]

    data = json.loads((tmp_path / "hosts-smoke.json").read_text())
    measured = {(result["setup"], result["hosts"]) for result in data["series"]}
    assert measured == {("djtasks-p1-t1", 2), ("baseline", 2)}
    for result in data["series"] + data["variants"]:
        assert result["drain"]["rate"] > 0, result["setup"]
        assert result["drain"]["cpu_us_per_job"]["pg"] > 0, result["setup"]
        assert result["latency"]["p50"] > 0, result["setup"]
        # Every host holds the connections docs/deployment.md says it does.
        per_host = result["connections"]["per_host"]
        assert per_host == [result["expected_per_host"]] * 2, (result["setup"], per_host)
    listen_off = [r for r in data["variants"] if r["setup"].endswith("-nolisten")]
    assert listen_off and listen_off[0]["connections"]["listeners"] == 0
    text = report.read_text()
    assert "bench:hosts:start" in text and "| 2 | djtasks |" in text

    # Nothing of that run is left: no namespace, no link, no cluster.
    pid = process.pid
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"djtbench{pid}_" not in namespaces
    assert f"djb{pid}h" not in links
    assert not list((ROOT / "bench" / ".work").glob(f"hosts-pg-{pid}-*"))
