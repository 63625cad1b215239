"""manage.py djtasks status: queues, workers and recent failures at a glance."""

import json
from datetime import timedelta

from django.utils import timezone

from djtasks import controls, figures
from djtasks.cli import _common

HELP = "Show each queue's backlog, the worker processes and the failures of the last hour."

FAILURE_WINDOW = timedelta(hours=1)


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="Print one JSON object for scripts.")
    _common.add_backend_argument(parser)


def report(database: str, now, configured=()) -> dict:
    """Everything the subcommand shows, as plain data; ``configured`` queues show even if idle."""
    idle = {"ready": 0, "due": 0, "oldest_due_age": None, "running": 0, "waiting": 0}
    queues = {queue: dict(idle) for queue in configured} | figures.queues(database, now)
    stored = controls.read(database)
    for name in stored.paused_queues:
        queues.setdefault(name, dict(idle))
    for name, queue in queues.items():
        queue["paused"] = name in stored.paused_queues
    return {
        "at": now.isoformat(),
        "queues": dict(sorted(queues.items())),
        "paused_tasks": sorted(stored.paused_tasks),
        "workers": figures.workers(database, now),
        "failures_last_hour": figures.failures_since(database, now - FAILURE_WINDOW),
    }


def run(options, out) -> int:
    backend = _common.backend_of(options)
    data = report(backend.database, timezone.now(), backend.queues or ())
    if options["json"]:
        out.write(json.dumps(data, indent=2))
    else:
        out.write("\n".join(_text(data)))
    return 0


def _text(data: dict) -> list[str]:
    lines = ["Queues:"]
    lines += [
        f"  {name:<20} ready {q['ready']:>8,}  due {q['due']:>8,}  "
        f"oldest due {_age(q['oldest_due_age']):>8}  running {q['running']:>6,}  "
        f"waiting {q['waiting']:>6,}{'  PAUSED' if q['paused'] else ''}"
        for name, q in data["queues"].items()
    ] or ["  (no queue configured, and no ready, running or waiting job)"]
    if data["paused_tasks"]:
        lines.append(f"Paused tasks: {', '.join(data['paused_tasks'])}")
    lines.append("Workers:")
    lines += [
        f"  {w['host']}:{w['pid']:<8} heartbeat {_age(w['heartbeat_age'])} ago  "
        f"{'alive' if w['alive'] else 'STALE'}  running {w['running']}  "
        f"queues {', '.join(w['queues'])}"
        for w in data["workers"]
    ] or ["  (no worker process)"]
    lines.append(f"Failures in the last hour: {data['failures_last_hour']:,}")
    return lines


def _age(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
