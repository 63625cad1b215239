"""Workflows: chain, group and chord (djtasks.workflows.canvas builds and
enqueues them; djtasks.workflows.next_steps moves them on as steps finish)."""

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

__all__ = ["Step", "Workflow", "WorkflowResult", "chain", "chord", "get_workflow", "group", "step"]
