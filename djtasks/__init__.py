"""djtasks: background jobs for Django, with the project's database as broker.

The public API. Models are not imported here (this module loads before the
app registry is ready); use ``djtasks.models`` for Job, Worker and JobStatus.
"""

from .api import aenqueue, bulk_enqueue, enqueue
from .code_schedules import periodic
from .control import cancel
from .exceptions import ArgumentNotSerializable, PayloadTooLarge, Retry
from .progress import set_progress
from .task import DatabaseTask, task
from .workflows import (
    Step,
    Workflow,
    WorkflowResult,
    chain,
    chord,
    get_workflow,
    group,
    step,
)

__all__ = [
    "ArgumentNotSerializable",
    "DatabaseTask",
    "PayloadTooLarge",
    "Retry",
    "Step",
    "Workflow",
    "WorkflowResult",
    "aenqueue",
    "bulk_enqueue",
    "cancel",
    "chain",
    "chord",
    "enqueue",
    "get_workflow",
    "group",
    "periodic",
    "set_progress",
    "step",
    "task",
]
