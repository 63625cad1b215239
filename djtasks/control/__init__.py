"""Changing jobs from outside a worker: cancel, retry, run now, delete.

Everything here is stored on the job rows, so it works across hosts and
survives restarts. The names below are the public API of ``djtasks.control``.
"""

from djtasks.control.cancellation import (
    CancelResult,
    cancel,
    cancel_many,
    is_cancel_requested,
    raise_if_cancel_requested,
)
from djtasks.exceptions import Cancelled

__all__ = [
    "CancelResult",
    "Cancelled",
    "cancel",
    "cancel_many",
    "is_cancel_requested",
    "raise_if_cancel_requested",
]
