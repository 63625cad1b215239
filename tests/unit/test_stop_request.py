"""StopRequest: a stop asked for from a signal handler always ends the wait."""

import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from djtasks.stop_request import StopRequest

STOP_REQUEST = Path(__file__).resolve().parents[2] / "djtasks" / "stop_request.py"
ROUNDS = 300

# A loop like beat's and the worker's, run ROUNDS times in one process: short
# waits, and a SIGTERM handler that asks for the stop. With threading.Event
# in StopRequest's place about 1 round in 10 hangs for ever: the handler
# runs inside Event.wait, which holds the lock that Event.set needs.
WAITER = f"""
import importlib.util, signal
spec = importlib.util.spec_from_file_location("stop_request", {str(STOP_REQUEST)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
current = [None]
signal.signal(signal.SIGTERM, lambda *_: current[0].set())
for _ in range({ROUNDS}):
    current[0] = module.StopRequest()
    print("ready", flush=True)
    while not current[0].is_set():
        current[0].wait(0.0001)
"""


def test_a_sigterm_always_ends_a_loop_of_short_waits():
    # stop_request.py is loaded alone: the child needs neither Django nor djtasks.
    child = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE)
    try:
        for done in range(ROUNDS):
            ready, _, _ = select.select([child.stdout], [], [], 5)
            assert ready, f"the wait ignored a stop after {done} good rounds"
            assert child.stdout.readline() == b"ready\n"
            time.sleep(random.uniform(0, 0.002))
            child.send_signal(signal.SIGTERM)
        assert child.wait(5) == 0
    finally:
        child.kill()
        child.wait()


def test_wait_returns_at_once_for_every_waiting_thread():
    stop = StopRequest()
    woken = []
    threads = [threading.Thread(target=lambda: woken.append(stop.wait(30))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    started = time.monotonic()

    stop.set()
    for thread in threads:
        thread.join(5)

    assert woken == [True, True, True]
    assert time.monotonic() - started < 5
    assert stop.wait(0) is True and stop.is_set()


def test_wait_times_out_without_a_stop():
    stop = StopRequest()

    assert stop.wait(0.01) is False
    assert not stop.is_set()
