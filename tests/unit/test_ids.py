"""Job ids are UUIDv7: the time they were made, then random bits."""

import time
import uuid

from djtasks.ids import new_job_id


def test_an_id_is_a_version_7_uuid_of_the_rfc_variant():
    job_id = new_job_id()
    assert (job_id.version, job_id.variant) == (7, uuid.RFC_4122)


def test_its_first_48_bits_are_the_time_it_was_made_in_milliseconds():
    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    after = time.time_ns() // 1_000_000
    assert before <= job_id.int >> 80 <= after


def test_ids_made_in_a_later_millisecond_sort_after():
    earlier = new_job_id()
    time.sleep(0.002)
    later = new_job_id()
    assert earlier < later
    assert str(earlier) < str(later)  # as text too: SQLite and MySQL store text
    assert earlier.hex < later.hex


def test_ids_made_in_the_same_millisecond_differ_by_their_random_bits():
    ids = [new_job_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    # 74 random bits each: version and variant are the only fixed ones after the time.
    low_bits = {job_id.int & ((1 << 62) - 1) for job_id in ids}
    assert len(low_bits) == len(ids)
