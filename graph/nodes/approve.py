"""The ``await_approval`` node: the approval row decides; ``interrupt()`` waits for it."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.state import DirectorDeps, PlanState


async def await_approval(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Wait for the operator. The approval row is the source of truth for the decision, and
    each step's row for the verdict on that step (decided one by one, or undone)."""
    storage = runtime.context.storage
    approval = await storage.approvals.get(state["approval_id"])
    if approval.status == "pending":
        interrupt({"approval_id": approval.id})
        approval = await storage.approvals.get(state["approval_id"])
    stored = {s.position: s for s in await storage.plans.steps(state["plan_id"])}
    if approval.status == "superseded":
        # Edited: the new version goes through the gate again and gets a card of its own.
        steps = [{**{k: v for k, v in step.items() if k not in ("diff", "risk")},
                  "action": stored[step["position"]].action if step["position"] in stored
                  else step["action"]} for step in state["steps"]]
        return {"decision": "superseded", "steps": steps, "approval_id": None,
                "revision": state.get("revision", 0) + 1}
    # A step that started running (or finished) before a crash was approved, whatever it
    # shows now; only the steps turned down, left to expire or undone did not get the nod.
    verdicts = {str(step["position"]): _verdict(stored[step["position"]].status,
                                                approval.status)
                for step in state["steps"] if step.get("needs_approval")
                and step["position"] in stored}
    return {"decision": approval.status, "verdicts": verdicts, "bound": approval.bound or {}}


def _verdict(status: str, decision: str) -> str:
    if status in ("rejected", "expired", "undone"):
        return status
    if status in ("approved", "running", "done", "failed"):
        return "approved"
    return decision  # a step recorded before per-step decisions existed: the card decides
