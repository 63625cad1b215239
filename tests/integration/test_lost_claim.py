"""A claim lost with a crashed PostgreSQL: the job runs again, its first outcome refused.

On PostgreSQL a claim that writes no outcomes commits without waiting for
the disk (djtasks.worker.claim): if the server crashes a moment later, the
claim may be gone after the restart while the worker ran (or runs) the job.
The task here makes its own row look like that, as a real in-process
worker runs it.
"""

import pytest

from djtasks.models import Job, JobStatus
from djtasks.worker.process import WorkerProcess
from tests import tasks
from tests.models import Ledger

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_job_whose_claim_was_lost_runs_again_and_ends_once():
    result = tasks.loses_its_claim.enqueue()

    WorkerProcess(burst=True, worker_id="w-lost-claim", poll_interval=0.01).run()

    job = Job.objects.get(pk=result.id)
    assert Ledger.objects.filter(job_id=result.id).count() == 2
    # The first run's outcome found its row READY and changed nothing; the
    # second run's outcome is the one stored.
    assert (job.status, job.return_value) == (JobStatus.SUCCESSFUL, 2)
    # The lost claim's attempt is not counted: one attempt, one worker.
    assert (job.attempts, job.worker_ids, job.errors) == (1, ["w-lost-claim"], [])
