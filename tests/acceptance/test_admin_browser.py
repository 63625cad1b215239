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


def test_retry_all_matching_from_the_filtered_list(browser, live_server, django_user_model):
    now = timezone.now()
    Job.objects.bulk_create(
        Job(task_path="tests.tasks.failing", status=JobStatus.FAILED, finished_at=now)
        for _ in range(120)
    )
    Job.objects.create(task_path="tests.tasks.noop", status=JobStatus.FAILED, finished_at=now)
    log_in(browser, live_server, django_user_model)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    browser.get(
        f"{live_server.url}/admin/djtasks/job/?status__exact=FAILED&task=tests.tasks.failing"
    )
    # The admin's object tools show their labels in capitals: find the link by its URL.
    browser.find_element(By.CSS_SELECTOR, "a.djtasks-bulk-link[href*='/bulk/retry/']").click()
    WebDriverWait(browser, 20).until(lambda b: "Retry all" in b.page_source)
    assert (
        "Retry all 120 jobs matching this filter?"
        in browser.find_element(By.CLASS_NAME, "djtasks-bulk-count").text
    )
    browser.save_screenshot(str(SCREENSHOTS / "admin-bulk-confirm.png"))
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value^='Yes']").click()

    WebDriverWait(browser, 20).until(lambda b: "120 jobs put back to ready." in b.page_source)
    assert Job.objects.filter(status=JobStatus.READY).count() == 120
    assert Job.objects.get(task_path="tests.tasks.noop").status == JobStatus.FAILED


# --- at a desktop's and a phone's width -----------------------------------

WIDTHS = {"desktop": 1280, "phone": 390}
LONG_TASK = "example_project.demo.tasks.build_report_with_a_rather_long_descriptive_name"


