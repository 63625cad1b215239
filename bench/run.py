#!/usr/bin/env python3
"""Benchmark djtasks against its peers and a plain-SQL baseline, in one run.

    python bench/run.py               # everything; writes docs/benchmarks.md
    python bench/run.py --smoke       # djtasks only, tiny N, a few seconds
    python bench/run.py --help

DATABASE_URL names the PostgreSQL server and the base name of the databases
this creates and drops (default postgres://postgres@127.0.0.1:5432/djtasks_bench
gives djtasks_bench_djtasks, djtasks_bench_dtdb, ...). Celery uses REDIS_URL
(default redis://127.0.0.1:6379/7), Dramatiq DRAMATIQ_REDIS_URL (default
redis://127.0.0.1:6379/8); only those database numbers are flushed. A
redis-server is started if none answers and one is installed. djtasks and
the plain-SQL baseline run on MariaDB too, at --mariadb-url (default
mysql://root@127.0.0.1:3306/djtasks_bench, the same naming), when it
answers and the driver mysqlclient installs.

Each system runs in its own virtualenv under bench/.venvs/ (made on first
use), with its worker started the way its users start it, and with the same
driver protocol (bench/common.py) doing all the timing.
"""

import argparse
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import environment as env  # noqa: E402
import mysql_count  # noqa: E402
import report  # noqa: E402
from environment import BENCH, REPO, WORK, log  # noqa: E402

SYSTEMS = BENCH / "systems"


