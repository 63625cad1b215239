"""Take the screenshots of docs/admin.md: the main admin pages at 1280 and 390 px.

    python -m example_project.screenshots            # writes docs/images/*.png
    python -m example_project.screenshots --out /tmp/shots

It builds a throwaway SQLite database with jobs of every kind (run through
the real executor, so tracebacks and timelines are genuine), serves the
example site with ``manage.py runserver`` on a free port and drives
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, the
``selenium`` package) through the pages. Each PNG is captured at a device
scale of 1 and re-deflated at zlib's highest level, so they stay small.
"""

import argparse
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {"desktop": 1280, "phone": 390}
# The pages shot at a phone's width (all of them at the desktop's): a few
# small files, not every page twice.
PHONE_PAGES = ("jobs", "job-failed", "dashboard")
# Pages shown from a part further down: (page, CSS selector scrolled to the top).
SCROLL_TO = {"schedule": "#djtasks-preview"}
HEIGHT = 900
USER, PASSWORD = "admin", "screenshots"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'screenshots.sqlite3'}"
        os.environ.update(
            DATABASE_URL=url, DJANGO_SETTINGS_MODULE="example_project.settings", DEBUG="1"
        )
        pages = seed()
        with Site(url) as site:
            shoot(site, pages, options.out)


def seed() -> dict:
    """Fill the database; return {page name: path} of the pages to shoot."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # The seeded failures are expected: their log lines and tracebacks are noise here.
    logging.disable(logging.ERROR)

    from django.contrib.auth.models import User
    from django.utils import timezone

    from djtasks.control import operations
    from djtasks.models import Job, JobStatus, Schedule, Worker
    from djtasks.testing import run_jobs
    from example_project.demo import tasks

    User.objects.create_superuser(USER, "admin@example.org", PASSWORD)
    now = timezone.now()
    worker = Worker.objects.create(
        id="web1-4242", hostname="web1", pid=4242, queues=["default", "emails"], concurrency=4
    )
    for minute in range(0, 60, 2):
        for n in range(1 + minute % 5):
            status = [JobStatus.SUCCESSFUL] * 6 + [JobStatus.FAILED, JobStatus.CANCELLED]
            Job.objects.create(
                task_path="example_project.demo.tasks.add",
                args=[n, minute],
                status=status[(minute + n) % len(status)],
                attempts=1,
                worker=worker,
                enqueued_at=now - timedelta(minutes=minute, seconds=3),
                started_at=now - timedelta(minutes=minute, seconds=2),
                finished_at=now - timedelta(minutes=minute),
                return_value=n + minute,
            )
    failed = tasks.build_report.enqueue(10**9)  # no such report: it fails
    run_jobs()
    operations.retry(Job.objects.filter(pk=failed.id))
    run_jobs()
    running = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        args=[20],
        status=JobStatus.RUNNING,
        attempts=1,
        worker=worker,
        enqueued_at=now - timedelta(seconds=9),
        started_at=now - timedelta(seconds=8),
        last_attempted_at=now - timedelta(seconds=8),
        progress={"current": 12, "total": 20, "message": "step 13 of 20"},
    )
    for seconds in (30, 90):
        tasks.add.using(run_after=timedelta(seconds=seconds)).enqueue(1, 2)
    schedule = Schedule.objects.create(
        name="nightly report",
        task_path="example_project.demo.tasks.add",
        args=[1, 2],
        cron="30 2 * * *",
        time_zone="Europe/Berlin",
    )
    return {
        "jobs": "/admin/djtasks/job/",
        "job-failed": f"/admin/djtasks/job/{failed.id}/change/",
        "job-running": f"/admin/djtasks/job/{running.pk}/change/",
        "dashboard": "/admin/djtasks/job/dashboard/",
        "schedule": f"/admin/djtasks/schedule/{schedule.pk}/change/",
        "workers": "/admin/djtasks/worker/",
    }


class Site:
    """``manage.py runserver`` on a free port, for the length of a ``with``."""

    def __init__(self, database_url: str):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": database_url, "DJTASKS_LOG_LEVEL": "WARNING"}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/admin/login/", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.process.kill()
        raise SystemExit("runserver did not answer within 60 s")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(10)


def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def shoot(site, pages: dict, out: Path) -> None:
    from selenium.webdriver.common.by import By

    out.mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        driver.get(f"{site.url}/admin/login/")
        driver.find_element(By.NAME, "username").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        for label, width in WIDTHS.items():
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": width < 600},
            )
            for name, path in pages.items():
                if label == "phone" and name not in PHONE_PAGES:
                    continue
                driver.get(f"{site.url}{path}")
                if name in SCROLL_TO:
                    driver.execute_script(
                        "document.querySelector(arguments[0]).scrollIntoView({block: 'end'})",
                        SCROLL_TO[name],
                    )
                target = out / f"admin-{name}-{label}.png"
                target.write_bytes(smaller_png(driver.get_screenshot_as_png()))
                print(
                    f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}"
                    f" ({target.stat().st_size // 1024} kB)"
                )
    finally:
        driver.quit()


def smaller_png(data: bytes) -> bytes:
    """The same PNG with its image data deflated again at level 9 (lossless)."""
    signature, rest = data[:8], data[8:]
    chunks, idat = [], b""
    while rest:
        length, kind = struct.unpack(">I4s", rest[:8])
        body, rest = rest[8 : 8 + length], rest[12 + length :]
        if kind == b"IDAT":
            idat += body
            if _next_kind(rest) == b"IDAT":
                continue  # one image stream split over several chunks: join them first
            body = zlib.compress(zlib.decompress(idat), 9)
        chunks.append(_chunk(kind, body))
    return signature + b"".join(chunks)


def _next_kind(rest: bytes) -> bytes:
    return rest[4:8] if len(rest) >= 8 else b""


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


if __name__ == "__main__":
    main()