def show_at(browser, width: int) -> None:
    """Lay pages out at ``width`` CSS pixels, as a screen that wide would."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


@pytest.fixture(params=sorted(WIDTHS), ids=sorted(WIDTHS))
def width(request):
    return WIDTHS[request.param]


def a_page_of_every_kind_of_job():
    """Jobs of each status, long task paths, progress known and unknown."""
    now = timezone.now()
    rows = []
    for i, status in enumerate(JobStatus.values * 4):
        finished = status in ("SUCCESSFUL", "FAILED", "CANCELLED", "EXPIRED")
        rows.append(
            Job(
                task_path=LONG_TASK if i % 2 else "example_project.demo.tasks.add",
                queue_name="emails" if i % 3 else "default",
                status=status,
                attempts=1,
                max_attempts=3,
                enqueued_at=now - timedelta(minutes=i),
                started_at=now - timedelta(minutes=i) if status != "READY" else None,
                finished_at=now if finished else None,
                progress={"current": i, "total": 40 if i % 4 else None, "message": "rows"},
            )
        )
    Job.objects.bulk_create(rows)


def overflow(browser, element=None):
    """(scrollWidth, clientWidth) of ``element``, or of the page."""
    script = (
        "const e = arguments[0] || document.documentElement; return [e.scrollWidth, e.clientWidth]"
    )
    return browser.execute_script(script, element)


def test_the_job_list_fits_without_a_horizontal_scroll(
    browser, live_server, django_user_model, width
):
    a_page_of_every_kind_of_job()
    log_in(browser, live_server, django_user_model)
    show_at(browser, width)
    browser.get(f"{live_server.url}/admin/djtasks/job/")
    results = browser.find_element(By.CSS_SELECTOR, "#changelist .results")
    scroll, client = overflow(browser, results)
    browser.save_screenshot(str(SCREENSHOTS / f"admin-jobs-{width}.png"))
    assert scroll <= client, f"the job list is {scroll} px wide in a {client} px box"
    scroll, client = overflow(browser)
    assert scroll <= client, f"the page is {scroll} px wide on a {client} px screen"
    # The task column still shows the whole path (wrapped at its dots).
    assert LONG_TASK in results.text.replace("\n", "")


def test_the_other_pages_fit_the_screen(browser, live_server, django_user_model, width):
    from djtasks.models import Schedule, Worker

    a_page_of_every_kind_of_job()
    Worker.objects.create(
        id="web1.example.org-4242",
        hostname="web1.example.org",
        pid=4242,
        queues=["default", "emails"],
        concurrency=4,
    )
    Schedule.objects.create(
        name="nightly report",
        task_path=LONG_TASK.rsplit("_with", 1)[0],
        cron="30 2 * * *",
        time_zone="Europe/Berlin",
    )
    log_in(browser, live_server, django_user_model)
    show_at(browser, width)
    for path in ("/admin/djtasks/worker/", "/admin/djtasks/schedule/"):
        browser.get(f"{live_server.url}{path}")
        scroll, client = overflow(
            browser, browser.find_element(By.CSS_SELECTOR, "#changelist .results")
        )
        assert scroll <= client, f"{path}: the list is {scroll} px wide in a {client} px box"
    failed = Job.objects.filter(status=JobStatus.FAILED).first()
    for path in (
        "/admin/djtasks/job/dashboard/",
        "/admin/djtasks/worker/",
        "/admin/djtasks/schedule/",
        f"/admin/djtasks/job/{failed.pk}/change/",
    ):
        browser.get(f"{live_server.url}{path}")
        scroll, client = overflow(browser)
        assert scroll <= client, f"{path}: the page is {scroll} px wide on a {client} px screen"


def test_progress_bars_are_striped_only_for_an_unknown_total(
    browser, live_server, django_user_model
):
    known = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        status=JobStatus.SUCCESSFUL,
        finished_at=timezone.now(),
        progress={"current": 40, "total": 40, "message": "done"},
    )
    unknown = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        status=JobStatus.RUNNING,
        progress={"current": 7, "total": None, "message": "counting"},
    )
    never = Job.objects.create(
        task_path="example_project.demo.tasks.add", status=JobStatus.SUCCESSFUL
    )
    log_in(browser, live_server, django_user_model)

    def fill_image(job):
        browser.get(f"{live_server.url}/admin/djtasks/job/{job.pk}/change/")
        fill = browser.find_element(By.CSS_SELECTOR, ".djtasks-progress-fill")
        return fill.value_of_css_property("background-image")

    assert fill_image(known) == "none"
    assert "repeating-linear-gradient" in fill_image(unknown)
    browser.get(f"{live_server.url}/admin/djtasks/job/{never.pk}/change/")
    browser.implicitly_wait(0)
    assert not browser.find_elements(By.CSS_SELECTOR, ".djtasks-progress")


def test_a_running_job_page_turns_successful_without_a_reload(
    browser, live_server, django_user_model, width
):
    running = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        args=[5],
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=timezone.now(),
        last_attempted_at=timezone.now(),
        progress={"current": 2, "total": 5, "message": "counting"},
    )
    log_in(browser, live_server, django_user_model)
    show_at(browser, width)
    browser.get(f"{live_server.url}/admin/djtasks/job/{running.pk}/change/")

    def text_of(selector):
        # Read in one script call: the page swaps its content every few
        # seconds, so an element found first may be gone when read.
        return browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
            selector,
        )

    assert "Running" in text_of(".field-status_column")
    # Set on this page only: a reload would lose it.
    browser.execute_script("window.djtasksSamePage = true;")

    Job.objects.filter(pk=running.pk).update(
        status=JobStatus.SUCCESSFUL,
        finished_at=timezone.now(),
        progress={"current": 5, "total": 5, "message": "done"},
        return_value={"counted": 5},
    )
    WebDriverWait(browser, 30).until(lambda _: "Successful" in text_of(".field-status_column"))
    assert browser.execute_script("return window.djtasksSamePage === true")
    assert '"counted": 5' in text_of(".field-return_value_column")
    browser.implicitly_wait(0)
    assert not browser.find_elements(By.ID, "djtasks-live")  # finished: no more refreshes


def test_the_retried_job_timeline_reads_in_order(browser, live_server, django_user_model):
    from djtasks.control import operations
    from djtasks.testing import run_jobs
    from tests import tasks

    result = tasks.failing.enqueue("first")
    run_jobs()
    operations.retry(Job.objects.filter(pk=result.id))
    run_jobs()
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}/admin/djtasks/job/{result.id}/change/")
    items = browser.find_elements(By.CSS_SELECTOR, ".djtasks-timeline li")
    events = [item.text.split(" ", 3)[3].split(":")[0] for item in items]
    assert events == [
        "enqueued",
        "first attempt started",
        "attempt 1 failed",
        "retried from the admin (a fresh attempt budget)",
        "attempt 2 started",
        "attempt 2 failed",
        "finished",
    ]


def test_the_schedule_form_previews_the_runs_as_they_are_typed(
    browser, live_server, django_user_model
):
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}/admin/djtasks/schedule/add/")
    preview = browser.find_element(By.ID, "djtasks-preview")
    assert not preview.find_elements(By.TAG_NAME, "li")  # nothing typed yet
    browser.find_element(By.ID, "id_cron").send_keys("15 6 * * *")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda _: len(preview.find_elements(By.TAG_NAME, "li")) == 5)
    assert all(":15:00 " in item.text for item in preview.find_elements(By.TAG_NAME, "li"))
    browser.find_element(By.ID, "id_cron").clear()
    browser.find_element(By.ID, "id_interval").send_keys("5 minutes")
    wait.until(lambda _: "Enter an interval" in preview.text)
    from djtasks.models import Schedule

    assert not Schedule.objects.exists()  # a preview saves nothing


def test_the_job_list_follows_its_unfinished_jobs(browser, live_server, django_user_model):
    running = Job.objects.create(
        task_path="example_project.demo.tasks.slow_count",
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=timezone.now(),
    )
    log_in(browser, live_server, django_user_model)
    browser.get(f"{live_server.url}/admin/djtasks/job/")
    # The row's checkbox, held by the page: it must survive the refreshes.
    browser.execute_script("window.djtasksBox = document.querySelector('input.action-select');")
    Job.objects.filter(pk=running.pk).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now()
    )

    def status_cell():
        return browser.execute_script(
            "return document.querySelector('#result_list td.field-status_list_column').textContent"
        )

    WebDriverWait(browser, 30).until(lambda _: "Successful" in status_cell())
    assert browser.execute_script(
        "const box = window.djtasksBox;"
        "return document.body.contains(box) && box.value === arguments[0]",
        str(running.pk),
    )


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