class System:
    """One system under test: where its driver is and how its workers start."""

    # Slow systems drain --slow-jobs instead of --jobs (a drain of 100,000
    # jobs at a few hundred per second would take many minutes).
    slow = False
    # Measured by the pgqueuer batch-size scan, not by Bench.measure's drains.
    scan_only = False

    def __init__(self, key, label, venv, directory, extra_env=None):
        self.key = key
        self.label = label
        self.venv = venv
        self.directory = SYSTEMS / directory
        self.extra_env = dict(extra_env or {})
        self.python = None  # set once the venv exists
        self.url = None  # DATABASE_URL (or REDIS_URL for Celery)

    def environ(self, **more):
        environ = dict(os.environ)
        # Never inherit another project's settings (pytest-django sets this):
        # manage.py and the drivers then pick the benchmark project's own.
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        paths = [str(BENCH), str(self.directory)]
        if self.venv is None:  # smoke mode: djtasks from this checkout
            paths.append(str(REPO))
        environ["PYTHONPATH"] = os.pathsep.join(paths)
        environ["DATABASE_URL"] = self.url or ""
        environ.update(self.extra_env)
        environ.update(more)
        return environ

    def driver(self, *args, timeout=900, **more_env):
        """Run one driver command; return its JSON answer."""
        done = subprocess.run(
            [self.python, str(self.directory / "driver.py"), *map(str, args)],
            cwd=self.directory,
            env=self.environ(**more_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"{self.key} driver {' '.join(map(str, args))} failed "
                f"(exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        answer = json.loads(lines[-1])
        if "error" in answer:
            raise RuntimeError(f"{self.key} driver {args[0]}: {answer['error']}")
        return answer

    def worker_commands(self, processes):
        """The command lines that give ``processes`` worker processes."""
        raise NotImplementedError

    def mixed_commands(self, threads):
        """One worker process running ``threads`` jobs at a time (None: not measured)."""
        return None

    def versions_name(self):
        """The key of environment.VERSIONED naming what this system runs on."""
        return self.venv or "djtasks"

    def database_suffix(self):
        """Appended to the base URL's database name (``<name>_<suffix>``)."""
        return self.venv or self.key


class Baseline(System):
    def __init__(self, batch, venv):
        super().__init__(
            f"baseline-{batch}",
            f"plain psycopg, SKIP LOCKED, {batch} per statement, NOTIFY",
            venv,
            "baseline",
        )
        self.batch = batch
        self.slow = batch == 1

    def worker_commands(self, processes):
        command = [self.python, str(self.directory / "driver.py"), "worker", str(self.batch)]
        return [command] * processes

    def mixed_commands(self, threads):
        if self.batch == 1:
            return None
        command = [self.python, str(self.directory / "driver.py"), "worker", str(self.batch)]
        return [[*command, str(threads)]]

    def versions_name(self):
        return "baseline"

    def database_suffix(self):
        return "baseline"


class MariadbSystem(System):
    """A system on MariaDB: its url is a mysql:// one (see --mariadb-url)."""

    def versions_name(self):
        return self.key.split("-")[0]


class BaselineMariadb(MariadbSystem):
    """The plain-SQL yardstick on MariaDB: MySQLdb, SKIP LOCKED, polling."""

    def __init__(self, batch, venv):
        super().__init__(
            f"baseline_mariadb-{batch}",
            f"plain MySQLdb on MariaDB, SKIP LOCKED, {batch} per statement, polls",
            venv,
            "baseline_mariadb",
        )
        self.batch = batch
        self.slow = batch == 1

    def worker_commands(self, processes):
        command = [self.python, str(self.directory / "driver.py"), "worker", str(self.batch)]
        return [command] * processes

    def database_suffix(self):
        return "baseline"


class Djtasks(System):
    def __init__(self, venv):
        super().__init__("djtasks", "djtasks, `manage.py runworker`", venv, "djtasks")
        self._has_processes = None

    def worker_commands(self, processes):
        command = [self.python, "manage.py", "runworker"]
        if self.has_processes_option():
            # One supervisor with ``processes`` worker children (the default
            # is one child per CPU, so it is always given).
            return [[*command, "--processes", str(processes)]]
        return [command] * processes

    def mixed_commands(self, threads):
        command = [self.python, "manage.py", "runworker", "--threads", str(threads)]
        if self.has_processes_option():
            command += ["--processes", "1"]
        return [command]

    def has_processes_option(self):
        if self._has_processes is None:
            done = subprocess.run(
                [self.python, "manage.py", "runworker", "--help"],
                cwd=self.directory,
                env=self.environ(),
                capture_output=True,
                text=True,
                check=False,
            )
            self._has_processes = "--processes" in done.stdout
        return self._has_processes


class DjtasksMariadb(MariadbSystem, Djtasks):
    def __init__(self, venv):
        Djtasks.__init__(self, venv)
        self.key = "djtasks_mariadb"
        self.label = "djtasks on MariaDB, `manage.py runworker`"

    def mixed_commands(self, threads):
        return None


class Dtdb(System):
    slow = True

    def __init__(self, venv):
        super().__init__(
            "dtdb", "django-tasks-db, `manage.py db_worker`, persistent connections", venv, "dtdb"
        )

    def worker_commands(self, processes):
        return [[self.python, "manage.py", "db_worker"]] * processes


class Procrastinate(System):
    slow = True

    def __init__(self, venv):
        super().__init__(
            "procrastinate", "procrastinate, `procrastinate worker`", venv, "procrastinate"
        )

    def worker_commands(self, processes):
        program = str(Path(self.python).parent / "procrastinate")
        return [[program, "--app=bench_procrastinate.app", "worker"]] * processes

    def mixed_commands(self, threads):
        program = str(Path(self.python).parent / "procrastinate")
        return [[program, "--app=bench_procrastinate.app", "worker", f"--concurrency={threads}"]]


class RedisSystem(System):
    """A system whose broker is Redis: its url is a Redis URL."""

    slow = True

    def redis_url(self):
        return os.environ.get("REDIS_URL") or env.DEFAULT_REDIS_URL

    def environ(self, **more):
        environ = super().environ(**more)
        environ["REDIS_URL"] = self.url
        return environ


class CeleryRedis(RedisSystem):
    def __init__(self, venv):
        super().__init__(
            "celery",
            "Celery, Redis broker, results off, `worker --pool prefork -c N`",
            venv,
            "celery",
        )

    def worker_commands(self, processes):
        program = str(Path(self.python).parent / "celery")
        return [
            [program, "-A", "bench_celery", "worker", "--pool", "prefork", "-c", str(processes)]
        ]

    def mixed_commands(self, threads):
        program = str(Path(self.python).parent / "celery")
        return [[program, "-A", "bench_celery", "worker", "--pool", "threads", "-c", str(threads)]]


class DramatiqRedis(RedisSystem):
    def __init__(self, venv):
        super().__init__(
            "dramatiq",
            "Dramatiq, Redis broker, `dramatiq --processes N` (8 threads each, its default)",
            venv,
            "dramatiq",
        )

    def redis_url(self):
        return os.environ.get("DRAMATIQ_REDIS_URL") or env.DEFAULT_DRAMATIQ_REDIS_URL

    def worker_commands(self, processes):
        program = str(Path(self.python).parent / "dramatiq")
        return [[program, "bench_dramatiq", "--processes", str(processes)]]

    def mixed_commands(self, threads):
        program = str(Path(self.python).parent / "dramatiq")
        return [[program, "bench_dramatiq", "--processes", "1", "--threads", str(threads)]]


class PgQueuer(System):
    """PgQueuer's own worker loop, ``pgq run``, at one ``--batch-size``."""

    DEFAULT_BATCH = 10  # pgq run's default --batch-size

    def __init__(self, batch, venv):
        default = " (its default)" if batch == self.DEFAULT_BATCH else ""
        super().__init__(
            f"pgqueuer-{batch}",
            f"PgQueuer, asyncpg, `pgq run --batch-size {batch}`{default}",
            venv,
            "pgqueuer",
        )
        self.batch = batch

    def command(self):
        program = str(Path(self.python).parent / "pgq")
        return [program, "run", "bench_pgqueuer:main", "--batch-size", str(self.batch)]

    def worker_commands(self, processes):
        return [self.command()] * processes

    def mixed_commands(self, threads):
        # BENCH_THREADS: the sleeping entrypoint's concurrency_limit.
        return [["env", f"BENCH_THREADS={threads}", *self.command()]]


def _die_with_parent():
    """In the forked child: get SIGTERM when run.py dies, even by SIGKILL.

    Workers run in their own session (so they can be stopped as a group);
    without this, a killed run.py would leave them running.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


# -- running workers -------------------------------------------------------------


class Workers:
    """Worker processes of one system, each in its own process group."""

    def __init__(self, system, processes, commands=None, **more_env):
        self.system = system
        self.processes = []
        logs = WORK / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if commands is None:
            commands = system.worker_commands(processes)
        for index, command in enumerate(commands):
            output = open(logs / f"{system.key}-worker-{index}.log", "ab")  # noqa: SIM115
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=system.directory,
                    env=system.environ(**more_env),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )
            output.close()

    def pids(self):
        """Every process of these workers (children too: prefork, --processes)."""
        found = []
        stack = [process.pid for process in self.processes]
        while stack:
            pid = stack.pop()
            found.append(pid)
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                # A process may exit while we look.
                with contextlib.suppress(OSError):
                    stack.extend(int(child) for child in children.read_text().split())
        return found

    def rss_mb(self):
        """The resident memory of each process, in MB."""
        sizes = []
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
        return sizes

    def alive(self):
        return all(process.poll() is None for process in self.processes)

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            # A child that outlived its parent (prefork, supervisor) would go
            # on claiming jobs from the next measurement: end the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# -- the measurements --------------------------------------------------------------


class Bench:
    def __init__(self, options):
        self.options = options
        self.results = {}  # system key -> figure -> [values]
        self.errors = {}  # system key -> message
        self.labels = {}  # system key -> label, in the order measured
        self.notes = {}  # system key -> what is not a figure (a query plan)

    def add(self, system, figure, value):
        self.labels.setdefault(system.key, system.label)
        self.results.setdefault(system.key, {}).setdefault(figure, []).append(value)

    def guarded(self, system, step, function, *args, **kwargs):
        """Run one step; a failure is reported, and the run goes on."""
        try:
            function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - one broken system must not stop the rest
            message = f"{step}: {error}"
            log(f"{system.key}: FAILED {message}")
            self.errors.setdefault(system.key, []).append(message)

    def enqueue(self, system):
        options = self.options
        for run in range(options.runs):
            system.driver("reset")
            answer = system.driver("enqueue-one", options.enqueue_jobs)
            self.add(system, "enqueue_one", answer["jobs"] / answer["seconds"])
            system.driver("reset")
            answer = system.driver("enqueue-bulk", options.bulk_jobs)
            if not answer.get("unsupported"):
                self.add(system, "enqueue_bulk", answer["jobs"] / answer["seconds"])
                self.add(system, "bulk_seconds", answer["seconds"])
            log(f"{system.key}: enqueue run {run + 1} done")

    def jobs_for(self, system):
        return self.options.slow_jobs if system.slow else self.options.jobs

    def drain(
        self,
        system,
        processes,
        figure,
        reset=True,
        jobs=None,
        fill="fill",
        commands=None,
        runs=None,
        run_number=0,
        checkpoint=False,
        **worker_env,
    ):
        """Fill the queue, start the workers, time the drain; once per run.

        ``run_number``: the first run's number, less one, in the log.
        ``checkpoint``: each drain starts after a CHECKPOINT (see checkpoint()).
        """
        jobs = jobs or self.jobs_for(system)
        for run in range(runs or self.options.runs):
            if reset:
                system.driver("reset")
            system.driver(fill, jobs, timeout=1800)
            if checkpoint:
                self.checkpoint(system)
            watch = subprocess.Popen(
                [
                    system.python,
                    str(system.directory / "driver.py"),
                    "watch",
                    str(jobs),
                    str(self.options.timeout),
                ],
                cwd=system.directory,
                env=system.environ(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                ready = watch.stdout.readline().strip()
                if ready != "ready":
                    raise RuntimeError(f"watch did not start: {ready} {watch.stderr.read()}")
                with Workers(system, processes, commands, **worker_env) as workers:
                    # A worker that dies at start-up must not leave the
                    # watcher waiting for its whole timeout.
                    while not select.select([watch.stdout], [], [], 1.0)[0]:
                        if not workers.alive():
                            raise RuntimeError(f"a worker process exited: see {WORK / 'logs'}")
                    answer = json.loads(watch.stdout.readline() or "{}")
                    rss = workers.rss_mb()
                    alive = workers.alive()
            finally:
                if watch.poll() is None:
                    watch.kill()
                watch.wait()
            if "rate" not in answer:
                raise RuntimeError(f"drain failed: {answer.get('error', answer)}")
            if answer.get("failed"):
                raise RuntimeError(f"{answer['failed']} jobs failed: see {WORK / 'logs'}")
            if not alive:
                raise RuntimeError("a worker process exited during the drain")
            if answer.get("unfinished"):
                # Recorded, with the reason the figure is of a partial drain.
                self.errors.setdefault(system.key, []).append(
                    f"{figure}: not drained within --timeout {self.options.timeout:.0f} s: "
                    f"{answer['unfinished']:,} of {jobs:,} jobs left; the figure is the rate "
                    f"of the {answer['jobs']:,} that finished in {answer['seconds']:.0f} s"
                )
            self.add(system, figure, answer["rate"])
            self.add(system, f"{figure}_jobs", jobs)
            if rss:
                self.add(system, f"{figure}_rss", max(rss))
            log(
                f"{system.key}: {figure} run {run_number + run + 1}: {answer['rate']:,.0f} jobs/s, "
                f"RSS {', '.join(f'{size:.0f}' for size in rss)} MB"
            )

    def history_drains(self, system):
        """Drains over a long history, each paired with one on an empty table.

        The history lives in a database of its own, so the two drains of a
        pair run back to back, in turns first: the machine's speed drifts
        between drains (the worker's own CPU per job, the same work in both,
        moved 64-85 us in twelve drains here), and a ratio of figures taken
        minutes apart measured that drift as much as the history.
        """
        full = history_variant(system)
        env.db_admin(system.python, "create", full.url)
        try:
            full.driver("setup")
            full.driver("history", self.options.history_rows, timeout=1800)
            for run in range(self.options.runs):
                pair = [(system, "drain_history_empty"), (full, "drain_history")]
                for target, figure in pair if run % 2 == 0 else pair[::-1]:
                    if target is full:
                        # The drained jobs join the history, vacuumed as
                        # autovacuum would have by then.
                        full.driver("vacuum", timeout=1800)
                    # Both drains of a pair start after a CHECKPOINT: the
                    # history's rows wrote some 600 MB of WAL and each drain
                    # writes some 150 MB, so with the stock max_wal_size
                    # (1 GB) a checkpoint they set off could fall inside one
                    # drain of a pair and not the other.
                    self.drain(
                        target,
                        1,
                        figure,
                        target is system,
                        runs=1,
                        run_number=run,
                        checkpoint=True,
                    )
        finally:
            if not self.options.keep_databases:
                env.db_admin(system.python, "drop", full.url)

    def latency(self, system, figure="latency", **worker_env):
        options = self.options
        system.driver("reset")
        # The drains before this wrote some 150 MB of WAL each, which sets
        # off checkpoints (stock max_wal_size): one falling in a latency run
        # put a p99 of 29 ms in it. Each system's latency starts from a
        # fresh checkpoint instead.
        self.checkpoint(system)
        path = WORK / f"probes-{system.key}.txt"
        with Workers(system, 1, **worker_env):
            for run in range(options.runs):
                answer = system.driver(
                    "latency",
                    options.latency_jobs,
                    options.latency_interval,
                    path,
                    options.timeout,
                )
                for name in ("p50", "p95", "p99"):
                    self.add(system, f"{figure}_{name}", answer[name])
                log(
                    f"{system.key}: {figure} run {run + 1}: p50 {answer['p50']:.1f} ms, "
                    f"p99 {answer['p99']:.1f} ms"
                )

    def checkpoint(self, system):
        """On PostgreSQL, a CHECKPOINT now, so none is set off by what ran before."""
        if not system.url.startswith("postgres"):
            return
        own = system.venv in (None, "djtasks")  # the Pythons that have psycopg
        python = system.python if own else env.venv_python("djtasks")
        env.pg_admin(python, "checkpoint", system.url)

    def mixed(self, system):
        """The mixed load: 1, 10 and 100 ms sleeps, one process, --threads jobs at once."""
        commands = system.mixed_commands(self.options.threads)
        if commands is None:
            return
        self.guarded(
            system,
            "mixed load",
            self.drain,
            system,
            1,
            "drain_mixed",
            jobs=self.options.mixed_jobs,
            fill="fill-mixed",
            commands=commands,
        )

    def measure(self, system):
        log(f"== {system.label}")
        self.guarded(system, "setup", system.driver, "setup")
        if system.key in self.errors:
            return
        self.guarded(system, "enqueue", self.enqueue, system)
        self.guarded(system, "drain, 1 process", self.drain, system, 1, "drain_1")
        self.guarded(system, "drain, 2 processes", self.drain, system, 2, "drain_2")
        self.guarded(system, "latency", self.latency, system)
        self.mixed(system)

    def pgqueuer_scan(self, default, candidates):
        """Drain once per batch size; measure the fastest like the default.

        Returns the system measured as PgQueuer's best (None: the default).
        """
        rates = {default.batch: median_of(self.results, default.key, "drain_1")}
        systems = {}
        for batch in candidates:
            if batch == default.batch:
                continue
            system = PgQueuer(batch, default.venv)
            system.python, system.url = default.python, default.url
            systems[batch] = system
            self.guarded(system, "batch-size scan", self.drain, system, 1, "drain_scan", runs=1)
            rates[batch] = median_of(self.results, system.key, "drain_scan")
        measured = {batch: rate for batch, rate in rates.items() if rate}
        if not measured:
            return None
        best = max(measured, key=measured.get)
        log(f"pgqueuer: batch-size scan {measured}; best {best}")
        if best == default.batch:
            return None
        system = systems[best]
        system.label += ", the fastest of the scan"
        self.guarded(system, "drain, 1 process", self.drain, system, 1, "drain_1")
        self.guarded(system, "drain, 2 processes", self.drain, system, 2, "drain_2")
        return system

    def enqueue_prepared(self, system):
        """One-by-one enqueue with psycopg preparing the INSERT (opt-in)."""
        for _ in range(self.options.runs):
            system.driver("reset")
            answer = system.driver(
                "enqueue-one", self.options.enqueue_jobs, BENCH_PREPARE_THRESHOLD="5"
            )
            self.add(system, "enqueue_one_prepared", answer["jobs"] / answer["seconds"])

    def djtasks_extras(self, system, sqlite_system):
        options = self.options
        if system.url and system.url.startswith("postgres"):
            self.guarded(system, "enqueue, prepared", self.enqueue_prepared, system)
        if not options.smoke:
            # Django's default LOGGING makes django.tasks build an INFO record
            # for every start and finish; this is the same drain without them.
            self.guarded(
                system,
                "drain, quiet log",
                self.drain,
                system,
                1,
                "drain_quiet_log",
                True,
                BENCH_QUIET_TASK_LOG="1",
            )
        if system.url and system.url.startswith("postgres") and options.history_rows:
            self.guarded(system, "drain with history", self.history_drains, system)
        if sqlite_system is not None:
            self.guarded(sqlite_system, "setup", sqlite_system.driver, "setup")
            self.guarded(
                sqlite_system, "drain on SQLite", self.drain, sqlite_system, 1, "drain_sqlite"
            )

    # -- MariaDB: polling, statements, CPU per job -------------------------------------

    def mariadb_extras(self, system):
        """What its polling costs a MariaDB system, and what bounds its drain."""
        tuned = str(self.options.tuned_poll_interval)
        self.guarded(
            system,
            "latency, tuned POLL_INTERVAL",
            self.latency,
            system,
            "latency_tuned",
            BENCH_POLL_INTERVAL=tuned,
        )
        for name, interval in (("default", None), ("tuned", tuned)):
            self.guarded(
                system,
                f"idle statements, {name} POLL_INTERVAL",
                self.idle_statements,
                system,
                name,
                interval,
            )
        # The smoke keeps to one process: the second adds seconds, not code.
        counts = ((1, "anatomy"),) if self.options.smoke else ((1, "anatomy"), (2, "anatomy2"))
        for processes, prefix in counts:
            self.guarded(
                system,
                f"statements and CPU per job, {processes} processes",
                self.anatomy,
                system,
                processes,
                prefix,
            )
        if isinstance(system, Djtasks):
            self.guarded(system, "EXPLAIN of the claim", self.explain, system)

    def count_dir(self, system, name):
        """A fresh directory for bench/mysql_count.py's files."""
        directory = WORK / "counts" / f"{system.key}-{name}"
        shutil.rmtree(directory, ignore_errors=True)
        return directory

    def wait_for_claims(self, directory, workers, processes=1):
        """Wait until each worker process has claimed: connected, and idle after it."""
        deadline = time.monotonic() + self.options.timeout
        while len(_claimed(directory)) < processes:
            if not workers.alive():
                raise RuntimeError(f"a worker process exited: see {WORK / 'logs'}")
            if time.monotonic() > deadline:
                raise RuntimeError("the worker made no claim")
            time.sleep(0.05)

    def idle_statements(self, system, name, interval):
        """What one idle worker process sends the server per second, by kind."""
        environ = {"BENCH_POLL_INTERVAL": interval} if interval else {}
        for run in range(self.options.runs):
            directory = self.count_dir(system, f"idle-{name}")
            system.driver("reset")
            with Workers(system, 1, BENCH_COUNT_DIR=str(directory), **environ) as workers:
                self.wait_for_claims(directory, workers)
                # Past the statements of the start-up.
                time.sleep(min(1.0, self.options.idle_seconds / 2))
                before, started = mysql_count.read(directory), time.monotonic()
                time.sleep(self.options.idle_seconds)
                counted = mysql_count.difference(mysql_count.read(directory), before)
                seconds = time.monotonic() - started
            for kind, (count, _) in counted.items():
                self.add(system, f"idle_{name}:{kind}", count / seconds)
            total = sum(count for count, _ in counted.values()) / seconds
            claims = counted.get("SELECT ... FOR UPDATE", (0, 0))[0] / seconds
            self.add(system, f"idle_{name}_statements", total)
            self.add(system, f"idle_{name}_claims", claims)
            log(
                f"{system.key}: idle, {name} POLL_INTERVAL, run {run + 1}: "
                f"{total:.1f} statements/s, {claims:.1f} claims/s"
            )

    def anatomy(self, system, processes, prefix):
        """Per job of a drain: statements, time waiting on them, CPU (``<prefix>_*``).

        The server's CPU is that of the threads serving the workers'
        connections, which the workers report themselves (mysql_count: each
        new connection asks for its thread), so connections a worker opens
        while busy (claim-ahead helpers) count too, and the fill's and the
        waiter's, and whatever else the shared server does, do not. Each
        thread's time is taken before the fill and after the drain; a thread
        first met then (a helper's, perhaps out of the server's thread
        cache) counts from its time before the fill.
        """
        jobs = self.options.anatomy_jobs
        server = env.server_pid()
        for run in range(self.options.runs):
            directory = self.count_dir(system, "drain")
            system.driver("reset")
            with Workers(system, processes, BENCH_COUNT_DIR=str(directory)) as workers:
                self.wait_for_claims(directory, workers, processes)
                time.sleep(0.5)
                sample = (directory, workers.pids(), server)
                before = _sample(*sample)
                system.driver("fill", jobs, timeout=1800)
                left = system.driver("wait-empty", self.options.timeout)["remaining"]
                # The workers write their counts every WRITE_INTERVAL.
                time.sleep(3 * mysql_count.WRITE_INTERVAL)
                after = _sample(*sample)
            if left:
                raise RuntimeError(f"{left} of {jobs} jobs not drained within --timeout")
            counted = mysql_count.difference(after[0], before[0])
            for kind, (count, seconds) in counted.items():
                self.add(system, f"{prefix}_count:{kind}", count / jobs)
                self.add(system, f"{prefix}_wait:{kind}", seconds / jobs * 1e6)
            round_trips = sum(count for count, _ in counted.values()) / jobs
            waited = sum(seconds for _, seconds in counted.values()) / jobs * 1e6
            worker, worker_queue = ((after[i] - before[i]) / jobs * 1e6 for i in (1, 3))
            server_us, server_queue = (
                seconds / jobs * 1e6
                for seconds in _server_seconds(
                    before[2], after[2], mysql_count.read_tids(directory)
                )
            )
            self.add(system, f"{prefix}_round_trips", round_trips)
            self.add(system, f"{prefix}_wait_us", waited)
            self.add(system, f"{prefix}_worker_cpu_us", worker)
            self.add(system, f"{prefix}_worker_queue_us", worker_queue)
            if server:
                self.add(system, f"{prefix}_server_cpu_us", server_us)
                self.add(system, f"{prefix}_server_queue_us", server_queue)
            log(
                f"{system.key}: per job, {processes} process{'es' if processes > 1 else ''}, "
                f"run {run + 1}: "
                f"{round_trips:.2f} round trips ({waited:.0f} µs waited), "
                f"worker CPU {worker:.0f} µs, server CPU {server_us:.0f} µs"
            )

    def explain(self, system):
        """The plan and one timed run of the claim's SELECT on a full queue."""
        system.driver("reset")
        system.driver("fill", self.options.jobs, timeout=1800)
        answer = system.driver("explain-claim", 100)
        system.driver("reset")
        self.notes.setdefault(system.key, {})["explain_claim"] = answer
        if answer.get("milliseconds") is not None:
            self.add(system, "claim_ms", answer["milliseconds"])
        log(f"{system.key}: claim of 100: {answer}")


def _claimed(directory):
    """The count files of the processes that made a claim."""
    return [
        path
        for path in mysql_count.count_files(directory)
        if mysql_count.read_file(path).get("SELECT ... FOR UPDATE", (0, 0))[0]
    ]


def _sample(directory, pids, server):
    """Statement counts; workers' CPU s; {server thread: (CPU s, s waiting
    for a CPU)} of every thread of the server; the seconds the workers
    waited for a CPU."""
    workers = [env.thread_schedule_seconds(pid) for pid in pids]
    return (
        mysql_count.read(directory),
        sum(used for used, _ in workers),
        env.thread_schedule_by_thread(server) if server else {},
        sum(waited for _, waited in workers),
    )


def _server_seconds(before, after, tids):
    """(CPU s, s waiting for a CPU) of these server threads between two samples."""
    on_cpu = queued = 0.0
    for tid in tids:
        end = after.get(tid)
        if end is None:
            continue  # ended (the server's thread cache was full): not counted
        start = before.get(tid, (0.0, 0.0))
        on_cpu += end[0] - start[0]
        queued += end[1] - start[1]
    return on_cpu, queued


def median_of(results, key, figure):
    values = results.get(key, {}).get(figure)
    return statistics.median(values) if values else None


def summarize(values):
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "runs": len(values),
    }


# -- main -------------------------------------------------------------------------------

ALL_SYSTEMS = (
    "baseline",
    "djtasks",
    "baseline_mariadb",
    "djtasks_mariadb",
    "pgqueuer",
    "dramatiq",
    "dtdb",
    "procrastinate",
    "celery",
)
# What --smoke can run on this checkout's interpreter, without a venv.
SMOKE_SYSTEMS = {"djtasks", "djtasks_mariadb", "baseline_mariadb"}
MARIADB_SYSTEMS = ("baseline_mariadb", "djtasks_mariadb")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="djtasks only (or --systems among djtasks, djtasks_mariadb, baseline_mariadb), "
        "tiny N, no virtualenvs (the test suite runs this)",
    )
    parser.add_argument(
        "--systems",
        help=f"comma-separated subset (default: all: {','.join(ALL_SYSTEMS)}; "
        "the MariaDB ones when MariaDB answers and mysqlclient installs)",
    )
    parser.add_argument(
        "--mariadb-url",
        default=env.DEFAULT_MARIADB_URL,
        help="the MariaDB server and base database name for baseline_mariadb and "
        f"djtasks_mariadb (default {env.DEFAULT_MARIADB_URL})",
    )
    parser.add_argument(
        "--tuned-poll-interval",
        type=float,
        default=0.1,
        help="the POLL_INTERVAL measured beside the default 1.0 on MariaDB (0.1)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        help="seconds an idle MariaDB worker's statements are counted (5; smoke 1)",
    )
    parser.add_argument(
        "--anatomy-jobs",
        type=int,
        help="jobs of the MariaDB drain whose statements and CPU are counted (20000)",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; smoke 1)")
    parser.add_argument("--jobs", type=int, help="jobs per drain (default 100000)")
    parser.add_argument(
        "--slow-jobs",
        type=int,
        help="jobs per drain of the systems under ~2,000 jobs/s: baseline-1, "
        "Dramatiq, Celery, procrastinate, django-tasks-db (default 10000)",
    )
    parser.add_argument(
        "--mixed-jobs", type=int, help="sleeping jobs (1/10/100 ms) of the mixed load (2400)"
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="jobs at once in the mixed load (default 8)"
    )
    parser.add_argument(
        "--pgqueuer-batches",
        default="10,25,50,100,250",
        help="pgq run --batch-size values to scan for PgQueuer's best (default 10,25,50,100,250)",
    )
    parser.add_argument("--enqueue-jobs", type=int, help="one-by-one enqueues per run (2000)")
    parser.add_argument("--bulk-jobs", type=int, help="jobs per bulk enqueue (10000)")
    parser.add_argument("--latency-jobs", type=int, help="probes per latency run (200)")
    parser.add_argument(
        "--latency-interval", type=float, default=0.05, help="seconds between probes (0.05)"
    )
    parser.add_argument(
        "--history-rows", type=int, help="finished rows for the djtasks history drain (1000000)"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite drain")
    parser.add_argument(
        "--timeout", type=float, help="seconds a drain or latency run may take (600; smoke 60)"
    )
    parser.add_argument(
        "--output", help="report file (default docs/benchmarks.md; smoke: bench/.work/smoke.md)"
    )
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument(
        "--report-from",
        metavar="JSON",
        help="measure nothing: rewrite the report from a results.json of an earlier run",
    )
    options = parser.parse_args(argv)
    smoke = options.smoke
    defaults = {
        "runs": (1, 3),
        "jobs": (200, 100_000),
        "slow_jobs": (200, 10_000),
        "mixed_jobs": (30, 2_400),
        "enqueue_jobs": (50, 2_000),
        "bulk_jobs": (200, 10_000),
        "latency_jobs": (10, 200),
        "history_rows": (1_000, 1_000_000),
        "timeout": (60, 600),
        "idle_seconds": (1.0, 5.0),
        "anatomy_jobs": (200, 20_000),
    }
    for name, (small, full) in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, small if smoke else full)
    if options.output is None:
        options.output = str(WORK / "smoke.md" if smoke else REPO / "docs" / "benchmarks.md")
    if smoke:
        options.systems = options.systems or "djtasks"
        options.latency_interval = min(options.latency_interval, 0.02)
    options.systems = [
        name.strip() for name in (options.systems or ",".join(ALL_SYSTEMS)).split(",")
    ]
    options.systems = [name for name in options.systems if name]
    if smoke and set(options.systems) - SMOKE_SYSTEMS:
        parser.error(f"--smoke measures only {', '.join(sorted(SMOKE_SYSTEMS))}")
    options.pgqueuer_batches = [int(value) for value in options.pgqueuer_batches.split(",")]
    return options


