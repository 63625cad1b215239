"""docs/benchmarks.md from the figures of one run.

Only the part between the two markers below is rewritten, so the prose
around it (the README section, the profile notes) survives a new run.
"""

import time
from pathlib import Path

START = "<!-- bench:results:start (written by bench/run.py; edits here are lost) -->"
END = "<!-- bench:results:end -->"

REFERENCE = "baseline-100"
# The MariaDB systems' figures are ratios to the MariaDB baseline's.
MARIADB_REFERENCE = "baseline_mariadb-100"
PEERS = ("dtdb", "procrastinate", "celery", "dramatiq")  # and every pgqueuer-<batch>
# The mixed load's sleeps (bench/common.py MIXED_MILLIS), for its bound.
MIXED_MILLIS = (1, 10, 100)

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
    "drain_scan": ("drain, 1 process, batch-size scan (1 run)", "jobs/s", "drain_1", True),
    "drain_mixed": (
        "mixed load (1/10/100 ms sleeps), 1 process, {threads} at once",
        "jobs/s",
        "drain_mixed",
        True,
    ),
    "latency_p50": ("enqueue-to-start latency p50", "ms", "latency_p50", False),
    "latency_p95": ("enqueue-to-start latency p95", "ms", "latency_p95", False),
    "latency_p99": ("enqueue-to-start latency p99", "ms", "latency_p99", False),
    "drain_1_rss": ("worker RSS after the drain, 1 process", "MB", None, False),
    "drain_2_rss": ("worker RSS after the drain, largest of 2", "MB", None, False),
    "drain_mixed_rss": ("worker RSS after the mixed load", "MB", None, False),
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
    "drain_history_empty": (
        "drain, 1 process, empty table, each run next to one of the history drain",
        "jobs/s",
        "drain_1",
        True,
    ),
    "drain_history_empty_rss": ("worker RSS after the paired empty-table drain", "MB", None, False),
    "drain_quiet_log_rss": ("worker RSS after the quiet-log drain", "MB", None, False),
    "drain_sqlite": ("drain on SQLite, 1 process", "jobs/s", "drain_1", True),
    "drain_sqlite_rss": ("worker RSS after the SQLite drain", "MB", None, False),
    "latency_tuned_p50": (
        "enqueue-to-start latency p50, POLL_INTERVAL {tuned}",
        "ms",
        "latency_tuned_p50",
        False,
    ),
    "latency_tuned_p95": (
        "enqueue-to-start latency p95, POLL_INTERVAL {tuned}",
        "ms",
        "latency_tuned_p95",
        False,
    ),
    "latency_tuned_p99": (
        "enqueue-to-start latency p99, POLL_INTERVAL {tuned}",
        "ms",
        "latency_tuned_p99",
        False,
    ),
    "idle_default_statements": (
        "statements per second, idle worker process, POLL_INTERVAL 1.0",
        "/s",
        "idle_default_statements",
        False,
    ),
    "idle_default_claims": (
        "claims per second, idle, POLL_INTERVAL 1.0",
        "/s",
        "idle_default_claims",
        False,
    ),
    "idle_tuned_statements": (
        "statements per second, idle worker process, POLL_INTERVAL {tuned}",
        "/s",
        "idle_tuned_statements",
        False,
    ),
    "idle_tuned_claims": (
        "claims per second, idle, POLL_INTERVAL {tuned}",
        "/s",
        "idle_tuned_claims",
        False,
    ),
    "anatomy_round_trips": (
        "round trips to the server per job (drain of {anatomy} jobs, 1 process)",
        "/job",
        "anatomy_round_trips",
        False,
    ),
    "anatomy_wait_us": (
        "time waiting on the server per job (same drain)",
        "µs",
        "anatomy_wait_us",
        False,
    ),
    "anatomy_worker_cpu_us": (
        "worker processes' CPU per job (same drain)",
        "µs",
        "anatomy_worker_cpu_us",
        False,
    ),
    "anatomy_server_cpu_us": (
        "server CPU per job on the worker's connections (same drain)",
        "µs",
        "anatomy_server_cpu_us",
        False,
    ),
    "claim_ms": ("the claim's SELECT of 100 on a full queue (ANALYZE)", "ms", None, False),
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
    if unit in ("/s", "/job"):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
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


def on_mariadb(key):
    return "mariadb" in key


