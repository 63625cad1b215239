#!/usr/bin/env python3
"""Several worker hosts against one PostgreSQL: drain rate, CPU per job, connections.

    sudo python bench/hosts.py           # 1, 2, 4, 8 hosts; rewrites its part of docs/benchmarks.md
    sudo python bench/hosts.py --smoke   # 2 hosts, a few hundred jobs, seconds (the tests run this)
    sudo python bench/hosts.py --check   # can this machine run it? (exit 0: yes)

A "host" is a network namespace of this machine (``ip netns``) with a veth
pair to the root namespace and a private /30 in 10.231.0.0/16 (addresses of
this machine only); its workers reach PostgreSQL over that pair, as a worker
host reaches its primary over the network. PostgreSQL is a throwaway cluster
of this run (initdb under bench/.work, a free port, trust only for 127.0.0.1
and the hosts' addresses), never the system's server.

For each host count: the workers start on every host and go idle, a backlog
of no-op jobs appears in one transaction (so every host starts at once), and
the watcher of bench/common.py times the drain. Meanwhile /proc gives the
CPU time of PostgreSQL's processes and of the workers, and pg_stat_activity
the connections of each host. The plain-SQL baseline (batch 100) runs on the
same hosts, so every figure has its ratio measured in the same run. Then, at
the largest host count, the runworker options that hold fewer connections.

Linux and root only; standard library only, like run.py (the workers and
drivers run in the djtasks venv of bench/run.py).
"""

import argparse
import bisect
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as bench_common  # noqa: E402
import environment as env  # noqa: E402
import run as bench_run  # noqa: E402
from environment import BENCH, REPO, WORK, log  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.reliability import pgserver  # noqa: E402

# Names carry the pid of the run that made them: concurrent runs (test legs)
# never share one, and a leftover whose run is dead can be told apart.
NAMESPACE = "djtbench{pid}_h{index}"
LINK = "djb{pid}h{index}"  # an interface name has 15 characters at most
LEFTOVER_NAMESPACE = re.compile(r"^djtbench(\d+)_h\d+$")
LEFTOVER_LINK = re.compile(r"^\d+: (djb(\d+)h\d+)[@:]")
# Clusters always go here (not to BENCH_WORK_DIR), so the next run finds a
# dead run's cluster and stops it; to the temporary directory where the
# postgres account cannot reach into the checkout (under /root, say).
CLUSTERS = BENCH / ".work"
CLUSTER_PREFIX = "hosts-pg-{pid}-"
LEFTOVER_CLUSTER = re.compile(r"^hosts-pg-(\d+)-")
# Host k of a run: 10.231.X.(4k-3) on the root side, 10.231.X.(4k-2) on its own.
SUBNET = "10.231"
# Serialises the choice of X between runs that start at the same time.
LOCK = Path("/tmp/djtbench-hosts.lock")

