"""djtasks: background jobs for Django, with the project's database as broker.

The public API. Models are not imported here (this module loads before the
app registry is ready); use ``djtasks.models`` for Job, Worker and JobStatus.
"""

from djtasks.beat.declared import periodic
from djtasks.control.cancellation import cancel
from djtasks.enqueue.api import aenqueue, bulk_enqueue, enqueue
from djtasks.enqueue.task import DatabaseTask, task
from djtasks.exceptions import ArgumentNotSerializable, PayloadTooLarge, Retry
from djtasks.progress import set_progress
from djtasks.workflows.canvas import (
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
