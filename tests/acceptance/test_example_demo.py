"""The README's first command: scripts/demo serves the site and jobs flow.

Runs the real script (gunicorn, runworker, runbeat when present) on a
fresh SQLite file and a free port, enqueues jobs through the page's forms
as a browser would (CSRF cookie and token), watches one reach SUCCESSFUL
and one fail for good through the JSON endpoint, then stops the script with
SIGTERM and reads the worker's output: one line per attempt.
"""

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Bounds on how long to wait, not expectations of speed.
START_TIMEOUT = 60
JOB_TIMEOUT = 30
STOP_TIMEOUT = 40

pytestmark = [pytest.mark.slow, pytest.mark.sqlite]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def demo(tmp_path):
    """Start scripts/demo; yield (process, base URL, log path); stop it."""
    port = free_port()
    log_path = tmp_path / "demo.log"
    env = {
        key: value
        for key, value in os.environ.items()
        # pytest-django's settings module must not leak into the demo's manage.py.
        if key not in {"DJANGO_SETTINGS_MODULE", "DJTASKS_TEST_SQLITE"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DJTASKS_DEMO_PORT=str(port),
        # The interpreter running the tests already has djtasks and Django.
        DJTASKS_DEMO_PYTHON=sys.executable,
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(REPO / "scripts" / "demo")],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, f"http://127.0.0.1:{port}", log_path
    finally:
        if process.poll() is None:
            # Only reached when the test failed before stopping the demo: the
            # script stops its children (each in its own process group) on TERM.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        sys.stdout.write(log_path.read_text(errors="replace")[-4000:])


def page_answers(opener, url):
    try:
        with opener.open(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def test_demo_serves_the_site_runs_a_job_and_stops_cleanly(demo):
    process, base, log_path = demo
    cookies = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

    page = wait_for(lambda: page_answers(browser, base + "/"), START_TIMEOUT, "the demo page")
    assert "djtasks demo" in page
    assert "Created the admin user" in log_path.read_text()

    assert 'name="viewport"' in page
    with browser.open(base + "/favicon.ico", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/svg+xml"

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode()

    def enqueue(name):
        with browser.open(f"{base}/enqueue/{name}/", data=form, timeout=10) as response:
            job_url = response.geturl()  # the redirect to the job's page
        return re.search(r"/jobs/([0-9a-f-]{36})/$", job_url).group(1)

    def finished_job(job_id):
        with browser.open(f"{base}/jobs/{job_id}.json", timeout=5) as response:
            job = json.load(response)
        return job if job["finished"] else None

    added, failing = enqueue("add"), enqueue("fail")
    job = wait_for(lambda: finished_job(added), JOB_TIMEOUT, f"job {added} to finish")
    assert job["task"] == "example_project.demo.tasks.add"
    assert job["status"] == "SUCCESSFUL"
    assert isinstance(job["return_value"], int)
    # The button that fails for good: two attempts, then FAILED, each with its message.
    job = wait_for(lambda: finished_job(failing), JOB_TIMEOUT, f"job {failing} to finish")
    assert job["status"] == "FAILED"
    assert [failure["attempt"] for failure in job["failures"]] == [1, 2]
    assert all("fails on purpose" in failure["message"] for failure in job["failures"])

    # The demo runs a beat beside the worker; a quick job can finish before
    # the beat has said anything, so wait for its first line.
    wait_for(lambda: "[beat]" in log_path.read_text(), START_TIMEOUT, "the beat to start")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT) == 0
    log = log_path.read_text()
    assert "Demo stopped." in log
    # The demo runs the site, a worker and a beat.
    assert "[worker]" in log and "[beat]" in log, log
    # The worker prints one line per attempt, its outcome: no start lines, no
    # repeats by the standard framework's logger, no traceback of a retry.
    worker_lines = [line for line in log.splitlines() if line.startswith("[worker]")]
    [added_line] = [line for line in worker_lines if added in line]
    assert "attempt=1/1 outcome=SUCCESSFUL" in added_line
    first, last = [line for line in worker_lines if failing in line]
    assert "attempt=1/2 outcome=READY" in first
    assert "attempt=2/2 outcome=FAILED" in last
    assert "Traceback" not in log and "Task id=" not in log, log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=2)
