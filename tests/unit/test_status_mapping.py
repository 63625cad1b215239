"""djtasks' statuses seen through the standard TaskResultStatus."""

from djtasks.compat import TaskResultStatus
from djtasks.models import STANDARD_STATUS, JobStatus


def test_every_status_maps_onto_a_standard_one():
    assert set(STANDARD_STATUS) == set(JobStatus)
    assert {TaskResultStatus(value) for value in STANDARD_STATUS.values()} <= set(TaskResultStatus)


def test_standard_statuses_map_onto_themselves():
    for status in TaskResultStatus:
        assert STANDARD_STATUS[JobStatus(status.value)] == status.value


def test_cancelled_and_expired_look_failed():
    assert STANDARD_STATUS[JobStatus.CANCELLED] == "FAILED"
    assert STANDARD_STATUS[JobStatus.EXPIRED] == "FAILED"
