"""docs/benchmarks.md from the figures of one run.

Only the part between the two markers below is rewritten, so the prose
around it (the README section, the profile notes) survives a new run.
"""

import time
from pathlib import Path

START = "<!-- bench:results:start (written by bench/run.py; edits here are lost) -->"
END = "<!-- bench:results:end -->"

REFERENCE = "baseline-100"
PEERS = ("dtdb", "procrastinate", "celery")

# figure key -> (label, unit, ratio reference figure or None, higher is better)
FIGURES = {
    "enqueue_one": ("enqueue, one by one", "jobs/s", "enqueue_one", True),
    "enqueue_one_prepared": (
        "enqueue, one by one, with OPTIONS prepare_threshold=5",
        "jobs/s",
        "enqueue_one",
        True,
    ),
    "enqueue_bulk": ("enqueue, bulk", "jobs/s", "enqueue_bulk", True),
    "bulk_seconds": ("bulk enqueue, time for the batch", "s", "bulk_seconds", False),
    "drain_1": ("drain, 1 worker process", "jobs/s", "drain_1", True),
    "drain_2": ("drain, 2 worker processes", "jobs/s", "drain_2", True),
    "latency_p50": ("enqueue-to-start latency p50", "ms", "latency_p50", False),
    "latency_p95": ("enqueue-to-start latency p95", "ms", "latency_p95", False),
    "latency_p99": ("enqueue-to-start latency p99", "ms", "latency_p99", False),
    "drain_1_rss": ("worker RSS after the drain, 1 process", "MB", None, False),
    "drain_2_rss": ("worker RSS after the drain, largest of 2", "MB", None, False),
    "drain_quiet_log": (
        "drain, 1 process, django.tasks logger at WARNING",
        "jobs/s",
        "drain_1",
        True,
    ),
    "drain_history": (
        "drain, 1 process, with {history} finished rows in the table",
        "jobs/s",
        "drain_1",
        True,
    ),
    "drain_history_rss": ("worker RSS after the history drain", "MB", None, False),
    "drain_quiet_log_rss": ("worker RSS after the quiet-log drain", "MB", None, False),
    "drain_sqlite": ("drain on SQLite, 1 process", "jobs/s", "drain_1", True),
    "drain_sqlite_rss": ("worker RSS after the SQLite drain", "MB", None, False),
}


def fmt(value, unit):
    if value is None:
        return "–"
    if unit == "jobs/s":
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    if unit == "ms":
        return f"{value:,.1f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.0f}"


def ratio(value, reference):
    if not value or not reference:
        return "–"
    number = value / reference
    if number < 0.1:
        return f"{number:.3f}×"
    return f"{number:.2f}×" if number < 10 else f"{number:.0f}×"


def median(results, key, figure):
    return results.get(key, {}).get(figure, {}).get("median")


def write(path: Path, data):
    block = render(data)
    if path.exists():
        text = path.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block + tail)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Benchmarks\n\n{block}\n")


def render(data):
    context, results = data["context"], data["results"]
    lines = [START, ""]
    lines += _context(context)
    lines += _summary(context, results)
    lines += _targets(context, results)
    lines += _details(context, results)
    if data["errors"]:
        lines += ["", "**Failed steps** (their figures are missing above):", ""]
        for key, messages in data["errors"].items():
            for message in messages:
                first = message.strip().splitlines()[0][:300]
                lines.append(f"- {key}: {first}")
    lines += ["", END]
    return "\n".join(lines)


def _context(context):
    machine = context["machine"]
    options = context["options"]
    load_before = ", ".join(f"{value:.2f}" for value in context["load_before"])
    load_after = ", ".join(f"{value:.2f}" for value in context["load_after"])
    lines = [
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`{context['command'].strip()}` ({context['seconds'] / 60:.0f} min).",
        "",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), "
        f"{machine['memory_gib']} GiB memory, Linux {machine['kernel']}.",
        f"- PostgreSQL {context.get('postgresql', '–')} and Redis {context.get('redis', '–')} "
        "on the same machine, stock settings.",
        f"- Other load: the cores were {context['busy_before']}% busy in the 2 s before the "
        f"run; load average {load_before} at the start, {load_after} at the end.",
        f"- Each figure: {options['runs']} runs (min / median / max). Drains: "
        f"{options['jobs']:,} no-op jobs enqueued first. Enqueue: {options['enqueue_jobs']:,} "
        f"one by one, {options['bulk_jobs']:,} in one bulk call. Latency: "
        f"{options['latency_jobs']} probes {options['latency_interval'] * 1000:.0f} ms apart "
        "into an idle worker.",
    ]
    versions = context.get("versions", {})
    if versions:
        lines.append(
            "- Versions: "
            + "; ".join(
                f"{key}: " + ", ".join(f"{name} {version}" for name, version in found.items())
                for key, found in versions.items()
            )
            + "."
        )
    if context.get("djtasks_processes_option") is False:
        lines.append(
            "- `runworker` has no `--processes` option yet: two `runworker` "
            "processes drain the 2-process figure."
        )
    return [*lines, ""]


