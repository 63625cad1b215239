"""Every code sample in README.md and docs/*.md is checked against the code.

Convention for ```python blocks:

* every block must compile;
* a block whose nearest non-blank line above is ``<!-- fragment -->`` is
  only compiled. Only samples of other libraries (the Celery "before"
  samples, whose first line is ``# Celery``) may be fragments;
* a block that needs names the reader has (a ``result``, a project's
  models, jobs already enqueued) gets them from a hidden setup comment right
  above it, which runs first in the same namespace (Markdown renderers do
  not show HTML comments)::

      <!-- setup
      result = send_welcome.enqueue(7)
      -->

* a block marked ``<!-- run by test_name -->`` needs more than a namespace
  (a thread of its own, PostgreSQL): the named test in this module runs it;
* every other block runs, in the test database. The blocks of one file run
  in order in one namespace (like a shell session), which starts with a copy
  of the UPPERCASE Django settings, so ``# settings.py`` snippets such as
  ``DATABASES["default"]["OPTIONS"] = ...`` run as they would there.

Shell blocks are not run; their ``--flags`` on lines that call runworker,
runbeat or prunejobs must be options of that command. Tables of settings,
task options, flags and checks are compared with the code.
"""

import copy
import importlib
import io
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command, load_command_class
from django.core.management.base import BaseCommand
from django.utils import timezone

import djtasks
from djtasks import cli as djtasks_cli
from djtasks import registry
from djtasks.beat import declared as code_schedules
from djtasks.conf import DEFAULTS
from djtasks.enqueue.task import OPTION_NAMES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
FRAGMENT = re.compile(r"^<!--\s*fragment\b.*-->\s*$")
SETUP = re.compile(r"^<!--\s*setup\s*$")
RUN_BY = re.compile(r"^<!--\s*run by (test_\w+)\s*-->\s*$")
OTHER_LIBRARY = "# Celery"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console"}
COMMANDS = ("runworker", "runbeat", "prunejobs")


class Block:
    def __init__(self, path: Path, language: str, line: int, code: str, fragment: bool):
        self.path = path
        self.language = language
        self.line = line  # 1-based line of the block's first code line
        self.code = code
        self.fragment = fragment
        self.setup = None  # a Block of the hidden setup code, if any
        self.run_by = None  # the name of the test that runs it, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def compiled(self):
        # Padding with newlines makes tracebacks and SyntaxErrors point at the
        # Markdown file's own line numbers.
        return compile("\n" * (self.line - 1) + self.code, str(self.path), "exec")


def blocks_of(path: Path) -> list[Block]:
    blocks, lines = [], path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        above = next((i for i in range(index - 1, -1, -1) if lines[i].strip()), None)
        marker = lines[above].strip() if above is not None else ""
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        code = "\n".join(lines[index + 1 : end]) + "\n"
        block = Block(path, opening.group(1).lower(), index + 2, code, bool(FRAGMENT.match(marker)))
        if marker == "-->":
            block.setup = setup_above(path, lines, above)
        if run_by := RUN_BY.match(marker):
            block.run_by = run_by.group(1)
        blocks.append(block)
        index = end + 1
    return blocks


def setup_above(path: Path, lines: list[str], closing: int) -> Block | None:
    """The ``<!-- setup ... -->`` comment ending on line index ``closing``."""
    start = closing - 1
    while start >= 0 and not lines[start].strip().startswith("<!--"):
        start -= 1
    if start < 0 or not SETUP.match(lines[start].strip()):
        return None
    code = "\n".join(lines[start + 1 : closing]) + "\n"
    return Block(path, "python", start + 2, code, fragment=False)


ALL_BLOCKS = [block for path in DOCS for block in blocks_of(path)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]


def runs_in_session(block: Block) -> bool:
    return block.language == "python" and not block.fragment and block.run_by is None


RUNNABLE_FILES = sorted({block.path for block in PYTHON_BLOCKS if runs_in_session(block)})


def block_run_by(test_name: str) -> Block:
    [block] = [block for block in ALL_BLOCKS if block.run_by == test_name]
    return block


