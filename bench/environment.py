"""What the benchmark runs on: virtualenvs, databases, Redis, the machine.

Standard library only: run.py may be started by any Python 3.11+.
"""

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
# Logs, probe files, SQLite files, raw results (BENCH_WORK_DIR: elsewhere).
WORK = Path(os.environ.get("BENCH_WORK_DIR") or BENCH / ".work")

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/djtasks_bench"
# Databases made here start with djtasks_bench: the test suite's are test_*.
DEFAULT_MARIADB_URL = "mysql://root@127.0.0.1:3306/djtasks_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
DEFAULT_DRAMATIQ_REDIS_URL = "redis://127.0.0.1:6379/8"

# The interpreter for every venv: the same Python for all systems, so the
# figures compare systems and not interpreters.
PYTHON_VERSION = "3.13.0"

# Each venv: what pip installs, by package name. djtasks comes from this
# repository (editable), the peers from the package index.
VENV_PACKAGES = {
    "djtasks": ["django>=6.1,<6.2", "-e", str(REPO), "py-spy"],
    "dtdb": ["django>=6.1,<6.2", "django-tasks-db", "psycopg[binary]", "django-environ"],
    "procrastinate": ["procrastinate", "psycopg[binary]"],
    "celery": ["celery[redis]"],
    # asyncpg for the worker (its quick start's first driver), psycopg for
    # the synchronous enqueue.
    # typer 0.29 hands `pgq run` its --log-level as a str, and pgqueuer 1.6
    # then fails at start-up (AttributeError: 'str' object has no attribute
    # 'name'): 0.28 is the newest that starts.
    "pgqueuer": ["pgqueuer", "asyncpg", "psycopg[binary]", "typer<0.29"],
    "dramatiq": ["dramatiq[redis]"],
}

# The MariaDB driver goes into the djtasks venv apart from its packages: it
# compiles against the client library (Debian: libmariadb-dev pkg-config),
# which a machine may lack, and everything else must run without it.
MYSQL_DRIVER = "mysqlclient>=2.2"

# The distributions whose versions the report names, per venv.
VERSIONED = {
    "baseline": ["psycopg"],
    "djtasks": ["djtasks", "django", "psycopg"],
    "dtdb": ["django-tasks-db", "django", "psycopg"],
    "procrastinate": ["procrastinate", "psycopg"],
    "celery": ["celery", "kombu", "redis"],
    "pgqueuer": ["pgqueuer", "asyncpg", "psycopg"],
    "dramatiq": ["dramatiq", "redis"],
    "baseline_mariadb": ["mysqlclient"],
    "djtasks_mariadb": ["djtasks", "django", "mysqlclient"],
}


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- virtualenvs -------------------------------------------------------------


