"""The ``record_outcome`` node: close the approval with its receipt (idempotent)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.state import DirectorDeps, PlanState


async def record_outcome(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Close the approval with its receipt. Idempotent: it may run again after a crash."""
    approval_id = state.get("approval_id")
    if approval_id:
        receipts = [r["receipt"]["id"] for r in state.get("results", []) if r.get("receipt")]
        await runtime.context.storage.approvals.complete(
            approval_id, receipt_id=receipts[0] if receipts else None)
    return {}