def reference_of(key):
    return MARIADB_REFERENCE if on_mariadb(key) else REFERENCE


def peers(results):
    """The peers' keys: the fixed ones and each PgQueuer batch size measured."""
    found = [key for key in PEERS if key in results]
    found += [key for key in results if key.startswith("pgqueuer-")]
    return found


def pgqueuer_best(results, figure="drain_1"):
    """(key, rate) of the PgQueuer configuration fastest at ``figure``."""
    rates = {
        key: rate
        for key in results
        if key.startswith("pgqueuer-") and (rate := median(results, key, figure))
    }
    if not rates:
        return None, None
    key = max(rates, key=rates.get)
    return key, rates[key]


def mixed_bound(threads):
    """Jobs/s of ``threads`` jobs always running, nothing else costing time."""
    return threads / (sum(MIXED_MILLIS) / len(MIXED_MILLIS) / 1000)


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
    lines += _mariadb(context, results, data.get("notes", {}))
    lines += _mixed(context, results)
    lines += _targets_18(context, results)
    lines += _targets(context, results)
    lines += _details(context, results)
    if data["errors"]:
        lines += [
            "",
            "**Failed steps and partial figures** (a failed step's figures are missing above):",
            "",
        ]
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
        f"- {_servers(context)} on the same machine, stock settings.",
        f"- Other load: the cores were {context['busy_before']}% busy in the 2 s before the "
        f"run; load average {load_before} at the start, {load_after} at the end.",
        f"- Each figure: {options['runs']} runs (min / median / max). Drains: "
        f"{options['jobs']:,} no-op jobs enqueued first ({options.get('slow_jobs', 0):,} for "
        "the systems marked *slow* in the table, which drain under ~3,000/s). "
        f"Enqueue: {options['enqueue_jobs']:,} "
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
    for key, why in context.get("left_out", {}).items():
        lines.append(f"- Left out: {key}: {why}.")
    if context.get("djtasks_processes_option") is False:
        lines.append(
            "- `runworker` has no `--processes` option yet: two `runworker` "
            "processes drain the 2-process figure."
        )
    return [*lines, ""]


def _servers(context):
    found = [
        f"{name} {context[key]}"
        for name, key in (("PostgreSQL", "postgresql"), ("MariaDB", "mariadb"), ("Redis", "redis"))
        if context.get(key)
    ]
    return ", ".join(found) or "No database server"


