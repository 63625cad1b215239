"""The admin in a real browser: headless Chromium logs in, opens the
dashboard and a job page, saves screenshots and checks the chart and the
progress bar were drawn (not just present in the HTML).

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the
``selenium`` package; skips, saying which is missing, without them.
"""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from djtasks.models import Job, JobStatus

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        missing = "headless Chromium is absent: apt-get install chromium chromium-driver"
        # .ci/run installs it: on CI a missing browser is a failure, not a skip.
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    # An explicit driver path: Selenium must not try to download one.
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def jobs():
    """A running job with progress, and an hour of finished jobs for the chart."""
    now = timezone.now()
    running = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        args=[5],
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=now - timedelta(seconds=3),
        last_attempted_at=now - timedelta(seconds=3),
        progress={"current": 12, "total": 20, "message": "step 13 of 20"},
    )
    finished = []
    for minute in range(0, 60, 3):
        at = now - timedelta(minutes=minute)
        status = JobStatus.FAILED if minute % 9 == 0 else JobStatus.SUCCESSFUL
        for _ in range(1 + minute % 4):
            finished.append(
                Job(
                    task_path="example_project.demo.tasks.add",
                    args=[1, 2],
                    status=status,
                    attempts=1,
                    enqueued_at=at - timedelta(seconds=2),
                    started_at=at - timedelta(seconds=1),
                    finished_at=at,
                    errors=[]
                    if status == JobStatus.SUCCESSFUL
                    else [{"exception_class_path": "builtins.RuntimeError", "traceback": "..."}],
                )
            )
    Job.objects.bulk_create(finished)
    return running


def log_in(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.org", "pw")
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert browser.find_element(By.ID, "djtasks-dashboard-link")


def test_dashboard_and_job_page_render(browser, live_server, django_user_model, jobs):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(browser, live_server, django_user_model)

    browser.find_element(By.LINK_TEXT, "Jobs dashboard").click()
    chart = browser.find_element(By.ID, "djtasks-chart")
    browser.save_screenshot(str(SCREENSHOTS / "admin-dashboard.png"))
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    assert len(bars) >= 20
    # Drawn with the stylesheet's colours, so the CSS was served and applied.
    fills = {bar.value_of_css_property("fill") for bar in bars}
    assert "rgb(35, 128, 58)" in fills and "rgb(179, 38, 30)" in fills

    browser.get(f"{live_server.url}/admin/djtasks/job/{jobs.pk}/change/")
    bar = browser.find_element(By.CSS_SELECTOR, ".djtasks-progress")
    fill = bar.find_element(By.CSS_SELECTOR, ".djtasks-progress-fill")
    browser.save_screenshot(str(SCREENSHOTS / "admin-job.png"))
    assert fill.size["width"] == pytest.approx(bar.size["width"] * 0.6, abs=2)
    assert "step 13 of 20" in browser.page_source

    browser.get(f"{live_server.url}/admin/djtasks/job/")
    browser.save_screenshot(str(SCREENSHOTS / "admin-jobs.png"))
    assert browser.find_elements(By.CSS_SELECTOR, "#result_list .djtasks-badge")


def test_example_job_page_follows_the_job(browser, live_server, jobs):
    """The demo's job page polls the JSON view and redraws its bar and status."""
    browser.get(f"{live_server.url}/jobs/{jobs.pk}/")
    bar = browser.find_element(By.ID, "progress-bar")
    fill = browser.find_element(By.ID, "progress-fill")
    wait = WebDriverWait(browser, 15)
    # The bar grows with a CSS transition: wait for it to settle at 12/20.
    wait.until(lambda _: abs(fill.size["width"] - bar.size["width"] * 0.6) <= 3)
    assert "12/20 step 13 of 20" in browser.find_element(By.ID, "progress-text").text
    browser.save_screenshot(str(SCREENSHOTS / "example-job-running.png"))

    Job.objects.filter(pk=jobs.pk).update(
        status=JobStatus.SUCCESSFUL,
        finished_at=timezone.now(),
        progress={"current": 20, "total": 20, "message": "done"},
        return_value={"counted": 5},
    )
    wait.until(lambda _: browser.find_element(By.ID, "status").text == "SUCCESSFUL")
    wait.until(lambda _: fill.size["width"] >= bar.size["width"] - 3)
    assert '"counted": 5' in browser.find_element(By.ID, "return-value").text
    browser.save_screenshot(str(SCREENSHOTS / "example-job-done.png"))


def test_queues_page_pauses_and_resumes_a_queue(browser, live_server, django_user_model):
    """The Queues page lists the queues; its Pause button pauses one, for real."""
    from djtasks.models import Control, ControlKind

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    Job.objects.bulk_create(
        Job(task_path="example_project.demo.tasks.add", args=[1, 2], queue_name="default")
        for _ in range(3)
    )
    log_in(browser, live_server, django_user_model)

    browser.get(f"{live_server.url}/admin/djtasks/control/")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"]')
    assert row.find_element(By.CSS_SELECTOR, ".djtasks-state").text == "running"
    assert "3" in [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    row.find_element(By.CSS_SELECTOR, 'button[value="pause-queue"]').click()
    # The POST redirects to a new page: wait until the old row is gone.
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(row))

    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"]')
    badge = row.find_element(By.CSS_SELECTOR, ".djtasks-state .djtasks-badge")
    browser.save_screenshot(str(SCREENSHOTS / "admin-queues-paused.png"))
    assert badge.text == "paused"
    # Drawn with the stylesheet's colour for a paused queue.
    assert badge.value_of_css_property("background-color") == "rgba(179, 107, 0, 1)"
    assert "Queue default: paused." in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert Control.objects.get(kind=ControlKind.QUEUE, name="default").paused

    row.find_element(By.CSS_SELECTOR, 'button[value="resume-queue"]').click()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(row))
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"]')
    assert row.find_element(By.CSS_SELECTOR, ".djtasks-state").text == "running"
    assert not Control.objects.get(kind=ControlKind.QUEUE, name="default").paused