def test_the_docs_have_python_samples():
    assert len(PYTHON_BLOCKS) >= 20
    assert RUNNABLE_FILES


def test_every_python_sample_compiles():
    broken = []
    for block in PYTHON_BLOCKS + [block.setup for block in ALL_BLOCKS if block.setup]:
        try:
            block.compiled()
        except SyntaxError as error:
            broken.append(f"{block.path.relative_to(ROOT)}:{error.lineno}: {error.msg}")
    assert not broken, "Python samples that do not compile:\n" + "\n".join(broken)


def test_only_samples_of_other_libraries_are_left_unrun():
    unrun = [
        block.where
        for block in PYTHON_BLOCKS
        if block.fragment and not block.code.startswith(OTHER_LIBRARY)
    ]
    assert not unrun, "Samples only compiled (give them a setup or a test):\n" + "\n".join(unrun)


def test_every_sql_sample_and_marked_sample_has_its_test():
    sql = [block.where for block in ALL_BLOCKS if block.language == "sql" and not block.run_by]
    assert not sql, "SQL samples no test runs (mark them <!-- run by test_... -->): " + str(sql)
    named = {block.run_by for block in ALL_BLOCKS if block.run_by}
    assert named <= {name for name in globals() if name.startswith("test_")}


def test_setup_comments_belong_to_python_samples():
    stray = [block.where for block in ALL_BLOCKS if block.setup and block.language != "python"]
    assert not stray


@pytest.fixture
def isolated_declarations():
    """Keep tasks and schedules the samples define out of the rest of the suite."""
    tasks, declared = dict(registry._tasks), dict(code_schedules._declared)
    yield
    registry._tasks.clear()
    registry._tasks.update(tasks)
    code_schedules._declared.clear()
    code_schedules._declared.update(declared)


def settings_namespace(path: Path) -> dict:
    namespace = {"__name__": "docsamples." + path.stem.replace("-", "_").lower()}
    for name in dir(django_settings):
        # Only the project's own settings (Django's defaults are not in a
        # settings.py, and reading some of them warns).
        if name.isupper() and django_settings.is_overridden(name):
            value = getattr(django_settings, name)
            try:
                namespace[name] = copy.deepcopy(value)
            except Exception:  # noqa: BLE001 - an uncopyable setting is left out
                continue
    return namespace


def check_djtasks_setting(where: str, value) -> None:
    """A DJTASKS dict written by a sample names real settings and valid schedules."""
    unknown = set(value) - set(DEFAULTS)
    assert not unknown, f"{where}: DJTASKS names unknown settings {sorted(unknown)}"
    for name, spec in (value.get("SCHEDULES") or {}).items():
        code_schedules.fields_of(name, spec)


@pytest.mark.django_db
@pytest.mark.usefixtures("isolated_declarations")
@pytest.mark.parametrize("path", RUNNABLE_FILES, ids=lambda path: path.name)
def test_python_samples_run(path):
    namespace = settings_namespace(path)
    for block in blocks_of(path):
        if not runs_in_session(block):
            continue
        before = namespace.get("DJTASKS")
        try:
            if block.setup is not None:
                exec(block.setup.compiled(), namespace)  # noqa: S102 - our own documentation
            exec(block.compiled(), namespace)  # noqa: S102 - our own documentation
        except Exception as error:
            raise AssertionError(
                f"{block.where}: the sample raised {type(error).__name__}: {error} "
                f"(give it the names it needs in a <!-- setup --> comment)"
            ) from error
        if namespace.get("DJTASKS") is not before:
            check_djtasks_setting(block.where, namespace["DJTASKS"])


# --- shell samples: flags of runworker / runbeat -------------------------


def command_options(name: str) -> set[str]:
    parser = load_command_class("djtasks", name).create_parser("manage.py", name)
    return {option for option in parser._option_string_actions if option.startswith("--")}


def own_options(name: str) -> set[str]:
    base = BaseCommand().create_parser("manage.py", name)
    return command_options(name) - set(base._option_string_actions)


RELIABILITY_RUN = re.compile(r"-m tests\.reliability\.(\w+)")


