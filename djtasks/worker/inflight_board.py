"""Which job each claim thread of a worker process runs, in shared memory.

A worker process claims jobs in batches and runs them one after another, so
most of its RUNNING rows are waiting their turn (or finished, their outcome
not yet written). When the process dies (SIGKILL, the OOM killer, a wedged
job killed), its supervisor reads this board: only the jobs on it were
running, so only their attempt is lost; the rest of the batch goes back to
READY with the attempt not counted (djtasks.worker.rescue).

One 16-byte cell per claim thread holds the running job's UUID, or zeros.
Each cell has one writer (its thread) and is read only after the writer's
process has died, so no lock is needed. A cell torn by a kill in mid-write
names no job: that job had not started yet (the cell is written before the
task runs) and is handed back, which is right.
"""

import uuid

ID_BYTES = 16
_EMPTY = bytes(ID_BYTES)


class InFlightBoard:
    """The running job of each claim thread, readable by the supervisor."""

    def __init__(self, context, threads: int):
        # A RawArray of the fork context: shared with the child, no lock.
        self.cells = context.RawArray("c", ID_BYTES * threads)

    def running(self, index: int, job_id: uuid.UUID) -> None:
        """Thread ``index`` starts ``job_id``."""
        start = index * ID_BYTES
        self.cells[start : start + ID_BYTES] = job_id.bytes

    def idle(self, index: int) -> None:
        """Thread ``index`` runs nothing."""
        start = index * ID_BYTES
        self.cells[start : start + ID_BYTES] = _EMPTY

    def job_id(self, index: int) -> uuid.UUID | None:
        """The job thread ``index`` runs, or None."""
        start = index * ID_BYTES
        cell = self.cells.raw[start : start + ID_BYTES]
        return None if cell == _EMPTY else uuid.UUID(bytes=cell)

    def job_ids(self) -> list[uuid.UUID]:
        """The jobs running now (after the child died: when it died)."""
        raw = self.cells.raw
        cells = (raw[start : start + ID_BYTES] for start in range(0, len(raw), ID_BYTES))
        return [uuid.UUID(bytes=cell) for cell in cells if cell != _EMPTY]