def build_systems(options, base_url, left_out):
    """The systems to measure, with their venvs installed and their URLs set.

    Those that cannot run here are left out, with the reason in ``left_out``.
    """
    wanted = options.systems
    systems = []
    if options.smoke:
        if "djtasks" in wanted:
            systems.append(Djtasks(None))
        systems += mariadb_systems(wanted, None, batches=(100,))
        for system in systems:
            system.python = sys.executable
    else:
        djtasks_python = env.ensure_venv("djtasks")
        if "baseline" in wanted:
            systems += [Baseline(1, "djtasks"), Baseline(100, "djtasks")]
        if "djtasks" in wanted:
            systems.append(Djtasks("djtasks"))
        systems += mariadb_systems(wanted, "djtasks", batches=(1, 100))
        if "pgqueuer" in wanted:
            systems.append(PgQueuer(PgQueuer.DEFAULT_BATCH, "pgqueuer"))
        if "dramatiq" in wanted:
            systems.append(DramatiqRedis("dramatiq"))
        if "dtdb" in wanted:
            systems.append(Dtdb("dtdb"))
        if "procrastinate" in wanted:
            systems.append(Procrastinate("procrastinate"))
        if "celery" in wanted:
            systems.append(CeleryRedis("celery"))
        for system in systems:
            system.python = (
                djtasks_python if system.venv == "djtasks" else env.ensure_venv(system.venv)
            )
    mariadb = [system for system in systems if isinstance(system, MariadbSystem)]
    why = mariadb and mariadb_unusable(mariadb[0].python, options)
    if why:
        log(f"{', '.join(system.key for system in mariadb)} left out: {why}")
        left_out.update({system.key: why for system in mariadb})
        systems = [system for system in systems if not isinstance(system, MariadbSystem)]
    # Smoke runs may overlap (test suites of several checkouts): give each
    # its own databases.
    prefix = f"smoke{os.getpid()}_" if options.smoke else ""
    for system in systems:
        if isinstance(system, RedisSystem):
            system.url = system.redis_url()
        elif isinstance(system, MariadbSystem):
            system.url = env.database_url(options.mariadb_url, prefix + system.database_suffix())
        elif base_url.startswith("sqlite"):
            system.url = base_url
        else:
            system.url = env.database_url(base_url, prefix + system.database_suffix())
    return systems