def reliability_options(name: str) -> set[str]:
    module = importlib.import_module(f"tests.reliability.{name}")
    return set(module.build_parser()._option_string_actions)


def test_flags_in_shell_samples_exist():
    options = {name: command_options(name) for name in COMMANDS}
    checked, unknown = 0, []
    for block in ALL_BLOCKS:
        if block.language not in SHELL_LANGUAGES:
            continue
        for offset, line in enumerate(block.code.splitlines()):
            run = RELIABILITY_RUN.search(line)
            if run:  # python -m tests.reliability.<name> (docs/reliability.md)
                command = f"tests.reliability.{run.group(1)}"
                options.setdefault(command, reliability_options(run.group(1)))
            else:
                command = next((name for name in COMMANDS if name in line), None)
            if command is None:
                continue
            for flag in FLAG.findall(line.split("#")[0]):
                checked += 1
                if flag not in options[command]:
                    where = f"{block.path.relative_to(ROOT)}:{block.line + offset}"
                    unknown.append(f"{where}: {command} has no option {flag}")
    assert not unknown, "\n".join(unknown)
    assert checked >= 10  # the docs do show flags


@pytest.mark.parametrize("command", COMMANDS)
def test_reference_lists_every_flag(command):
    reference = (ROOT / "docs" / "reference.md").read_text()
    missing = {flag for flag in own_options(command) if f"`{flag}" not in reference}
    assert not missing, f"docs/reference.md does not document {command} {sorted(missing)}"


# --- tables compared with the code ----------------------------------------


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip().strip("`").strip() for cell in line.strip("|").split("|")])
    return rows


def literal(text: str):
    """A default as written in a table: a Python literal, maybe with timedelta()."""
    text = text.replace("`", "").strip()
    if re.fullmatch(r"[\d,]+", text):
        text = text.replace(",", "")  # 1,000,000
    return eval(text, {"__builtins__": {}, "timedelta": timedelta})  # noqa: S307 - our docs


def settings_rows(text: str) -> dict:
    """{setting: default} for table rows whose first cell names DJTASKS settings."""
    found = {}
    for cells in table_rows(text):
        names = [name.strip("` ") for name in cells[0].split("/")]
        if len(cells) < 2 or not all(name in DEFAULTS for name in names):
            continue
        values = cells[1].split(" / ") if len(names) > 1 else [cells[1]]
        for name, value in zip(names, values, strict=True):
            found[name] = literal(value)
    return found


def test_reference_lists_every_setting_with_its_default():
    section = (ROOT / "docs" / "reference.md").read_text().split("## Task options")[0]
    assert settings_rows(section) == DEFAULTS


def test_readme_settings_table_is_true():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration")[1].split("\n## ")[0]
    rows = settings_rows(section)
    # The README may list a subset; what it lists must be true.
    assert len(rows) >= 10
    assert rows == {name: DEFAULTS[name] for name in rows}


def test_reference_lists_every_task_option():
    reference = (ROOT / "docs" / "reference.md").read_text()
    names = {cells[0] for cells in table_rows(reference)}
    standard = {"priority", "queue_name", "backend", "takes_context", "run_after"}
    assert not (set(OPTION_NAMES) | standard) - names


def test_reference_lists_the_public_api():
    reference = (ROOT / "docs" / "reference.md").read_text()
    missing = [name for name in djtasks.__all__ if f"`{name}" not in reference]
    assert not missing


def test_reference_lists_every_system_check():
    reference = (ROOT / "docs" / "reference.md").read_text()
    ids = set()
    for module in (ROOT / "djtasks").glob("*.py"):
        ids |= set(re.findall(r'id="(djtasks\.[EW]\d{3})"', module.read_text()))
    assert ids
    assert not {check for check in ids if f"`{check}`" not in reference}


# --- deployment recipes that must really work -----------------------------


def deployment_block(marker: str, language: str) -> Block:
    for block in blocks_of(ROOT / "docs" / "deployment.md"):
        if block.language == language and marker in block.code:
            return block
    raise AssertionError(f"docs/deployment.md has no {language} block with {marker!r}")


