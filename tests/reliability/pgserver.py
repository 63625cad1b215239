"""A throwaway PostgreSQL server: initdb and pg_ctl on a free port, in a temporary directory.

Used by the database-outage runs, which stop and restart it under load, and
by bench/hosts.py, which makes it listen on its test hosts' addresses too;
never the shared server. Standard library only (psycopg only in query()):
the benchmark imports this from any Python.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _server_binaries() -> Path:
    """Where initdb and pg_ctl are: DJTASKS_PG_BIN, pg_config, or Debian's newest."""
    if os.environ.get("DJTASKS_PG_BIN"):
        return Path(os.environ["DJTASKS_PG_BIN"])
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(found) / "initdb").exists():
            return Path(found)
    # Debian keeps the server binaries out of PATH, one folder per version.
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return versions[-1].parent if versions else Path("/usr/lib/postgresql/bin")


PG_BIN = _server_binaries()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Server settings of the outage runs: durability is not what they test.
FAST_UNSAFE = ("fsync=off", "full_page_writes=off")


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory, run as a non-root user.

    ``parent``: where the temporary directory goes (default: the system's);
    ``listen``: the addresses it listens on, 127.0.0.1 first; ``settings``:
    ``name=value`` server settings.
    """

    def __init__(self, parent=None, prefix="djtasks-pg-", listen=("127.0.0.1",), settings=None):
        self.directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.data = self.directory / "data"
        self.port = free_port()
        self.listen = tuple(listen)
        self.settings = FAST_UNSAFE if settings is None else tuple(settings)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command):
        # initdb refuses to run as root: use the postgres account then.
        if os.geteuid() == 0:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self):
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N"
        )

    def start(self):
        options = f"-p {self.port} -c listen_addresses={','.join(self.listen)} -k {self.directory}"
        options += "".join(f" -c {setting}" for setting in self.settings)
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode="fast"):
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def query(self, sql, params=()):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()

    def destroy(self):
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def available() -> bool:
    """Whether the PostgreSQL server binaries are there."""
    return (PG_BIN / "initdb").exists()


@contextlib.contextmanager
def throwaway_server():
    """A started ThrowawayPostgres, destroyed on exit."""
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()
