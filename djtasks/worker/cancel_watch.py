"""A worker process's view of the cancel requests for the jobs it holds.

The main thread refreshes it about once a second (one indexed read of this
worker's RUNNING rows); task code asks it through
djtasks.control.is_cancel_requested without a query of its own.
"""

import time
import uuid


class CancelWatch:
    """A worker process's view of the cancel requests for the jobs it holds."""

    # The watch of the worker running in this process, if any.
    active = None

    def __init__(self, database: str, worker_id: str):
        self.database = database
        self.worker_id = worker_id
        # job id -> when the cancel was requested (epoch seconds). Replaced
        # whole on refresh, so readers in other threads never see it half
        # built.
        self.requested: dict[uuid.UUID, float] = {}

    def refresh(self) -> None:
        """Read the cancel requests of this worker's RUNNING jobs."""
        from djtasks.models import Job, JobStatus

        # Uses the partial index on running jobs by worker: a few rows.
        rows = (
            Job.objects.using(self.database)
            .filter(
                worker_id=self.worker_id,
                status=JobStatus.RUNNING,
                cancel_requested_at__isnull=False,
            )
            .values_list("id", "cancel_requested_at")
        )
        self.requested = {job_id: at.timestamp() for job_id, at in rows}

    def overdue(self, job_id, grace: float) -> bool:
        """Whether the job was asked to stop more than ``grace`` seconds ago."""
        requested_at = self.requested.get(job_id)
        return requested_at is not None and time.time() - requested_at > grace