def health_check_exit(args: list[str]) -> int:
    try:
        call_command(*args, stdout=io.StringIO())
    except SystemExit as stop:
        return stop.code
    return 0


@pytest.mark.django_db
def test_health_check_command():
    from djtasks.models import Worker
    from djtasks.worker import heartbeat

    line = deployment_block("djtasks health", "sh").code.strip()
    args = line.split("manage.py", 1)[1].split()
    assert args == ["djtasks", "health"]
    assert health_check_exit(args) == 1  # no worker
    heartbeat.register(
        "default", "doc-worker", backend="default", queues=["default"], concurrency=1
    )
    assert Worker.objects.get().hostname == socket.gethostname()
    assert health_check_exit(args) == 0
    Worker.objects.update(last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert health_check_exit(args) == 1  # stale
    Worker.objects.update(last_heartbeat_at=timezone.now(), stopped_at=timezone.now())
    assert health_check_exit(args) == 1  # stopped


def djtasks_subcommand_options(name: str) -> set[str]:
    parser = load_command_class("djtasks", "djtasks").create_parser("manage.py", "djtasks")
    subparsers = next(a for a in parser._actions if a.dest == "subcommand")
    options = subparsers.choices[name]._option_string_actions
    return {option for option in options if option.startswith("--") and option != "--help"}


@pytest.mark.parametrize("name", sorted(djtasks_cli.subcommands()))
def test_reference_lists_every_djtasks_subcommand_and_flag(name):
    reference = (ROOT / "docs" / "reference.md").read_text()
    assert f"manage.py djtasks {name}" in reference
    section = reference.split(f"manage.py djtasks {name}", 1)[1].split("\n### ", 1)[0]
    missing = {flag for flag in djtasks_subcommand_options(name) if f"`{flag}" not in section}
    assert not missing, f"docs/reference.md does not document djtasks {name} {sorted(missing)}"


# --- samples that need a test of their own ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_beat_in_a_thread_sample():
    """docs/beat.md: a Beat in a thread of one's own process (a committed view
    of the database, as a real process has); its ``...`` waits for the beat's
    first tick, proven by the built-in pruning schedule it syncs."""
    from djtasks.models import Schedule
    from djtasks.prune import SCHEDULE_NAME

    def wait_for_the_first_tick():
        deadline = time.monotonic() + 30
        while not Schedule.objects.filter(name=SCHEDULE_NAME).exists():
            assert time.monotonic() < deadline, "the beat thread never ticked"
            time.sleep(0.05)

    block = block_run_by("test_beat_in_a_thread_sample")
    code = block.code.replace("\n...\n", "\nwait_for_the_first_tick()\n")
    assert code != block.code
    namespace = {"wait_for_the_first_tick": wait_for_the_first_tick}
    exec(compile("\n" * (block.line - 1) + code, str(block.path), "exec"), namespace)  # noqa: S102
    assert not namespace["thread"].is_alive()


@pytest.mark.postgresql
@pytest.mark.django_db
def test_autovacuum_sql_sample():
    """docs/deployment.md: the autovacuum statement runs and sets what it says."""
    from django.db import connection

    block = block_run_by("test_autovacuum_sql_sample")
    with connection.cursor() as cursor:
        cursor.execute(block.code)
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'djtasks_job'")
        [options] = cursor.fetchone()
    assert set(options) == {
        "autovacuum_vacuum_scale_factor=0.02",
        "autovacuum_analyze_scale_factor=0.02",
    }


def test_split_databases_sample():
    """docs/deployment.md: the transaction sample with a backend on a second database.

    It needs that second PostgreSQL database, which only the acceptance
    test builds: that test runs the sample, as printed, in its
    `manage.py shell` (with build_report, a task of "bulk") and checks the
    jobs it makes. Here: that what it runs is what the docs print.
    """
    from tests.acceptance.test_two_databases import DOC_SAMPLE, ENQUEUE

    block = block_run_by("test_split_databases_sample")
    assert block.code == DOC_SAMPLE
    assert DOC_SAMPLE in ENQUEUE