def mariadb_systems(wanted, venv, batches):
    systems = []
    if "baseline_mariadb" in wanted:
        systems += [BaselineMariadb(batch, venv) for batch in batches]
    if "djtasks_mariadb" in wanted:
        systems.append(DjtasksMariadb(venv))
    return systems


def mariadb_unusable(python, options):
    """Why the MariaDB systems cannot run here (None: they can)."""
    if options.smoke:
        # The test suite's interpreter: its MariaDB legs install the driver.
        if not env.imports(python, "MySQLdb"):
            return f"{python} has no MySQLdb (pip install mysqlclient)"
    else:
        why = env.ensure_mysql_driver(python)
        if why:
            return why
    try:
        env.mysql_admin(python, "version", options.mariadb_url)
    except subprocess.CalledProcessError as error:
        last = (error.stderr.strip().splitlines() or ["?"])[-1]
        return f"no MariaDB answers at {options.mariadb_url} ({last})"
    return None


def history_variant(djtasks):
    """The djtasks system again (its figures under its key), on a database of its own."""
    system = Djtasks(djtasks.venv)
    system.python = djtasks.python
    system.url = env.database_url(djtasks.url, "history")
    return system


def sqlite_variant(djtasks, options):
    """The djtasks system again, on a fresh SQLite file."""
    path = WORK / ("smoke.sqlite3" if options.smoke else "djtasks.sqlite3")
    for leftover in WORK.glob(path.name + "*"):
        leftover.unlink()
    system = Djtasks(djtasks.venv)
    system.key = "djtasks_sqlite"
    system.label = "djtasks on SQLite (WAL, IMMEDIATE)"
    system.python = djtasks.python
    system.url = f"sqlite:///{path}"
    return system


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options.report_from:
        report.write(Path(options.output), json.loads(Path(options.report_from).read_text()))
        return 0
    # A SIGTERM unwinds like an error: workers stopped, databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    base_url = os.environ.get("DATABASE_URL") or env.DEFAULT_DATABASE_URL
    if options.smoke and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        base_url = f"sqlite:///{WORK / 'smoke-main.sqlite3'}"
        for leftover in WORK.glob("smoke-main.sqlite3*"):
            leftover.unlink()
    context = {
        "machine": env.machine(),
        "busy_before": env.cpu_busy_percent(),
        "load_before": os.getloadavg(),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "options": {key: value for key, value in vars(options).items() if key != "output"},
    }
    left_out = context["left_out"] = {}
    systems = build_systems(options, base_url, left_out)
    redis_process = None
    redis = [system for system in systems if isinstance(system, RedisSystem)]
    if redis:
        usable, redis_process = env.ensure_redis(redis[0].url)
        if not usable:
            log("no Redis and no redis-server: Celery and Dramatiq are left out")
            left_out.update({system.key: "no Redis and no redis-server" for system in redis})
            systems = [system for system in systems if not isinstance(system, RedisSystem)]
            redis = []
    # The djtasks venv (made in every full run) has psycopg for pg_admin;
    # a MariaDB system's own python has MySQLdb.
    pg_python = next(
        (system.python for system in systems if system.venv in (None, "djtasks")),
        env.venv_python("djtasks"),
    )
    admins = {}  # database URL -> the python that creates and drops it
    for system in systems:
        if system.url.startswith(("postgres", "mysql")):
            python = system.python if isinstance(system, MariadbSystem) else pg_python
            admins.setdefault(system.url, python)
    bench = Bench(options)
    try:
        for url, python in admins.items():
            env.db_admin(python, "create", url)
        for name, scheme in (("postgresql", "postgres"), ("mariadb", "mysql")):
            first = next((url for url in admins if url.startswith(scheme)), None)
            if first:
                context[name] = env.db_admin(admins[first], "version", first)
        if redis:
            context["redis"] = env.redis_version(redis[0].url)
        context["versions"] = {}
        for system in systems:
            name = system.versions_name()
            if name not in context["versions"]:
                context["versions"][name] = env.versions(system.python, env.VERSIONED[name])
        for system in systems:
            bench.measure(system)
            if isinstance(system, PgQueuer):
                # The scan's systems report under their own keys (bench.labels).
                bench.pgqueuer_scan(system, options.pgqueuer_batches)
            elif isinstance(system, MariadbSystem):
                if not system.slow:  # baseline_mariadb-100 and djtasks_mariadb
                    bench.mariadb_extras(system)
            elif isinstance(system, Djtasks):
                sqlite = None if options.no_sqlite else sqlite_variant(system, options)
                if sqlite is not None and system.url.startswith("sqlite"):
                    sqlite = None  # the main run was on SQLite already
                bench.djtasks_extras(system, sqlite)
    finally:
        if not options.keep_databases:
            for url, python in admins.items():
                try:
                    env.db_admin(python, "drop", url)
                except subprocess.CalledProcessError as error:
                    log(f"could not drop {url}: {error.stderr}")
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()
    context["load_after"] = os.getloadavg()
    context["seconds"] = time.time() - started
    context["systems"] = {**bench.labels, **{s.key: s.label for s in systems}}
    djtasks = [system for system in systems if isinstance(system, Djtasks)]
    context["djtasks_processes_option"] = (
        any(system._has_processes for system in djtasks) if djtasks else None
    )
    summary = {
        key: {figure: summarize(values) for figure, values in figures.items()}
        for key, figures in bench.results.items()
    }
    data = {
        "context": context,
        "results": summary,
        "raw": bench.results,
        "errors": bench.errors,
        "notes": bench.notes,
    }
    (WORK / ("smoke.json" if options.smoke else "results.json")).write_text(
        json.dumps(data, indent=2)
    )
    report.write(Path(options.output), data)
    log(f"wrote {options.output} in {context['seconds']:.0f} s")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
