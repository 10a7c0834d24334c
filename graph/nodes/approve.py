"""The ``await_approval`` node: the approval row decides; ``interrupt()`` waits for it."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.state import DirectorDeps, PlanState


async def await_approval(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Wait for the operator. The approval row is the source of truth for the decision."""
    approval = await runtime.context.storage.approvals.get(state["approval_id"])
    if approval.status == "pending":
        interrupt({"approval_id": approval.id})
        approval = await runtime.context.storage.approvals.get(state["approval_id"])
    return {"decision": approval.status}
