"""docs/from-celery.md's LOGGING, pasted into a fresh project as its reader would.

A project made by ``startproject`` with the README's settings runs a job
that succeeds and one that fails for good after a planned retry, through
``runworker --burst``, first without the guide's ``LOGGING`` and then with
it. Without it, djtasks' lines are missing; with it, each attempt has its
lines, the retry no traceback, the final failure one.
"""

import re
import time
from pathlib import Path

import django
import pytest

from tests.acceptance.test_readme_quickstart import project, run  # noqa: F401 - the fixture

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "from-celery.md"
FAILING_TASK = """

@task(max_attempts=2, backoff=1, jitter=False)
def always_fails():
    raise ValueError("declined on purpose")
"""
# Longer than the retry's backoff of 1 s, so the second burst finds it due.
BACKOFF_WAIT = 1.5

pytestmark = [pytest.mark.slow, pytest.mark.sqlite]


def guide_logging() -> str:
    [code] = [
        code
        for code in re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), re.M | re.S)
        if code.startswith("# settings.py\nLOGGING = ")
    ]
    return code


def worker_output(project_dir: Path, *task_names: str) -> str:
    """Enqueue the tasks, run a burst worker until they are done; its output."""
    enqueue = "".join(f"from myapp.tasks import {name}\n{name}.enqueue()\n" for name in task_names)
    run(project_dir, "manage.py", "shell", "-v", "0", "-c", enqueue)
    output = run_worker(project_dir)
    time.sleep(BACKOFF_WAIT)
    return output + run_worker(project_dir)


def run_worker(project_dir: Path) -> str:
    return run(project_dir, "manage.py", "runworker", "--burst", "--processes", "1", stderr=True)


def test_the_guides_logging_shows_the_workers_lines(project):  # noqa: F811 - the fixture
    tasks = project / "myapp" / "tasks.py"
    tasks.write_text(tasks.read_text() + FAILING_TASK)
    run(project, "manage.py", "migrate", "--verbosity", "0")

    # startproject's defaults (DEBUG on): none of djtasks' lines.
    before = worker_output(project, "always_fails")
    assert "outcome=" not in before and "supervisor pid=" not in before, before
    if django.VERSION >= (6, 0):
        # django.tasks is a django logger: started and finished, each attempt,
        # with the traceback of the retry and of the failure.
        assert before.count("Task id=") == 4, before
        assert before.count("Traceback") == 2, before
    else:
        # The backport's django_tasks logger has no handler: the failure only.
        assert before.count("Task id=") == 1, before
        assert before.count("Traceback") == 1, before

    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n" + guide_logging())
    after = worker_output(project, "always_fails")
    assert "INFO djtasks supervisor pid=" in after, after
    lines = after.splitlines()
    first = [line for line in lines if "attempt=1/2 outcome=READY" in line]
    last = [line for line in lines if "attempt=2/2 outcome=FAILED" in line]
    assert len(first) == len(last) == 1, after
    # The retry logs no traceback; the failure for good one, with its message.
    assert after.count("Traceback") == 1, after
    failure = r"ERROR django[._]tasks Task id=\S+ path=myapp\.tasks\.always_fails state=FAILED"
    assert re.search(failure, after), after
    assert "ValueError: declined on purpose" in after
    assert "INFO django" not in after, after  # no more Task id=... state=RUNNING lines
