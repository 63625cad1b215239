"""The "Several worker hosts" figures of docs/benchmarks.md, from a bench/hosts.py run.

Only the part between the two markers is rewritten; the prose around it
stays. A file without the markers gets the part appended.
"""

import statistics
import time

START = "<!-- bench:hosts:start (written by bench/hosts.py; edits here are lost) -->"
END = "<!-- bench:hosts:end -->"


def write(path, data):
    block = "\n".join([START, "", *render(data), "", END])
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text)


def median(results, *path):
    """The median over runs of one figure (None when a result lacks it)."""
    values = []
    for result in results:
        value = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def grouped(results):
    """{(setup, hosts): [results of each run]}, in the order measured."""
    groups = {}
    for result in results:
        groups.setdefault((result["setup"], result["hosts"]), []).append(result)
    return groups


def number(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def rate(results):
    """The median drain rate; "≥" when a drain was over between two counts."""
    bound = any(result["drain"].get("between_polls") for result in results)
    return ("≥ " if bound else "") + number(median(results, "drain", "rate"))


def times(value, reference):
    if not value or not reference:
        return "–"
    share = value / reference
    return f"{share:.2f}×" if share >= 0.1 else f"{share:.3f}×"


def render(data):
    context = data["context"]
    lines = header(context)
    groups = grouped(data["series"])
    counts = sorted({hosts for _setup, hosts in groups})
    djtasks_key = next(key for key, _hosts in groups if key.startswith("djtasks"))
    lines += series_table(groups, counts, djtasks_key, context)
    lines += budget_table(data, groups, djtasks_key)
    lines += cores_table(groups, counts, djtasks_key, context)
    lines += variants_table(data["variants"], groups, context)
    return lines


def header(context):
    machine = context["machine"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(context.get("started", time.time())))
    load_before = ", ".join(f"{value:.2f}" for value in context["load_before"])
    load_after = ", ".join(f"{value:.2f}" for value in context["load_after"])
    options = context["options"]
    versions = ", ".join(f"{name} {version}" for name, version in context["versions"].items())
    return [
        f"Run on {when} with `{context['command']}` ({context['seconds'] / 60:.0f} min).",
        "",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB "
        f"memory, Linux {machine['kernel']}; the hosts are network namespaces of it.",
        f"- Other load: the cores were {context['busy_before']}% busy in the 2 s before the run; "
        f"load average {load_before} at the start, {load_after} at the end.",
        f"- PostgreSQL {context['postgresql']}, a cluster of this run on the same machine, "
        "stock settings but `max_connections = 300`"
        + (" and pg_stat_statements" if context.get("pg_stat_statements") else "")
        + f". {versions}.",
        f"- Each drain: {options['jobs']:,} no-op jobs enqueued in one transaction into idle "
        f"workers; {options['runs']} run(s) per host count (medians). Latency: "
        f"{options['latency_jobs']} probes {options['latency_interval'] * 1000:.0f} ms apart.",
        "",
    ]


def series_table(groups, counts, djtasks_key, context):
    lines = [
        "By host count: djtasks (`runworker --processes "
        f"{context['options']['processes']}` per host) and its ratio to the baseline (plain "
        "psycopg, 100 per statement, the same number of processes per host) on the same hosts. "
        "CPU per job: over the drain, all of PostgreSQL's processes (in brackets: only the "
        "backends of the hosts' connections) and all worker processes.",
        "",
        "| hosts | drain jobs/s | × baseline (baseline jobs/s) | PostgreSQL CPU µs/job "
        "| × baseline | worker CPU µs/job | × baseline | statements / WAL bytes per job "
        "| connections held (P × (T + 2)) | latency p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count in counts:
        mine = groups[(djtasks_key, count)]
        base = groups.get(("baseline", count), [])
        mine_rate, base_rate = median(mine, "drain", "rate"), median(base, "drain", "rate")
        pg, base_pg = (
            median(mine, "drain", "cpu_us_per_job", "pg"),
            median(base, "drain", "cpu_us_per_job", "pg"),
        )
        pg_own = median(mine, "drain", "cpu_us_per_job", "pg_workers")
        work = median(mine, "drain", "cpu_us_per_job", "workers")
        base_work = median(base, "drain", "cpu_us_per_job", "workers")
        held = median(mine, "connections", "total")
        expected = mine[0]["expected_per_host"] * count
        lines.append(
            f"| {count} | {rate(mine)} | {times(mine_rate, base_rate)} ({rate(base)}) "
            f"| {number(pg)} ({number(pg_own)}) | {times(pg, base_pg)} "
            f"| {number(work)} | {times(work, base_work)} "
            f"| {number(median(mine, 'drain', 'statements_per_job'), 3)} / "
            f"{number(median(mine, 'drain', 'wal_bytes_per_job'))} "
            f"| {number(held)} ({expected}) "
            f"| {number(median(mine, 'latency', 'p50'), 1)} / "
            f"{number(median(mine, 'latency', 'p99'), 1)} |"
        )
    lines += ["", "The baseline's own figures:", ""]
    lines += [
        "| hosts | drain jobs/s | PostgreSQL CPU µs/job | worker CPU µs/job "
        "| statements / WAL bytes per job | connections held | latency p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for count in counts:
        base = groups.get(("baseline", count), [])
        if not base:
            continue
        lines.append(
            f"| {count} | {rate(base)} "
            f"| {number(median(base, 'drain', 'cpu_us_per_job', 'pg'))} "
            f"({number(median(base, 'drain', 'cpu_us_per_job', 'pg_workers'))}) "
            f"| {number(median(base, 'drain', 'cpu_us_per_job', 'workers'))} "
            f"| {number(median(base, 'drain', 'statements_per_job'), 3)} / "
            f"{number(median(base, 'drain', 'wal_bytes_per_job'))} "
            f"| {number(median(base, 'connections', 'total'))} "
            f"| {number(median(base, 'latency', 'p50'), 1)} / "
            f"{number(median(base, 'latency', 'p99'), 1)} |"
        )
    return [*lines, ""]


def budget_table(data, groups, djtasks_key):
    """PostgreSQL CPU per job and step, medians over every host count and run."""
    lines = [
        "What one job costs PostgreSQL, step by step (CPU µs of all of PostgreSQL's processes "
        "but the hosts' backends, unless said): enqueued in bulk (the drains' backlog: "
        "`bulk_enqueue` 10,000 per call, a `COPY` for the baseline, in one transaction); one "
        "by one, each its own transaction, back to back in one process with no worker "
        "running (the rate in brackets); one by one into idle workers (the latency probes, "
        "50 ms apart); claimed and completed in a drain (the hosts' backends only; all of "
        "PostgreSQL in brackets, the watcher's counts included). Medians over every host "
        "count and run.",
        "",
        "| system | enqueue, bulk | enqueue one by one, back to back "
        "| enqueue one by one, into idle workers | drain: claim and outcome |",
        "|---|---|---|---|---|",
    ]
    enqueue = data.get("enqueue", {})
    for key, name in ((djtasks_key, "djtasks"), ("baseline", "baseline")):
        results = [
            result for (setup, _), group in groups.items() if setup == key for result in group
        ]
        if not results:
            continue
        alone = enqueue.get(name, {})
        lines.append(
            f"| {name} | {number(median(results, 'drain', 'fill_pg_us_per_job'))} "
            f"| {number(alone.get('pg_us_per_job'))} ({number(alone.get('rate'))}/s) "
            f"| {number(median(results, 'latency', 'cpu_us_per_probe', 'pg_enqueue'))} "
            f"| {number(median(results, 'drain', 'cpu_us_per_job', 'pg_workers'))} "
            f"({number(median(results, 'drain', 'cpu_us_per_job', 'pg'))}) |"
        )
    return [*lines, ""]


def cores_table(groups, counts, djtasks_key, context):
    cores = context["machine"]["cores"]
    lines = [
        f"Where the machine's {cores} cores went during each drain (cores busy on average; "
        "bench: the watcher counting jobs every 25 ms, the CPU sampler; other: processes "
        "that are not this benchmark's):",
        "",
        "| hosts | system | PostgreSQL | workers | bench | other | all |",
        "|---|---|---|---|---|---|---|",
    ]
    for count in counts:
        for key, name in ((djtasks_key, "djtasks"), ("baseline", "baseline")):
            results = groups.get((key, count), [])
            if not results:
                continue
            shares = [
                number(median(results, "drain", "cores", part), 2)
                for part in ("pg", "workers", "bench", "other", "machine")
            ]
            lines.append(f"| {count} | {name} | " + " | ".join(shares) + " |")
    return [*lines, ""]


def variants_table(variants, groups, context):
    if not variants:
        return []
    count = variants[0]["hosts"]
    cores = context["machine"]["cores"]
    lines = [
        f"Fewer connections, on {count} hosts: the runworker options that hold fewer (this "
        f"machine has {cores} cores, so a bare `runworker` runs {cores} processes per host). "
        "Per probe: what one job enqueued into the idle workers costs, net of what they use "
        "idle: the workers' statements, and CPU of all of PostgreSQL, of the listeners' "
        "backends alone, and of the workers. Idle: CPU per second of the idle workers (polls, "
        "heartbeats) and of PostgreSQL. Medians of the runs.",
        "",
        "| on each host | connections held (formula) | of which LISTEN | drain jobs/s "
        "| PostgreSQL CPU µs/job | latency p50 / p99 ms | per probe: statements "
        "| per probe: PostgreSQL / listeners' backends / workers CPU µs "
        "| idle: PostgreSQL / workers CPU ms/s | private memory per backend MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = list(grouped(variants).values())
    rows += [groups[("baseline", count)]] if ("baseline", count) in groups else []
    for results in rows:
        first = results[0]
        probe = ("latency", "cpu_us_per_probe")
        lines.append(
            f"| {first['label']} | {number(median(results, 'connections', 'total'))} "
            f"({first['expected_per_host'] * count}) "
            f"| {number(median(results, 'connections', 'listeners'))} "
            f"| {rate(results)} | {number(median(results, 'drain', 'cpu_us_per_job', 'pg'))} "
            f"| {number(median(results, 'latency', 'p50'), 1)} / "
            f"{number(median(results, 'latency', 'p99'), 1)} "
            f"| {number(median(results, 'latency', 'worker_statements_per_probe'), 1)} "
            f"| {number(median(results, *probe, 'pg'))} / "
            f"{number(median(results, *probe, 'pg_listeners'))} / "
            f"{number(median(results, *probe, 'workers'))} "
            f"| {number(median(results, 'idle', 'pg') * 1000, 1)} / "
            f"{number(median(results, 'idle', 'workers') * 1000, 1)} "
            f"| {number(median(results, 'connections', 'backend_private_mb'), 1)} |"
        )
    return [*lines, ""]