# The role of the watcher and the fill: pg_stat_statements then tells the
# workers' statements (role postgres) from the benchmark's own.
WATCH_ROLE = "djtbench_watch"
DATABASES = {"djtasks": "hosts_djtasks", "baseline": "hosts_baseline"}
# Stock settings but these: room for the connection variants, and
# pg_stat_statements to count the workers' statements.
SERVER_SETTINGS = ("max_connections=300",)
STATEMENTS_LIBRARY = "shared_preload_libraries=pg_stat_statements"

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Seconds between two CPU samples (each reads /proc/<pid>/task/*/schedstat of
# every PostgreSQL and worker process: about 1% of a core at this interval).
SAMPLE_INTERVAL = 0.2
# Seconds between two connection counts while a drain runs.
CONNECTION_INTERVAL = 0.5
# Worker connections must stay unchanged this long to count as settled
# (UNEXPECTED_SETTLE when they are not the documented count).
SETTLE_SECONDS = 1.5
UNEXPECTED_SETTLE = 5.0


# -- can this machine run it? ----------------------------------------------------


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def platform_problem():
    """Why this machine cannot run the benchmark, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "ip netns needs root (run as root, e.g. with sudo)"
    for program in ("ip", "runuser"):
        if shutil.which(program) is None:
            return f"no {program} command"
    if not pgserver.available():
        return f"no PostgreSQL server binaries (initdb, pg_ctl) in {pgserver.PG_BIN}"
    namespace, link = (
        NAMESPACE.format(pid=os.getpid(), index=0),
        LINK.format(pid=os.getpid(), index=0),
    )
    try:
        ip("netns", "add", namespace)
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    except subprocess.CalledProcessError as error:
        return f"`{' '.join(error.cmd)}` failed: {error.stderr.strip()}"
    finally:
        ip("link", "del", link, check=False)
        ip("netns", "del", namespace, check=False)
    return None


# -- hosts: network namespaces -----------------------------------------------------


class Host:
    """One namespace, its veth pair and its two addresses."""

    def __init__(self, index, subnet):
        pid = os.getpid()
        self.index = index
        self.namespace = NAMESPACE.format(pid=pid, index=index)
        self.link = LINK.format(pid=pid, index=index)
        self.root_address = f"{subnet}.{4 * index - 3}"  # PostgreSQL listens here
        self.address = f"{subnet}.{4 * index - 2}"  # the host's workers connect from here

    def create(self):
        ip("netns", "add", self.namespace)
        # The peer is born inside the namespace: no name clash in ours.
        peer = ("peer", "name", "eth0", "netns", self.namespace)
        ip("link", "add", self.link, "type", "veth", *peer)
        ip("addr", "add", f"{self.root_address}/30", "dev", self.link)
        ip("link", "set", self.link, "up")
        ip("-n", self.namespace, "addr", "add", f"{self.address}/30", "dev", "eth0")
        ip("-n", self.namespace, "link", "set", "eth0", "up")
        ip("-n", self.namespace, "link", "set", "lo", "up")

    def remove(self):
        # Deleting the namespace deletes the veth end in it, and so the pair.
        ip("netns", "del", self.namespace, check=False)
        ip("link", "del", self.link, check=False)

    def wrap(self, command, url):
        """``command`` run on this host, with DATABASE_URL ``url``."""
        return ["ip", "netns", "exec", self.namespace, "env", f"DATABASE_URL={url}", *command]


def free_subnet():
    """A 10.231.X prefix that no address of this machine uses yet."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", ip("-o", "-4", "addr").stdout))
    for octet in range(1, 255):
        if str(octet) not in used:
            return f"{SUBNET}.{octet}"
    raise RuntimeError(f"every {SUBNET}.X.0/24 is in use")


def make_hosts(count, stack):
    """``count`` hosts, removed when ``stack`` closes (also on errors half-way)."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subnet = free_subnet()
        hosts = [Host(index, subnet) for index in range(1, count + 1)]
        for host in hosts:
            stack.callback(host.remove)
            host.create()
    return hosts


def run_is_alive(pid):
    """Whether ``pid`` is a running bench/hosts.py (not a recycled pid)."""
    try:
        return b"hosts.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def remove_leftovers():
    """Namespaces, links and clusters of runs that died without cleaning up."""
    for name in ip("netns", "list", check=False).stdout.split():
        found = LEFTOVER_NAMESPACE.match(name)
        if found and not run_is_alive(int(found.group(1))):
            log(f"removing namespace {name} left by a previous run")
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", check=False).stdout.splitlines():
        found = LEFTOVER_LINK.match(line)
        if found and not run_is_alive(int(found.group(2))):
            ip("link", "del", found.group(1), check=False)
    for directory in [
        *CLUSTERS.glob("hosts-pg-*"),
        *Path(tempfile.gettempdir()).glob("hosts-pg-*"),
    ]:
        found = LEFTOVER_CLUSTER.match(directory.name)
        if found and not run_is_alive(int(found.group(1))):
            log(f"stopping and removing the cluster {directory.name} left by a previous run")
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(pgserver.PG_BIN / "pg_ctl")]
                + ["-D", str(directory / "data"), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
            shutil.rmtree(directory, ignore_errors=True)


# -- the throwaway cluster ---------------------------------------------------------

# Runs in the djtasks venv: one connection, one JSON request per line.
_SQL_SESSION = r"""
import json, sys, psycopg
connection = psycopg.connect(sys.argv[1], autocommit=True)
for line in sys.stdin:
    request = json.loads(line)
    try:
        cursor = connection.execute(request["sql"], request.get("params"))
        answer = {"rows": cursor.fetchall() if cursor.description else []}
    except psycopg.Error as error:
        answer = {"error": str(error).strip()}
    print(json.dumps(answer, default=str), flush=True)
"""


class SqlSession:
    """A psycopg connection in a child process (this file stays standard library)."""

    def __init__(self, python, url):
        self.process = subprocess.Popen(
            [python, "-c", _SQL_SESSION, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def rows(self, sql, params=None):
        self.process.stdin.write(json.dumps({"sql": sql, "params": params}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the SQL session ended (exit {self.process.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{sql!r}: {answer['error']}")
        return answer["rows"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


class Cluster:
    """The run's own PostgreSQL, listening on 127.0.0.1 and every host's root address."""

    def __init__(self, hosts, python):
        self.hosts = hosts
        self.statements = (pgserver.PG_BIN.parent / "lib" / "pg_stat_statements.so").exists()
        settings = SERVER_SETTINGS + ((STATEMENTS_LIBRARY,) if self.statements else ())
        self.server = pgserver.ThrowawayPostgres(
            parent=cluster_parent(),
            prefix=CLUSTER_PREFIX.format(pid=os.getpid()),
            listen=("127.0.0.1", *(host.root_address for host in hosts)),
            settings=settings,
        )
        self.port = self.server.port
        self.python = python
        self.sql = None

    def start(self):
        self.server.init()
        self._write_hba()
        self.server.start()
        self.sql = SqlSession(self.python, self.url("postgres"))
        self.sql.rows(f"CREATE ROLE {WATCH_ROLE} LOGIN SUPERUSER")
        for name in DATABASES.values():
            self.sql.rows(f"CREATE DATABASE {name}")
        if self.statements:
            self.sql.rows("CREATE EXTENSION pg_stat_statements")

    def _write_hba(self):
        # Trust, but only for the addresses of this machine that we made.
        lines = ["local all all trust", "host all all 127.0.0.1/32 trust"]
        lines += [f"host all all {host.address}/32 trust" for host in self.hosts]
        (self.server.data / "pg_hba.conf").write_text("\n".join(lines) + "\n")

    def stop(self):
        if self.sql is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.sql.close()
        self.server.destroy()

    def url(self, database, address="127.0.0.1", role="postgres"):
        return f"postgres://{role}@{address}:{self.port}/{database}"

    def postmaster_pid(self):
        return int((self.server.data / "postmaster.pid").read_text().split()[0])

    def version(self):
        return self.sql.rows("SHOW server_version")[0][0]

    def connections(self, database):
        """{client address: (connections, the listeners' backend pids, all backend pids)}."""
        rows = self.sql.rows(
            "SELECT host(client_addr), count(*), array_agg(pid) FILTER (WHERE"
            # The listener's last statement: djtasks' self-addressed ping
            # after its LISTEN; the baseline's LISTEN.
            " query LIKE 'SELECT pg_notify%%' OR query LIKE 'LISTEN%%'), array_agg(pid)"
            " FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND datname = %s AND usename = 'postgres'"
            " AND client_addr IS NOT NULL GROUP BY 1",
            [database],
        )
        return {address: (count, listeners or [], pids) for address, count, listeners, pids in rows}

    def reset_statements(self):
        if self.statements:
            self.sql.rows("SELECT pg_stat_statements_reset()")

    def statement_figures(self, database):
        """The workers' statements since the reset: calls, WAL bytes, the commonest."""
        if not self.statements:
            return None
        where = (
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " JOIN pg_database d ON d.oid = s.dbid"
            " WHERE r.rolname = 'postgres' AND d.datname = %s"
        )
        calls, wal = self.sql.rows(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(wal_bytes), 0)" + where, [database]
        )[0]
        top = self.sql.rows(
            "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
            + where
            + " ORDER BY calls DESC LIMIT 6",
            [database],
        )
        return {"calls": int(calls), "wal_bytes": int(float(wal)), "top": top}


def cluster_parent():
    """Where the cluster goes: CLUSTERS if the postgres account can reach it."""
    CLUSTERS.mkdir(parents=True, exist_ok=True)
    reach = ["runuser", "-u", "postgres", "--", "test", "-x", str(CLUSTERS)]
    if subprocess.run(reach, capture_output=True, check=False).returncode == 0:
        return CLUSTERS
    return Path(tempfile.gettempdir())


def private_memory_kb(pid):
    """Memory only this process maps (what closing the connection would free)."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


# -- CPU time from /proc -----------------------------------------------------------


def cpu_seconds(pid):
    """CPU time of every thread of ``pid``, from schedstat (nanoseconds; ticks are 10 ms)."""
    total = 0
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(path.read_text().split()[0])
    return total / 1e9


def reaped_seconds(pid):
    """CPU time of the children ``pid`` has waited for (a backend that exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 16 and 17 of proc(5), cutime and cstime; index 0 is field 3.
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def children(pid):
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in path.read_text().split()]
    return found


def machine_busy_ticks():
    fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


class Sampler(threading.Thread):
    """CPU seconds, every SAMPLE_INTERVAL, of PostgreSQL, the workers, the bench and the machine.

    Keys: ``pg`` every process of the cluster (exited backends included, through
    the postmaster's reaped-children time), ``pg_workers`` the backends of the
    hosts' connections, ``pg_listeners`` those of their LISTEN connections,
    ``pg_bench`` those of the watcher and of the fill or probe enqueues,
    ``workers`` every worker process, ``bench`` this process,
    the watcher and the SQL session, ``machine`` all cores. Values only grow:
    a worker or watcher that exits keeps the time it was last seen with.
    """

    def __init__(self, cluster, hosts):
        super().__init__(daemon=True)
        self.postmaster = cluster.postmaster_pid()
        self.host_markers = tuple(f" {host.address}(" for host in hosts)
        self.workers = None  # a bench_run.Workers while workers run
        self.listeners = set()  # backend pids of the workers' LISTEN connections
        self.bench_pids = [cluster.sql.process.pid]
        self.times, self.values = [], []
        self._roles = {}  # backend pid -> "host", "bench" or "other" (see _role)
        self._seen = {}  # group -> {pid: CPU seconds when last seen}
        self._stopping = threading.Event()  # not _stop: a Thread method

    def run(self):
        while not self._stopping.wait(SAMPLE_INTERVAL):
            self.sample()

    def stop(self):
        self._stopping.set()
        self.join()

    def sample(self):
        value = self._postgres()
        workers = self.workers
        for group, pids in (
            ("workers", workers.pids() if workers else []),
            ("bench", [os.getpid(), *self.bench_pids]),
        ):
            value[group] = self._summed(group, {pid: cpu_seconds(pid) for pid in pids})
        value["machine"] = machine_busy_ticks() / CLOCK_TICKS
        self.times.append(time.time())
        self.values.append(value)

    def _postgres(self):
        backends = children(self.postmaster)
        self._roles = {pid: self._roles[pid] for pid in backends if pid in self._roles}
        used = {pid: cpu_seconds(pid) for pid in backends}
        serving = {pid: used[pid] for pid in backends if self._role(pid) == "host"}
        bench = {pid: used[pid] for pid in backends if self._role(pid) == "bench"}
        listening = {pid: used[pid] for pid in self.listeners if pid in used}
        everything = reaped_seconds(self.postmaster) + cpu_seconds(self.postmaster)
        return {
            "pg": everything + sum(used.values()),
            "pg_workers": self._summed("pg_workers", serving),
            "pg_listeners": self._summed("pg_listeners", listening),
            "pg_bench": self._summed("pg_bench", bench),
        }

    def _summed(self, group, used):
        """CPU of the processes in ``used`` ({pid: seconds}) and of every one of ``group`` before.

        So the sum never drops when a process exits (or leaves the group).
        """
        seen = self._seen.setdefault(group, {})
        for pid, seconds in used.items():
            seen[pid] = max(seen.get(pid, 0.0), seconds)
        return sum(seen.values())

    def _role(self, pid):
        """ "host": a backend of a host's worker; "bench": the watcher's, the enqueuer's."""
        if pid not in self._roles:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                return None
            if not title.startswith("postgres: "):
                return None  # just forked: still the postmaster's command line
            # "postgres: postgres hosts_djtasks 10.231.1.2(40312) idle"
            if any(marker in title for marker in self.host_markers):
                self._roles[pid] = "host"
            elif title.startswith(f"postgres: {WATCH_ROLE} "):
                self._roles[pid] = "bench"
            else:  # background processes, the SQL session
                self._roles[pid] = "other"
        return self._roles[pid]

    def at(self, when, key):
        """The value of ``key`` at ``when``, interpolated between two samples."""
        index = bisect.bisect_left(self.times, when)
        if index == 0 or index == len(self.times):
            raise RuntimeError("no CPU samples around that time")
        (t0, v0), (t1, v1) = (
            (self.times[index - 1], self.values[index - 1]),
            (self.times[index], self.values[index]),
        )
        share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
        return v0[key] + share * (v1[key] - v0[key])

    def between(self, start, end):
        """CPU seconds of every key from ``start`` to ``end``."""
        keys = self.values[-1].keys()
        return {key: self.at(end, key) - self.at(start, key) for key in keys}

    def wait_past(self, when):
        """Return once a sample taken after ``when`` exists."""
        while not self.times or self.times[-1] <= when:
            time.sleep(SAMPLE_INTERVAL / 2)


# -- what runs on the hosts ------------------------------------------------------------


class Setup:
    """Which workers run on each host, and how many connections that should hold."""

    def __init__(self, key, label, system, command, expected, processes, extra_env=None):
        self.key = key
        self.label = label
        self.system = system
        self.command = command  # the command lines of one host
        self.expected = expected  # connections per host by the documented formula
        self.processes = processes  # worker processes per host
        self.extra_env = dict(extra_env or {})

    def commands(self, hosts, cluster):
        database = DATABASES[self.system.venv_key]
        return [
            host.wrap(command, cluster.url(database, host.root_address))
            for host in hosts
            for command in self.command
        ]


def djtasks_setup(system, processes=None, threads=1, listen=True):
    """``runworker`` with these options (processes None: its default, one per CPU)."""
    command = [system.python, "manage.py", "runworker"]
    if processes is not None:
        command += ["--processes", str(processes)]
    if threads != 1:
        command += ["--threads", str(threads)]
    effective = processes or os.cpu_count() or 1
    # P × (T + 2): a connection per claim thread, the main thread's
    # (heartbeat, rescue, cancel checks) and the listener's (docs/deployment.md).
    expected = effective * (threads + (2 if listen else 1))
    shown = " ".join(command[2:])
    label = f"`{shown}`" + ("" if listen else ', `DJTASKS["LISTEN"] = False`')
    key = f"djtasks-p{processes or 'default'}-t{threads}" + ("" if listen else "-nolisten")
    extra = {} if listen else {"BENCH_LISTEN": "0"}
    return Setup(key, label, system, [command], expected, effective, extra)


def baseline_setup(system, processes):
    command = [system.python, str(system.directory / "driver.py"), "worker", "100"]
    # Per process a claiming connection, a listening one, and the driver's
    # own (opened by its adapter, idle in a worker).
    label = f"baseline, `driver.py worker 100` × {processes}"
    return Setup("baseline", label, system, [command] * processes, 3 * processes, processes)


# -- one measurement ----------------------------------------------------------------


class Bench:
    def __init__(self, options, cluster, hosts, sampler):
        self.options = options
        self.cluster = cluster
        self.hosts = hosts
        self.sampler = sampler
        # Shorter in smoke mode: its figures are not read.
        self.settle_seconds = SETTLE_SECONDS / 3 if options.smoke else SETTLE_SECONDS

    def measure(self, setup, count):
        """Workers of ``setup`` on the first ``count`` hosts: idle, latency, drain."""
        hosts = self.hosts[:count]
        system = setup.system
        database = DATABASES[system.venv_key]
        system.driver("reset")
        log(f"{setup.key}, {count} host(s): starting {len(hosts) * len(setup.command)} command(s)")
        commands = setup.commands(hosts, self.cluster)
        with bench_run.Workers(system, None, commands, **setup.extra_env) as workers:
            self.sampler.workers = workers
            try:
                held = self.settle(workers, hosts, database, setup.expected)
                result = {
                    "setup": setup.key,
                    "label": setup.label,
                    "system": system.venv_key,
                    "hosts": count,
                    "processes_per_host": setup.processes,
                    "expected_per_host": setup.expected,
                    "connections": self.connection_figures(held, hosts),
                    "idle": self.idle(),
                }
                # Before the drain: its dead rows and the autovacuum after it
                # would be in the probes' CPU.
                result["latency"] = self.latency(setup, result["idle"])
                result["drain"] = self.drain(setup, workers, hosts, database)
            finally:
                self.sampler.workers = None
            self.sampler.listeners = set()
        log(f"{setup.key}, {count} host(s): {summary_line(result)}")
        return result

    def settle(self, workers, hosts, database, expected):
        """Wait until every host is connected and its connections stay unchanged.

        Unchanged for settle_seconds at ``expected`` per host, or for
        UNEXPECTED_SETTLE at any other count (which the report then shows):
        on a loaded machine a listener may connect a second after its
        process's claim thread.
        """
        deadline = time.monotonic() + self.options.timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            if not workers.alive():
                raise RuntimeError(f"a worker exited at start-up: see {WORK / 'logs'}")
            held = self.cluster.connections(database)
            counts = [held.get(host.address, (0, [], []))[0] for host in hosts]
            if counts != last:
                last, since = counts, time.monotonic()
            elif all(counts):
                wanted = self.settle_seconds if set(counts) == {expected} else UNEXPECTED_SETTLE
                if time.monotonic() - since >= wanted:
                    return held
            time.sleep(0.25)
        raise RuntimeError(f"the workers did not settle within {self.options.timeout:g}s: {last}")

    def connection_figures(self, held, hosts):
        found = [held.get(host.address, (0, [], [])) for host in hosts]
        listeners = [pid for _count, pids, _all in found for pid in pids]
        memory = [private_memory_kb(pid) for _count, _listeners, pids in found for pid in pids]
        self.sampler.listeners = set(listeners)
        return {
            "total": sum(count for count, _listeners, _all in found),
            "per_host": [count for count, _listeners, _all in found],
            "listeners": len(listeners),
            "backend_private_mb": statistics.mean(memory) / 1024 if memory else None,
        }

    def idle(self):
        """CPU per second of idle workers (polls, heartbeats) and of PostgreSQL for them."""
        # From a sample taken after the listeners were named (connection_figures).
        self.sampler.wait_past(time.time())
        start = time.time()
        time.sleep(self.options.idle_seconds)
        end = time.time()
        self.sampler.wait_past(end)
        used = self.sampler.between(start, end)
        return {key: value / (end - start) for key, value in used.items()}

    def drain(self, setup, workers, hosts, database):
        system, cluster, options = setup.system, self.cluster, self.options
        watch_url = cluster.url(database, role=WATCH_ROLE)
        # The last probe's outcome may still be on its way.
        system.driver("wait-empty", options.timeout, DATABASE_URL=watch_url)
        cluster.reset_statements()
        watch = subprocess.Popen(
            [system.python, str(system.directory / "driver.py"), "watch-arrival"]
            + [str(options.jobs), str(options.timeout)],
            cwd=system.directory,
            env=system.environ(DATABASE_URL=watch_url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.sampler.bench_pids.append(watch.pid)
        most = {}
        try:
            ready = watch.stdout.readline().strip()
            if ready != "ready":
                raise RuntimeError(f"watch did not start: {ready} {watch.stderr.read()}")
            filling = time.time()
            system.driver("fill-atomic", options.jobs, timeout=1800, DATABASE_URL=watch_url)
            # Committed: a drain too quick for any count to see is then told apart.
            # (A watcher that saw the drain end already is gone: its answer waits.)
            with contextlib.suppress(BrokenPipeError):
                watch.stdin.write("filled\n")
                watch.stdin.flush()
            while not select.select([watch.stdout], [], [], CONNECTION_INTERVAL)[0]:
                if not workers.alive():
                    raise RuntimeError(f"a worker process exited: see {WORK / 'logs'}")
                for address, (count, *_rest) in cluster.connections(database).items():
                    most[address] = max(most.get(address, 0), count)
            answer = json.loads(watch.stdout.readline() or "{}")
            statements = cluster.statement_figures(database)
        finally:
            if watch.poll() is None:
                watch.kill()
            watch.wait()
            with contextlib.suppress(BrokenPipeError):
                watch.stdin.close()
            self.sampler.bench_pids.remove(watch.pid)
        if "done" not in answer:
            raise RuntimeError(f"drain failed: {answer.get('error', answer)}")
        if answer.get("failed"):
            raise RuntimeError(f"{answer['failed']} jobs failed: see {WORK / 'logs'}")
        self.sampler.wait_past(answer["done"])
        figures = drain_figures(answer, self.sampler, statements, most, options.jobs, hosts)
        # The backlog's own cost: bulk_enqueue (COPY for the baseline), committed
        # once; up to the drain's first count. All of PostgreSQL but the hosts'
        # backends: the fill's backend may live less than one sample interval
        # (the watcher's counts and the background writers are in it too).
        used = self.sampler.between(filling, answer["first"])
        figures["fill_pg_us_per_job"] = (used["pg"] - used["pg_workers"]) / options.jobs * 1e6
        return figures

    def enqueue_cost(self, system):
        """PostgreSQL CPU per ``enqueue()`` (one transaction each), back to back."""
        jobs = self.options.enqueue_jobs
        system.driver("reset")
        url = self.cluster.url(DATABASES[system.venv_key], role=WATCH_ROLE)
        start = time.time()
        answer = system.driver("enqueue-one", jobs, DATABASE_URL=url)
        end = time.time()
        self.sampler.wait_past(end)
        # All of PostgreSQL: the WAL writer's flushes are part of a commit's cost.
        used = self.sampler.between(start, end)["pg"]
        system.driver("reset")
        return {"rate": jobs / answer["seconds"], "pg_us_per_job": used / jobs * 1e6}

    def latency(self, setup, idle):
        """Enqueue-to-start of probes into the idle workers, and their CPU per probe."""
        options = self.options
        path = WORK / f"probes-hosts-{os.getpid()}.txt"
        database = DATABASES[setup.system.venv_key]
        self.cluster.reset_statements()
        answer = setup.system.driver(
            "latency",
            options.latency_jobs,
            options.latency_interval,
            path,
            options.timeout,
            # Enqueued as the watcher's role: the statements counted are the workers'.
            DATABASE_URL=self.cluster.url(database, role=WATCH_ROLE),
        )
        statements = self.cluster.statement_figures(database)
        # From the idle pause after the warm-up probe to just after the last
        # start: the driver's own start-up and connection are left out.
        starts = bench_common.read_probe_file(path)
        start = starts.pop(-1) + 0.25
        end = max(starts.values()) + 0.1
        self.sampler.wait_past(end)
        used = self.sampler.between(start, end)
        # Less what the idle workers would have used anyway in that time.
        per_probe = {
            key: (used[key] - idle[key] * (end - start)) / len(starts) * 1e6
            for key in ("pg", "pg_workers", "pg_listeners", "pg_bench", "workers")
        }
        # The enqueue's share: PostgreSQL but the hosts' backends (as enqueue_cost).
        per_probe["pg_enqueue"] = per_probe["pg"] - per_probe["pg_workers"]
        result = {**answer, "cpu_us_per_probe": per_probe}
        if statements is not None:
            # The warm-up probe and the idle polls are in it too.
            result["worker_statements_per_probe"] = statements["calls"] / (len(starts) + 1)
            result["top_statements"] = statements["top"]
        return result


def drain_figures(answer, sampler, statements, most, jobs, hosts):
    used = sampler.between(answer["first"], answer["done"])
    finished = answer["jobs"]
    seconds = answer["done"] - answer["first"]
    figures = {
        "rate": answer["rate"],
        "jobs": finished,
        "seconds": seconds,
        "cpu_us_per_job": {key: value / finished * 1e6 for key, value in used.items()},
        # Cores kept busy during the drain, by whom ("other": not this benchmark).
        "cores": {key: value / seconds for key, value in used.items()},
        "connections_during": [most.get(host.address, 0) for host in hosts],
        # Done between two counts (tiny drains): the rate is a lower bound.
        "between_polls": bool(answer.get("between_polls")),
    }
    figures["cores"]["other"] = figures["cores"]["machine"] - sum(
        figures["cores"][key] for key in ("pg", "workers", "bench")
    )
    if statements is not None:
        figures["statements_per_job"] = statements["calls"] / jobs
        figures["wal_bytes_per_job"] = statements["wal_bytes"] / jobs
        figures["top_statements"] = statements["top"]
    return figures


def summary_line(result):
    drain, latency = result["drain"], result["latency"]
    return (
        f"{drain['rate']:,.0f} jobs/s, PostgreSQL {drain['cpu_us_per_job']['pg']:.0f} µs/job, "
        f"workers {drain['cpu_us_per_job']['workers']:.0f} µs/job, "
        f"{result['connections']['total']} connections, "
        f"latency p50 {latency['p50']:.1f} ms"
    )


# -- the run ----------------------------------------------------------------------------


def make_systems(options, cluster):
    """The djtasks and baseline systems of run.py, on this run's databases."""
    if options.smoke:
        djtasks, python = bench_run.Djtasks(None), sys.executable
        baseline = bench_run.Baseline(100, None)
    else:
        python = env.ensure_venv("djtasks")
        djtasks, baseline = bench_run.Djtasks("djtasks"), bench_run.Baseline(100, "djtasks")
    for system, key in ((djtasks, "djtasks"), (baseline, "baseline")):
        system.python = python
        system.venv_key = key
        system.url = cluster.url(DATABASES[key])
    return djtasks, baseline


def series(bench, djtasks, baseline, options):
    """djtasks and the baseline at each host count, --runs times."""
    results = []
    for run_index in range(options.runs):
        for count in options.hosts:
            for setup in (
                djtasks_setup(djtasks, processes=options.processes),
                baseline_setup(baseline, options.processes),
            ):
                result = bench.measure(setup, count)
                result["run"] = run_index + 1
                results.append(result)
    return results


def variants(bench, djtasks, options, measured):
    """At the largest host count: runworker's ways to hold fewer connections."""
    count = options.variant_hosts
    results = []
    setups = [
        djtasks_setup(djtasks),  # the defaults
        djtasks_setup(djtasks, processes=1, threads=2),
        djtasks_setup(djtasks, processes=1),
        djtasks_setup(djtasks, listen=False),
    ]
    if options.smoke:  # one of them measured, one from the series: seconds
        setups = [setups[2], djtasks_setup(djtasks, processes=1, listen=False)]
    for setup in setups:
        same = [r for r in measured if r["setup"] == setup.key and r["hosts"] == count]
        if same:  # measured in the series already
            results.extend(same)
            continue
        for run_index in range(options.runs):
            result = bench.measure(setup, count)
            result["run"] = run_index + 1
            results.append(result)
    return results


def enqueue_costs(bench, systems):
    """One-by-one enqueues back to back, before any worker runs."""
    return {system.venv_key: bench.enqueue_cost(system) for system in systems}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="2 hosts, a few hundred jobs")
    parser.add_argument("--check", action="store_true", help="only say whether this can run here")
    parser.add_argument("--hosts", help="host counts (default 1,2,4,8; smoke 2)")
    parser.add_argument("--jobs", type=int, help="jobs per drain (default 50000; smoke 300)")
    parser.add_argument("--runs", type=int, default=1, help="runs of the host series (default 1)")
    parser.add_argument(
        "--processes", type=int, default=1, help="runworker --processes per host (default 1)"
    )
    parser.add_argument(
        "--variant-hosts", type=int, help="hosts of the connection variants (default: the most)"
    )
    parser.add_argument("--latency-jobs", type=int, help="probes per latency run (100; smoke 5)")
    parser.add_argument("--latency-interval", type=float, default=0.05)
    parser.add_argument(
        "--enqueue-jobs", type=int, help="one-by-one enqueues, back to back (2000; smoke 50)"
    )
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window (3; smoke 0.5)")
    parser.add_argument("--timeout", type=float, help="seconds per drain (300; smoke 60)")
    parser.add_argument("--output", help="report (default docs/benchmarks.md; smoke bench/.work)")
    parser.add_argument("--report-from", metavar="JSON", help="rewrite the report, measure nothing")
    options = parser.parse_args(argv)
    smoke = options.smoke
    defaults = {
        "hosts": ("2", "1,2,4,8"),
        "jobs": (300, 50_000),
        "latency_jobs": (5, 100),
        "enqueue_jobs": (50, 2_000),
        "idle_seconds": (0.5, 3.0),
        "timeout": (60.0, 300.0),
    }
    for name, (small, full) in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, small if smoke else full)
    options.hosts = sorted({int(value) for value in str(options.hosts).split(",")})
    options.variant_hosts = options.variant_hosts or max(options.hosts)
    if options.output is None:
        options.output = str(WORK / "hosts-smoke.md" if smoke else REPO / "docs" / "benchmarks.md")
    return options


def measure_all(options, stack, context):
    remove_leftovers()
    hosts = make_hosts(max(max(options.hosts), options.variant_hosts), stack)
    python = sys.executable if options.smoke else env.ensure_venv("djtasks")
    cluster = Cluster(hosts, python)
    stack.callback(cluster.stop)
    cluster.start()
    check_reachable(hosts, cluster, python)
    context["postgresql"] = cluster.version()
    context["pg_stat_statements"] = cluster.statements
    djtasks, baseline = make_systems(options, cluster)
    context["versions"] = env.versions(python, env.VERSIONED["djtasks"])
    for system in (djtasks, baseline):
        system.driver("setup")
    sampler = Sampler(cluster, hosts)
    sampler.start()
    stack.callback(sampler.stop)
    bench = Bench(options, cluster, hosts, sampler)
    enqueue = enqueue_costs(bench, (djtasks, baseline))
    measured = series(bench, djtasks, baseline, options)
    return {
        "enqueue": enqueue,
        "series": measured,
        "variants": variants(bench, djtasks, options, measured),
    }


def check_reachable(hosts, cluster, python):
    """Every host reaches PostgreSQL over its pair (a clear error, not a drain timeout)."""
    code = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)"
    for host in hosts:
        command = ["ip", "netns", "exec", host.namespace, python, "-c", code]
        done = subprocess.run(
            [*command, host.root_address, str(cluster.port)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{host.namespace} cannot reach PostgreSQL: {done.stderr[-500:]}")


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options.report_from:
        import hosts_report

        hosts_report.write(Path(options.output), json.loads(Path(options.report_from).read_text()))
        return 0
    problem = platform_problem()
    if options.check or problem:
        print(f"bench/hosts.py cannot run here: {problem}" if problem else "ok", file=sys.stderr)
        return 2 if problem else 0
    # SIGTERM and SIGHUP unwind like Ctrl-C: workers stopped, cluster and namespaces removed.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: sys.exit(143))
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    context = {
        "started": started,
        "machine": env.machine(),
        "busy_before": env.cpu_busy_percent(),
        "load_before": os.getloadavg(),
        "command": "python bench/hosts.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "options": {k: v for k, v in vars(options).items() if k not in ("output", "report_from")},
    }
    with contextlib.ExitStack() as stack:
        results = measure_all(options, stack, context)
    context["load_after"] = os.getloadavg()
    context["seconds"] = time.time() - started
    data = {"context": context, **results}
    name = "hosts-smoke.json" if options.smoke else "hosts.json"
    (WORK / name).write_text(json.dumps(data, indent=2))
    import hosts_report

    hosts_report.write(Path(options.output), data)
    log(f"wrote {options.output} and {WORK / name} in {context['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
