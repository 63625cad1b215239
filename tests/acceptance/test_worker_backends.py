"""Two TASKS aliases on one database, each with its own `runworker --backend`."""

import pytest

from djtasks.models import Job, JobStatus
from tests import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def statuses(results) -> set:
    return set(Job.objects.filter(pk__in=[r.id for r in results]).values_list("status", flat=True))


def test_a_worker_of_the_second_backend_runs_only_its_jobs(start_worker):
    default_jobs = [tasks.ledger.enqueue(f"default-{n}") for n in range(5)]
    default_limited = tasks.per_customer.enqueue(1)
    second_jobs = [tasks.ledger.using(backend="second").enqueue(f"second-{n}") for n in range(5)]
    second_limited = tasks.per_customer.using(backend="second").enqueue(2)

    second = start_worker("--burst", "--backend", "second", "--processes", "1", "--threads", "2")

    assert second.wait(60) == 0, second.log()
    assert statuses([*second_jobs, second_limited]) == {JobStatus.SUCCESSFUL}
    assert statuses([*default_jobs, default_limited]) == {JobStatus.READY}
    assert set(
        Job.objects.filter(status=JobStatus.SUCCESSFUL).values_list("backend", flat=True)
    ) == {"second"}

    default = start_worker("--burst", "--processes", "1")

    assert default.wait(60) == 0, default.log()
    assert statuses([*default_jobs, default_limited]) == {JobStatus.SUCCESSFUL}
