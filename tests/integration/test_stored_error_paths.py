"""Error class paths stored in Job.errors by older versions still read back.

djtasks' own recorded errors moved to djtasks.exceptions; rows written before
name them by their old modules (djtasks.rescue.WorkerLost, ...). Reading such
a row through the standard API gives today's class.
"""

import pytest
from django.utils import timezone

from djtasks import exceptions
from djtasks.errors import RENAMED_CLASS_PATHS, class_path, error_entry
from djtasks.models import Job, JobStatus
from tests import tasks

pytestmark = pytest.mark.django_db

OLD_PATHS = {
    "djtasks.rescue.WorkerLost": exceptions.WorkerLost,
    "djtasks.watchdog.JobTimeout": exceptions.JobTimeout,
    "djtasks.registry.UnknownTask": exceptions.UnknownTask,
    "djtasks.control.Cancelled": exceptions.Cancelled,
    "djtasks.executor.MalformedJob": exceptions.MalformedJob,
}


def failed_job_with(path: str) -> str:
    job_id = tasks.noop.enqueue().id
    entry = {
        "exception_class_path": path,
        "traceback": f"{path}: gone\n",
        "attempt": 1,
        "worker_id": "w-1",
        "failed_at": timezone.now().isoformat(),
    }
    Job.objects.filter(pk=job_id).update(status=JobStatus.FAILED, errors=[entry])
    return job_id


@pytest.mark.parametrize("old_path", sorted(OLD_PATHS))
def test_a_path_written_by_an_older_version_reads_as_todays_class(old_path):
    result = tasks.noop.get_backend().get_result(failed_job_with(old_path))
    assert result.errors[0].exception_class is OLD_PATHS[old_path]


def test_every_renamed_path_is_mapped_to_a_class_that_exists():
    assert set(RENAMED_CLASS_PATHS) == set(OLD_PATHS)
    for old_path, new_path in RENAMED_CLASS_PATHS.items():
        assert new_path == class_path(OLD_PATHS[old_path])


def test_new_entries_name_the_stable_path():
    entry = error_entry(exceptions.WorkerLost("lost"), 1, "w-1", timezone.now())
    assert entry["exception_class_path"] == "djtasks.exceptions.WorkerLost"


def test_a_users_own_path_is_left_as_stored():
    result = tasks.noop.get_backend().get_result(failed_job_with("builtins.ValueError"))
    assert result.errors[0].exception_class is ValueError
