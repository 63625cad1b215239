"""A chord whose header runs on two worker processes at once."""

from collections import Counter

import pytest

import djtasks
from djtasks.models import Job, JobStatus, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Ledger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MEMBERS = 20


def test_chord_header_on_two_processes_releases_the_callback_once(start_worker):
    worker = start_worker("--processes", "2", "--threads", "2")
    wait_for(
        lambda: Worker.objects.filter(stopped_at__isnull=True).count() == 2,
        20,
        "two worker processes",
        worker,
    )

    header = [tasks.chord_member.step(index, seconds=0.05) for index in range(MEMBERS)]
    flow = djtasks.chord(header, tasks.chord_callback.step()).enqueue()
    callback_id = flow.last.id

    wait_for(
        lambda: Job.objects.get(pk=callback_id).status == JobStatus.SUCCESSFUL,
        30,
        "the chord callback",
        worker,
    )

    members = Ledger.objects.filter(tag__startswith="member ")
    assert Counter(members.values_list("tag", flat=True)) == Counter(
        f"member {index}" for index in range(MEMBERS)
    )
    # Both processes ran header steps, so some finished at the same time.
    assert len(set(members.values_list("pid", flat=True))) == 2
    assert Ledger.objects.filter(tag="callback").count() == 1
    flow.last.refresh()
    assert flow.last.return_value == list(range(MEMBERS))
