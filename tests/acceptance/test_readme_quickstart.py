"""The README's install and quick start, followed as a new user would.

A fresh project made by ``startproject`` in a temporary directory gets the
README's snippets pasted in: the INSTALLED_APPS and TASKS settings, the
SQLite options, and ``myapp/tasks.py``. Then the README's
commands run with this leg's interpreter (so on Django 6 and on Django 5.2
with the backport): ``migrate``, an enqueue from ``manage.py shell``,
``runworker --burst``, and the README's "read the result" lines, which must
find the job SUCCESSFUL with its return value.

Only the project's own SQLite file is used, whatever the leg's database, so
it runs on the SQLite legs only.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import django
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
# A bound on each command, not an expectation of speed.
COMMAND_TIMEOUT = 120

pytestmark = [pytest.mark.slow, pytest.mark.sqlite]


def readme_block(marker: str) -> str:
    """The README's ```python block containing ``marker``."""
    [code] = [code for code in BLOCK.findall(README.read_text()) if marker in code]
    return code


def settings_snippet() -> str:
    """The README's settings block, applied as a user would to their settings.py."""
    code = readme_block("INSTALLED_APPS")
    # "# ..." stands for the project's own apps: keep them.
    code = code.replace("    # ...\n", "    *INSTALLED_APPS,\n", 1)
    assert "*INSTALLED_APPS" in code
    if django.VERSION < (6, 0):
        # The README says to uncomment the backport on Django 5.2.
        uncommented = code.replace('# "django_tasks",', '"django_tasks",', 1)
        assert uncommented != code
        code = uncommented
    sqlite = readme_block('DATABASES["default"]["OPTIONS"]')
    return f"\n# From the README\n{code}\nINSTALLED_APPS += ['myapp']\n\n{sqlite}"


def enqueue_code() -> str:
    return (
        "from django.contrib.auth.models import User\n"
        "from myapp.tasks import send_welcome\n"
        "user = User.objects.create(username='ada', email='ada@example.com')\n"
        "result = send_welcome.enqueue(user.id)\n"
        "print(result.id)\n"
    )


def read_result_code(result_id: str) -> str:
    return (
        "import json\n"
        "from myapp.tasks import send_welcome\n"
        f"result_id = {result_id!r}\n"
        + readme_block("send_welcome.get_result(result_id)")
        + "print(json.dumps({'status': str(result.status), 'value': result.return_value, "
        "'attempts': result.attempts}))\n"
    )


@pytest.fixture
def project(tmp_path) -> Path:
    """A new project with the README's snippets pasted in."""
    run(tmp_path, "-m", "django", "startproject", "mysite", ".")
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + settings_snippet())
    # A bare package is an app (startapp would add files the quick start never uses).
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "tasks.py").write_text(readme_block("# myapp/tasks.py"))
    return tmp_path


def run(directory: Path, *args: str, stderr: bool = False) -> str:
    """Run this leg's Python with ``args`` in ``directory``; its stdout (or stderr)."""
    env = {
        key: value
        for key, value in os.environ.items()
        # The suite's settings and database must not leak into the new project.
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DJTASKS_TEST_SQLITE"}
    }
    done = subprocess.run(
        [sys.executable, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stderr if stderr else done.stdout


def test_readme_quick_start_runs_a_job_to_success(project):
    run(project, "manage.py", "migrate", "--verbosity", "0")
    result_id = run(project, "manage.py", "shell", "-v", "0", "-c", enqueue_code()).strip()

    run(project, "manage.py", "runworker", "--burst", "--processes", "1")

    found = json.loads(
        run(project, "manage.py", "shell", "-v", "0", "-c", read_result_code(result_id))
    )
    assert found == {"status": "SUCCESSFUL", "value": {"sent_to": "ada@example.com"}, "attempts": 1}