def base_python():
    """The Python the venvs are made from: pyenv's 3.13 if there, else ours."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        found = subprocess.run(
            [pyenv, "prefix", PYTHON_VERSION], capture_output=True, text=True, check=False
        )
        candidate = Path(found.stdout.strip()) / "bin" / "python"
        if found.returncode == 0 and candidate.exists():
            return str(candidate)
    return sys.executable


def venv_python(name):
    return str(VENVS / name / "bin" / "python")


def ensure_venv(name):
    """Create venv ``name`` and install its packages, unless already done."""
    venv = VENVS / name
    stamp = venv / ".bench-stamp"
    wanted = json.dumps(VENV_PACKAGES[name])
    if stamp.exists() and stamp.read_text() == wanted:
        return venv_python(name)
    log(f"installing the {name} virtualenv (once)")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    pip = [venv_python(name), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *VENV_PACKAGES[name]], check=True)
    stamp.write_text(wanted)
    return venv_python(name)


def ensure_mysql_driver(python):
    """Install mysqlclient into ``python``'s venv if needed; None, or why it failed."""
    if imports(python, "MySQLdb"):
        return None
    log("installing mysqlclient into the djtasks virtualenv (once)")
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "mysqlclient-install.log", "w") as output:
        done = subprocess.run(
            [python, "-m", "pip", "install", "--disable-pip-version-check", MYSQL_DRIVER],
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or not imports(python, "MySQLdb"):
        return (
            "the driver mysqlclient did not install (it needs the MariaDB client library, "
            f"Debian: libmariadb-dev pkg-config; see {logs / 'mysqlclient-install.log'})"
        )
    return None


def imports(python, module):
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def versions(python, names):
    code = (
        "import importlib.metadata as m, json, sys, platform\n"
        f"names = {names!r}\n"
        "found = {}\n"
        "for n in names:\n"
        "    try: found[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "found['python'] = platform.python_version()\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


# -- PostgreSQL ----------------------------------------------------------------


def database_url(base_url, suffix):
    """``base_url`` with ``_suffix`` appended to the database name."""
    parts = urlsplit(base_url)
    name = parts.path.lstrip("/") or "djtasks_bench"
    return urlunsplit(parts._replace(path=f"/{name}_{suffix}"))


_PGADMIN = """
import sys, psycopg
from urllib.parse import urlsplit, urlunsplit
action, url = sys.argv[1], sys.argv[2]
parts = urlsplit(url)
name = parts.path.lstrip("/")
admin = urlunsplit(parts._replace(path="/postgres"))
with psycopg.connect(admin, autocommit=True) as connection:
    if action == "version":
        print(connection.execute("SHOW server_version").fetchone()[0])
        sys.exit()
    if action == "checkpoint":
        connection.execute("CHECKPOINT")
        sys.exit()
    # The name is ours (built by run.py), never user input; quote it anyway.
    quoted = '"' + name.replace('"', '""') + '"'
    connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    if action == "create":
        connection.execute(f"CREATE DATABASE {quoted}")
"""


def pg_admin(python, action, url):
    """create (drop first) / drop a database, print the server version, or checkpoint."""
    done = subprocess.run(
        [python, "-c", _PGADMIN, action, url], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


# -- MariaDB ----------------------------------------------------------------------

_MYSQLADMIN = """
import json, sys
from urllib.parse import unquote, urlsplit
import MySQLdb
action, url = sys.argv[1], sys.argv[2]
parts = urlsplit(url)
name = parts.path.lstrip("/")
connection = MySQLdb.connect(
    host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
    user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
    connect_timeout=5,
)
cursor = connection.cursor()
if action == "version":
    cursor.execute("SELECT VERSION()")
    print(cursor.fetchone()[0])
    sys.exit()
if action == "threads":
    # The server's OS thread of each connection to the database (MariaDB 10.5+).
    cursor.execute("SELECT TID FROM information_schema.PROCESSLIST WHERE DB = %s", [name])
    print(json.dumps([tid for (tid,) in cursor.fetchall()]))
    sys.exit()
# The name is ours (built by run.py), never user input; quote it anyway.
quoted = "`" + name.replace("`", "``") + "`"
cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
if action == "create":
    cursor.execute(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4")
"""


def mysql_admin(python, action, url):
    """create (drop first) / drop a database, the server version, or the
    server threads serving the database's connections (a JSON list)."""
    done = subprocess.run(
        [python, "-c", _MYSQLADMIN, action, url], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def db_admin(python, action, url):
    """pg_admin or mysql_admin, by the URL's scheme."""
    admin = mysql_admin if url.startswith("mysql") else pg_admin
    return admin(python, action, url)


def server_pid(names=("mariadbd", "mysqld")):
    """The pid of the local MariaDB server (None: not on this machine)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    return int(entry.name)
            except OSError:
                pass
    return None


def thread_cpu_seconds(pid, tids):
    """CPU time of these threads of process ``pid``."""
    return thread_schedule_seconds(pid, tids)[0]


def thread_schedule_seconds(pid, tids=None):
    """(seconds on a CPU, seconds runnable but waiting for one) of these
    threads of process ``pid`` (None: all of them).

    From schedstat, in ns (stat counts 10 ms ticks). The second figure is
    what a busy machine adds to a thread's time: on two shared cores it
    tells CPU contention from waiting for locks, disks or the network.
    """
    threads = thread_schedule_by_thread(pid)
    if tids is not None:
        # A thread that ended (its connection closed) counts nothing.
        threads = {tid: threads[tid] for tid in map(int, tids) if tid in threads}
    return (
        sum(on_cpu for on_cpu, _ in threads.values()),
        sum(waiting for _, waiting in threads.values()),
    )


def thread_schedule_by_thread(pid):
    """{thread id: (seconds on a CPU, seconds runnable but waiting)} of process ``pid``."""
    threads = {}
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            fields = path.read_text().split()
        except OSError:
            continue  # the thread ended meanwhile
        threads[int(path.parent.name)] = (int(fields[0]) / 1e9, int(fields[1]) / 1e9)
    return threads


def postgres_pids():
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def postgres_cpu_seconds():
    """CPU seconds of every PostgreSQL process, those that ended included.

    The worker's backends end with its connections, before the run is
    over: the postmaster reaps them, and their time is then in its
    children's time (cutime, cstime) instead.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    pids = set(postgres_pids())
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if int(fields[1]) not in pids:  # the postmaster: its parent is not postgres
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / tick


def process_cpu_seconds(pids):
    """User + system CPU of these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# -- Redis ----------------------------------------------------------------------


def redis_ping(url):
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_version(url):
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"INFO server\r\n")
            time.sleep(0.1)
            text = sock.recv(65536).decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return None


def ensure_redis(url):
    """Return (usable, process we started or None)."""
    if redis_ping(url):
        return True, None
    server = shutil.which("redis-server")
    if server is None:
        return False, None
    port = urlsplit(url).port or 6379
    log(f"starting redis-server on port {port}")
    process = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if redis_ping(url):
            return True, process
        time.sleep(0.1)
    process.terminate()
    return False, None


# -- the machine ------------------------------------------------------------------


def machine():
    info = {
        "cores": os.cpu_count(),
        "cpu": "unknown",
        "memory_gib": None,
        "kernel": platform.release(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def cpu_busy_percent(seconds=2.0):
    """How busy all cores are over ``seconds``: others' load before we start."""

    def sample():
        fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:8]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    try:
        total_a, idle_a = sample()
        time.sleep(seconds)
        total_b, idle_b = sample()
    except OSError:
        return None
    total = total_b - total_a
    return round(100 * (1 - (idle_b - idle_a) / total), 1) if total else None
