"""A stop request that a signal handler may make: threading.Event's API, made safe.

``threading.Event.set()`` must not be called from a signal handler. Python
runs a handler in the main thread between two bytecodes, which may fall
inside that same thread's ``Event.wait()`` while it holds the Event's
internal (non-reentrant) lock; ``set()`` then waits for that lock forever.
Seen here: a beat that ticked every 0.2 s ignored SIGTERM about once in
every few hundred stops, and a reproduction that waits in a tight loop
hangs in 1 of 10.

Here ``set()`` takes no lock: it stores a flag and writes a byte to a pipe.
``wait()`` sleeps in ``poll()`` on the pipe's other end, so every waiter,
in any thread, wakes at once and stays awake (the byte is never read: a
stop is never taken back).
"""

import contextlib
import os
import select


class StopRequest:
    """``set()`` from anywhere (a signal handler included); ``wait()`` from any thread."""

    def __init__(self):
        self._requested = False
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._write_end, False)

    def set(self) -> None:
        # The flag first: a waiter woken by the byte must find it set.
        self._requested = True
        try:
            os.write(self._write_end, b"!")
        except BlockingIOError:
            pass  # the pipe is full of earlier stops: waiters are awake already
        except OSError:
            pass  # closed (the owner is being collected): nobody waits

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until stopped or ``timeout`` seconds passed; return is_set()."""
        if not self._requested:
            # A set() between the check and the poll() left the byte in the
            # pipe, so poll() returns at once: no stop is missed. poll(), not
            # select(): a busy worker may hold descriptors past select's 1024.
            poller = select.poll()
            poller.register(self._read_end, select.POLLIN)
            poller.poll(None if timeout is None else max(0, timeout) * 1000)
        return self._requested

    def __del__(self):
        for end in (self._read_end, self._write_end):
            with contextlib.suppress(OSError):
                os.close(end)
