"""Linux process facts read from /proc: children, process groups, resident memory."""

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (empty once it is gone)."""
    found = []
    with contextlib.suppress(OSError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def group_members(pgid: int) -> list[int]:
    """Every process in the process group ``pgid``."""
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == pgid:
                    members.append(int(entry.name))
    return members


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in KB (0 once it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
