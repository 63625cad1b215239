"""Counts what a process sends MariaDB through MySQLdb, for the statement figures.

``install()`` does nothing unless BENCH_COUNT_DIR names a directory. Then
every ``query`` (each statement a cursor executes goes through it),
``commit``, ``rollback``, ``ping`` and real autocommit switch of every
MySQLdb connection is counted and timed (from the call to its return: the
round trip and the server's work), by kind, and a thread writes
``{kind: [count, seconds]}`` to ``<dir>/<pid>.json`` every 0.1 s. Counted
on the client because the server is shared (the test suite may run beside
the benchmark), so its global status counters would count others'
statements too. Each new connection also asks for the server thread that
serves it (``PROCESSLIST.TID``, uncounted), and the writer lists those in
``<dir>/<pid>.tids.json``: the server's CPU for this process is that of
those threads, including connections opened while busy (a worker's
claim-ahead helpers) that a look at the idle worker cannot find.

Imported by the djtasks bench settings and the MariaDB baseline driver.
"""

import contextlib
import json
import os
import threading
import time
from pathlib import Path

WRITE_INTERVAL = 0.1

_counts = {}
_tids = set()
_lock = threading.Lock()


def kind(statement):
    """What a statement is, in few words: its first keyword, or the claim's."""
    if isinstance(statement, bytes | bytearray):
        statement = statement[:4000].decode(errors="replace")
    text = statement.lstrip().upper()
    word = text.split(None, 1)[0] if text else "?"
    if word == "SELECT" and "FOR UPDATE" in text:
        return "SELECT ... FOR UPDATE"
    return word


def _timed(name, call, *args):
    started = time.perf_counter()
    try:
        return call(*args)
    finally:
        seconds = time.perf_counter() - started
        with _lock:
            count, total = _counts.get(name, (0, 0.0))
            _counts[name] = (count + 1, total + seconds)


def _wrap(connection_class):
    query, commit, rollback, ping = (
        connection_class.query,
        connection_class.commit,
        connection_class.rollback,
        connection_class.ping,
    )
    autocommit = connection_class.autocommit
    init = connection_class.__init__

    def noted_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # The unwrapped query: this statement is the benchmark's, not the worker's.
        query(self, b"SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        rows = self.store_result().fetch_row()
        if rows and rows[0][0] is not None:
            with _lock:
                _tids.add(int(rows[0][0]))

    def counted_query(self, statement):
        return _timed(kind(statement), query, self, statement)

    def counted_commit(self):
        return _timed("COMMIT", commit, self)

    def counted_rollback(self):
        return _timed("ROLLBACK", rollback, self)

    def counted_ping(self, *args):
        return _timed("ping", ping, self, *args)

    def counted_autocommit(self, on):
        # MySQLdb sends nothing when the mode does not change.
        if self.get_autocommit() == bool(on):
            return autocommit(self, on)
        return _timed(f"SET autocommit={int(bool(on))}", autocommit, self, on)

    connection_class.__init__ = noted_init
    connection_class.query = counted_query
    connection_class.commit = counted_commit
    connection_class.rollback = counted_rollback
    connection_class.ping = counted_ping
    connection_class.autocommit = counted_autocommit


def _writer(directory):
    path = directory / f"{os.getpid()}.json"
    tids_path = directory / f"{os.getpid()}.tids.json"
    written = written_tids = None
    while True:
        with _lock:
            snapshot = dict(_counts)
            tids = sorted(_tids)
        if snapshot != written:
            _write(path, snapshot)
            written = snapshot
        if tids != written_tids:
            _write(tids_path, tids)
            written_tids = tids
        time.sleep(WRITE_INTERVAL)


def _write(path, data):
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)  # never a half-written file for the reader


def _start_writer(directory):
    threading.Thread(target=_writer, args=(directory,), daemon=True).start()


def _after_fork(directory):
    # A forked worker child starts from its parent's counts and has no
    # writer thread: its own file counts only its own statements.
    with _lock:
        _counts.clear()
        _tids.clear()
    _start_writer(directory)


def install():
    directory = os.environ.get("BENCH_COUNT_DIR")
    if not directory:
        return
    import MySQLdb.connections  # only the MariaDB venvs have it

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _wrap(MySQLdb.connections.Connection)
    _start_writer(directory)
    os.register_at_fork(after_in_child=lambda: _after_fork(directory))


def read_file(path):
    """{kind: [count, seconds]} of one process ({} while it has none)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def read_tids(directory):
    """The server threads that served any counted process's connections."""
    tids = set()
    for path in Path(directory).glob("*.tids.json"):
        with contextlib.suppress(OSError, ValueError):  # not written yet, or mid-write
            tids.update(json.loads(path.read_text()))
    return tids


def count_files(directory):
    """Each counted process's ``<pid>.json``."""
    return [path for path in Path(directory).glob("*.json") if not path.name.endswith(".tids.json")]


def read(directory):
    """{kind: [count, seconds]}, summed over every process's file in ``directory``."""
    total = {}
    for path in count_files(directory):
        for name, (count, seconds) in read_file(path).items():
            before = total.get(name, (0, 0.0))
            total[name] = [before[0] + count, before[1] + seconds]
    return total


def difference(after, before):
    """What was counted between two ``read()``s."""
    found = {}
    for name, (count, seconds) in after.items():
        earlier = before.get(name, (0, 0.0))
        if count > earlier[0]:
            found[name] = [count - earlier[0], seconds - earlier[1]]
    return found