def _summary(context, results):
    lines = [
        "| system (how it was run) | enqueue 1-by-1 /s | bulk /s | drain, 1 proc /s "
        "| drain, 2 procs /s | latency p50 / p95 / p99 ms | worker RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in context["systems"].items():
        figures = results.get(key)
        if not figures or key.endswith("_sqlite"):
            continue

        def m(figure, unit="jobs/s", figures=figures):
            return fmt(figures.get(figure, {}).get("median"), unit)

        latency = " / ".join(m(f"latency_{p}", "ms") for p in ("p50", "p95", "p99"))
        rss = m("drain_1_rss", "MB")
        lines.append(
            f"| {label} | {m('enqueue_one')} | {m('enqueue_bulk')} | {m('drain_1')} "
            f"| {m('drain_2')} | {latency} | {rss} |"
        )
    return ["Medians:", "", *lines, ""]


def _targets(context, results):
    """The issue's targets against the medians of this run."""
    own = results.get("djtasks")
    if not own:
        return []
    history = context["options"]["history_rows"]

    def get(figure, key="djtasks"):
        return median(results, key, figure)

    rows = []

    def row(target, measured, met):
        verdict = "–" if met is None else ("yes" if met else "**no**")
        rows.append(f"| {target} | {measured} | {verdict} |")

    drain_1 = get("drain_1")
    row(
        "drain ≥ 5,000 jobs/s, one `runworker`",
        fmt(drain_1, "jobs/s"),
        None if drain_1 is None else drain_1 >= 5000,
    )
    for figure, processes in (("drain_1", "1 process"), ("drain_2", "2 processes")):
        own_drain = get(figure)
        peers = [value for key in PEERS if (value := get(figure, key)) is not None]
        if own_drain and peers:
            fastest = max(peers)
            row(
                f"drain ≥ 2× the fastest peer, {processes} each",
                f"{own_drain / fastest:.1f}× (fastest peer: {fmt(fastest, 'jobs/s')})",
                own_drain >= 2 * fastest,
            )
    p50, p99 = get("latency_p50"), get("latency_p99")
    row("enqueue-to-start p50 ≤ 5 ms", fmt(p50, "ms") + " ms", None if p50 is None else p50 <= 5)
    row("enqueue-to-start p99 ≤ 20 ms", fmt(p99, "ms") + " ms", None if p99 is None else p99 <= 20)
    bulk = get("bulk_seconds")
    bulk_jobs = context["options"]["bulk_jobs"]
    row(
        f"bulk enqueue of {bulk_jobs:,} jobs ≤ 0.5 s",
        fmt(bulk, "s") + " s",
        None if bulk is None else bulk <= 0.5,
    )
    one = get("enqueue_one")
    row("one-by-one enqueue ≥ 2,000/s", fmt(one, "jobs/s"), None if one is None else one >= 2000)
    with_history = get("drain_history")
    if with_history and drain_1:
        cost = 1 - with_history / drain_1
        row(
            f"{history:,} finished rows cost ≤ 10% of drain rate",
            f"{cost * 100:.0f}%",
            cost <= 0.10,
        )
    rss = [value for figure in ("drain_1_rss", "drain_2_rss") if (value := get(figure))]
    if rss:
        row("≤ 60 MB RSS per worker process", f"{max(rss):.0f} MB", max(rss) <= 60)
    return [
        "djtasks against the targets of issue 6 (medians of this run):",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *rows,
        "",
    ]


def _details(context, results):
    history = context["options"]["history_rows"]
    reference = results.get(REFERENCE, {})
    lines = [
        "Every figure. *× baseline* is the median over the median of the plain-psycopg "
        "baseline claiming 100 jobs per statement, measured in the same run (for the "
        "djtasks-only rows: over the baseline's 1-process drain). Above 1× is faster for "
        "rates and slower for latencies.",
        "",
        "| system | figure | min | median | max | unit | × baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in context["systems"].items():
        figures = results.get(key, {})
        for figure, (name, unit, ref, _higher) in FIGURES.items():
            if figure not in figures:
                continue
            values = figures[figure]
            ref_value = reference.get(ref, {}).get("median") if ref else None
            lines.append(
                f"| {label} | {name.format(history=f'{history:,}')} | "
                f"{fmt(values['min'], unit)} | {fmt(values['median'], unit)} | "
                f"{fmt(values['max'], unit)} | {unit} | {ratio(values['median'], ref_value)} |"
            )
    return [*lines, ""]