def _summary(context, results):
    lines = [
        "| system (how it was run) | jobs per drain | enqueue 1-by-1 /s | bulk /s "
        "| drain, 1 proc /s | drain, 2 procs /s | latency p50 / p95 / p99 ms | worker RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reference = results.get(REFERENCE, {})
    for key, label in context["systems"].items():
        figures = results.get(key)
        if not figures or key.endswith("_sqlite") or on_mariadb(key) or "drain_1" not in figures:
            continue

        def m(figure, unit="jobs/s", figures=figures):
            value = figures.get(figure, {}).get("median")
            if value is None:
                return "–"
            ref = reference.get(figure, {}).get("median")
            shown = fmt(value, unit)
            return f"{shown} ({ratio(value, ref)})" if ref else shown

        latency = " / ".join(m(f"latency_{p}", "ms") for p in ("p50", "p95", "p99"))
        rss = fmt(figures.get("drain_1_rss", {}).get("median"), "MB")
        jobs = figures.get("drain_1_jobs", {}).get("median")
        jobs = f"{jobs:,.0f}" + (" (slow)" if jobs < context["options"]["jobs"] else "")
        lines.append(
            f"| {label} | {jobs} | {m('enqueue_one')} | {m('enqueue_bulk')} | {m('drain_1')} "
            f"| {m('drain_2')} | {latency} | {rss} |"
        )
    if len(lines) == 2:
        return []  # no system of the table was measured (a MariaDB-only run)
    return [
        "Medians, each with its ratio to the plain-psycopg baseline claiming 100 per "
        "statement in the same run (the baseline-100 row is 1.00×; above 1× is faster for "
        "rates, slower for latencies):",
        "",
        *lines,
        "",
    ]


def _mariadb(context, results, notes):
    """djtasks on MariaDB: ratios to the MariaDB baseline, the PostgreSQL ones beside."""
    own = "djtasks_mariadb"
    if own not in results:
        return []
    options = context["options"]
    tuned = options.get("tuned_poll_interval")

    def cell(key, figure, unit):
        return fmt(median(results, key, figure), unit)

    def vs(key, figure):
        return ratio(median(results, key, figure), median(results, reference_of(key), figure))

    rows = [
        ("enqueue, one by one", "enqueue_one", "jobs/s"),
        (f"enqueue, bulk of {options['bulk_jobs']:,}", "enqueue_bulk", "jobs/s"),
        ("drain, 1 worker process", "drain_1", "jobs/s"),
        ("drain, 2 worker processes", "drain_2", "jobs/s"),
        ("enqueue-to-start p50 (PostgreSQL: NOTIFY; MariaDB: polls, 1.0 s)", "latency_p50", "ms"),
        ("enqueue-to-start p99 (same)", "latency_p99", "ms"),
        (f"enqueue-to-start p50, POLL_INTERVAL {tuned}", "latency_tuned_p50", "ms"),
        (f"enqueue-to-start p99, POLL_INTERVAL {tuned}", "latency_tuned_p99", "ms"),
    ]
    lines = [
        f"djtasks on MariaDB {context.get('mariadb', '')}, each figure with its ratio to the "
        "plain-MySQLdb baseline on MariaDB claiming 100 per statement in the same run "
        "(`bench/systems/baseline_mariadb/driver.py`: `SELECT ... FOR UPDATE SKIP LOCKED`, "
        "`UPDATE` by key, polling every second when idle); the PostgreSQL figures of this "
        "run beside them, as ratios to the PostgreSQL baseline. Medians:",
        "",
        "| figure | djtasks, MariaDB | × MariaDB baseline-100 | djtasks, PostgreSQL "
        "| × PostgreSQL baseline-100 | baseline-100, MariaDB | baseline-100, PostgreSQL |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figure, unit in rows:
        lines.append(
            f"| {name} | {cell(own, figure, unit)} | {vs(own, figure)} "
            f"| {cell('djtasks', figure, unit)} | {vs('djtasks', figure)} "
            f"| {cell(MARIADB_REFERENCE, figure, unit)} | {cell(REFERENCE, figure, unit)} |"
        )
    lines.append("")
    lines += _mariadb_anatomy(context, results)
    lines += _mariadb_polling(context, results)
    plan = notes.get(own, {}).get("explain_claim")
    if plan:
        lines += [
            f"The claim's locking `SELECT` of 100 jobs on a queue of {options['jobs']:,} "
            f"READY ones (`ANALYZE`, in a transaction rolled back): access `{plan['access']}` "
            f"on `{plan['index']}`, {plan['rows_read']:.0f} rows read, "
            f"{'a sort' if plan['sorted'] else 'no sort'}, {plan['milliseconds']:.2f} ms.",
            "",
        ]
    return lines


def _kinds(figures, prefix):
    """{statement kind: median} of the figures named ``<prefix>:<kind>``."""
    return {
        figure.split(":", 1)[1]: values["median"]
        for figure, values in figures.items()
        if figure.startswith(prefix + ":")
    }


def _mariadb_anatomy(context, results):
    labels = {"djtasks_mariadb": "djtasks", MARIADB_REFERENCE: "baseline-100"}
    # (system, figure prefix, the drain it explains, column heading)
    columns = [
        (key, prefix, drain, f"{labels[key]}, {processes}")
        for key in labels
        for prefix, drain, processes in (
            ("anatomy", "drain_1", "1 process"),
            ("anatomy2", "drain_2", "2 processes"),
        )
        if f"{prefix}_round_trips" in results.get(key, {})
    ]
    if not columns:
        return []
    jobs = context["options"].get("anatomy_jobs") or 0

    def row(name, figure, unit):
        cells = " | ".join(
            fmt(median(results, key, f"{prefix}_{figure}"), unit) for key, prefix, _, _ in columns
        )
        return f"| {name} | {cells} |"

    lines = [
        f"Per job of a drain of {jobs:,} jobs on MariaDB (the queue filled while the idle "
        "workers ran): what the workers sent the server (counted in them by wrapping "
        "MySQLdb: `bench/mysql_count.py`), how long they waited for the answers, and the "
        "CPU of the worker processes and of the server threads serving their connections, "
        "and how long those threads were runnable but waited for a CPU (`/proc/.../schedstat`; "
        "the server threads found by `information_schema.PROCESSLIST.TID`). Medians:",
        "",
        "| per job | " + " | ".join(heading for *_, heading in columns) + " |",
        "|---|" + "---|" * len(columns),
        row("round trips to the server", "round_trips", "/job"),
    ]
    kinds = {}
    for key, prefix, _, _ in columns:
        for kind in _kinds(results[key], f"{prefix}_count"):
            kinds.setdefault(kind, None)
    for kind in kinds:
        cells = []
        for key, prefix, _, _ in columns:
            count = median(results, key, f"{prefix}_count:{kind}")
            wait = median(results, key, f"{prefix}_wait:{kind}")
            cells.append("–" if count is None else f"{count:.3f} ({wait:.0f} µs)")
        lines.append(f"| … `{kind}` (waited) | {' | '.join(cells)} |")
    lines += [
        row("time waiting on the server, µs", "wait_us", "µs"),
        row("worker processes' CPU, µs", "worker_cpu_us", "µs"),
        row("… their threads runnable, waiting for a CPU, µs", "worker_queue_us", "µs"),
        row("MariaDB CPU on the workers' connections, µs", "server_cpu_us", "µs"),
        row("… those server threads waiting for a CPU, µs", "server_queue_us", "µs"),
    ]
    drains = []
    for key, _, drain, _ in columns:
        rate = median(results, key, drain)
        drains.append(f"{1e6 / rate:.0f} µs" if rate else "–")
    lines += [f"| wall time per job of the timed drain (1 / its rate) | {' | '.join(drains)} |", ""]
    return lines


def _mariadb_polling(context, results):
    keys = [key for key in ("djtasks_mariadb", MARIADB_REFERENCE) if key in results]
    keys = [key for key in keys if "idle_default_statements" in results[key]]
    if not keys:
        return []
    tuned = context["options"].get("tuned_poll_interval")
    labels = context["systems"]
    lines = [
        "Polling on MariaDB, where a worker has no NOTIFY to wake it: latency of a job "
        "enqueued into an idle worker, and what one idle worker process sends the server "
        "per second (all its statements; claims are its locking `SELECT`s). Medians:",
        "",
        "| POLL_INTERVAL | system | latency p50 / p99 ms | statements/s | claims/s "
        "| statements/s by kind |",
        "|---|---|---|---|---|---|",
    ]
    for name, interval, latency in (
        ("default", "1.0 (default)", "latency"),
        ("tuned", str(tuned), "latency_tuned"),
    ):
        for key in keys:
            figures = results[key]
            kinds = ", ".join(
                f"`{kind}` {rate:.1f}" for kind, rate in _kinds(figures, f"idle_{name}").items()
            )
            lines.append(
                f"| {interval} | {labels.get(key, key)} "
                f"| {fmt(median(results, key, latency + '_p50'), 'ms')} / "
                f"{fmt(median(results, key, latency + '_p99'), 'ms')} "
                f"| {fmt(median(results, key, f'idle_{name}_statements'), '/s')} "
                f"| {fmt(median(results, key, f'idle_{name}_claims'), '/s')} | {kinds} |"
            )
    return [*lines, ""]


def _mixed(context, results):
    options = context["options"]
    threads = options.get("threads")
    rows = []
    reference = median(results, REFERENCE, "drain_mixed")
    bound = mixed_bound(threads) if threads else None
    for key, label in context["systems"].items():
        rate = median(results, key, "drain_mixed")
        if rate is None:
            continue
        rows.append(
            f"| {label} | {fmt(rate, 'jobs/s')} | {ratio(rate, reference)} | {ratio(rate, bound)} |"
        )
    if not rows:
        return []
    return [
        f"Mixed load: {options.get('mixed_jobs', 0):,} jobs sleeping 1, 10 and 100 ms in turn, "
        f"one worker process running {threads} at a time (`--threads {threads}`, "
        f"`-c {threads}` threads pool, `--concurrency={threads}`, a concurrency_limit of "
        f"{threads} on the PgQueuer entrypoint; the baseline runs each claimed batch of 100 on "
        f"{threads} threads). The bound is {threads} jobs always running: "
        f"{fmt(bound, 'jobs/s')} jobs/s. Medians:",
        "",
        "| system | jobs/s | × baseline-100 | × the bound |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def _targets_18(context, results):
    """The benchmark targets of issue 18, as ratios within this run."""
    if "djtasks" not in results or REFERENCE not in results:
        return []
    rows = []

    def get(figure, key="djtasks"):
        return median(results, key, figure)

    def row(target, own, reference, bound, higher=True):
        if own is None or reference is None:
            return
        number = own / reference
        met = number >= bound if higher else number <= bound
        rows.append(f"| {target} | {number:.2f}× | {'yes' if met else '**no**'} |")

    row(
        "drain, one `runworker` ≥ 0.6× baseline-100", get("drain_1"), get("drain_1", REFERENCE), 0.6
    )
    best_key, best_rate = pgqueuer_best(results)
    if best_key:
        row(
            f"drain, one `runworker` ≥ 1.5× PgQueuer's best ({best_key}, 1 process)",
            get("drain_1"),
            best_rate,
            1.5,
        )
    row(
        "drain, two processes ≥ 0.6× baseline-100's two",
        get("drain_2"),
        get("drain_2", REFERENCE),
        0.6,
    )
    row(
        f"drain with {context['options']['history_rows']:,} finished rows ≥ 0.95× the empty "
        "table (drained next to it)",
        get("drain_history"),
        get("drain_history_empty") or get("drain_1"),
        0.95,
    )
    row(
        "enqueue one by one ≥ 0.75× the baseline's INSERT",
        get("enqueue_one"),
        get("enqueue_one", REFERENCE),
        0.75,
    )
    row(
        "bulk enqueue ≥ 0.5× the baseline's COPY",
        get("enqueue_bulk"),
        get("enqueue_bulk", REFERENCE),
        0.5,
    )
    row(
        "enqueue-to-start p50 ≤ 1.25× a bare NOTIFY's",
        get("latency_p50"),
        get("latency_p50", REFERENCE),
        1.25,
        higher=False,
    )
    row(
        "enqueue-to-start p99 ≤ 2× a bare NOTIFY's",
        get("latency_p99"),
        get("latency_p99", REFERENCE),
        2.0,
        higher=False,
    )
    rss = [value for figure in ("drain_1_rss", "drain_2_rss") if (value := get(figure))]
    if rss:
        rows.append(
            f"| worker RSS ≤ 60 MB per process | {max(rss):.0f} MB "
            f"| {'yes' if max(rss) <= 60 else '**no**'} |"
        )
    return [
        "djtasks against the benchmark targets of issue 18 (ratios of medians of this run):",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *rows,
        "",
    ]


def _targets(context, results):
    """The issue's targets against the medians of this run."""
    own = results.get("djtasks")
    if not own:
        return []
    history = context["options"]["history_rows"]

    def get(figure, key="djtasks"):
        return median(results, key, figure)

    rows = []
    peers_of = peers(results)

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
        rates = [value for key in peers_of if (value := get(figure, key)) is not None]
        if own_drain and rates:
            fastest = max(rates)
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
    empty = get("drain_history_empty") or drain_1
    if with_history and empty:
        cost = 1 - with_history / empty
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
    options = context["options"]
    names = {
        "history": f"{options['history_rows']:,}",
        "threads": options.get("threads"),
        "tuned": options.get("tuned_poll_interval"),
        "anatomy": f"{options.get('anatomy_jobs') or 0:,}",
    }
    lines = [
        "Every figure. *× baseline* is the median over the median of the plain-psycopg "
        "baseline claiming 100 jobs per statement, measured in the same run (for the "
        "djtasks-only rows: over the baseline's 1-process drain; for the MariaDB rows: "
        "over the plain-MySQLdb baseline's on MariaDB). Above 1× is faster for "
        "rates and slower for latencies, costs and counts.",
        "",
        "| system | figure | min | median | max | unit | × baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in context["systems"].items():
        figures = results.get(key, {})
        reference = results.get(reference_of(key), {})
        for figure, (name, unit, ref, _higher) in FIGURES.items():
            if figure not in figures:
                continue
            values = figures[figure]
            ref_value = reference.get(ref, {}).get("median") if ref else None
            lines.append(
                f"| {label} | {name.format(**names)} | "
                f"{fmt(values['min'], unit)} | {fmt(values['median'], unit)} | "
                f"{fmt(values['max'], unit)} | {unit} | {ratio(values['median'], ref_value)} |"
            )
    return [*lines, ""]
