"""Job ids: UUIDs whose first 48 bits are the time they were made (UUIDv7).

A job's id is its primary key. Random ids (UUIDv4) land anywhere in the
key's B-tree: each enqueue, claim and outcome touches an index page of its
own. Ids made in the same millisecond or the few before it share their
leading bytes instead, so a batch's index entries sit together: a claim of
100 reads a few pages of the key where it read up to 100, and the pages a
drain writes stay in memory. Measured on PostgreSQL: drains 1-12% faster
(docs/benchmarks.md, eighth round); on MariaDB no change.

The layout is RFC 9562's version 7: a Unix time in milliseconds, the
version and variant bits, and 74 random bits. Those random bits keep ids
unguessable; the time in them is the enqueue's, to the millisecond (which
the job's row shows anyway).
"""

import os
import time
import uuid

_RANDOM_BITS = (1 << 80) - 1  # the 80 bits after the time; 6 are then overwritten
_VERSION_MASK = ~(0xF000 << 64)
_VARIANT_MASK = ~(0xC000 << 48)
_VERSION_7 = 7 << 76
_RFC_VARIANT = 0x8000 << 48


# The characters of a job's short id (short_id()).
SHORT_ID_LENGTH = 8


def short_id(job_id) -> str:
    """The id as the admin shows it: its last 8 hex digits.

    Its first ones are the enqueue's time, alike for the jobs of a minute;
    the last ones are random.
    """
    return str(job_id)[-SHORT_ID_LENGTH:]


def new_job_id() -> uuid.UUID:
    """A new UUIDv7 for a job row."""
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds << 80) | (int.from_bytes(os.urandom(10)) & _RANDOM_BITS)
    value = (value & _VERSION_MASK & _VARIANT_MASK) | _VERSION_7 | _RFC_VARIANT
    return uuid.UUID(int=value)
