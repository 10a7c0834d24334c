"""The ``compose_reply`` node: a receipt per done step, the error per failed one.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from connectors.base import Receipt
from graph.state import DirectorDeps, PlanState, say


async def compose_reply(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Say what happened: a receipt per done step, the error per failed one."""
    replies: list[dict[str, Any]] = []
    decision = state.get("decision")
    lines = []
    for step, result in zip(state.get("steps", []), state.get("results", []), strict=False):
        title = step["diff"]["title"]
        if result["status"] == "done":
            receipt = Receipt.from_dict(result["receipt"])
            lines.append(f"Done: {receipt.summary} — receipt {receipt.id}")
        elif result["status"] == "failed":
            lines.append(f"Failed: {title}: {result['error']}")
        elif decision in ("rejected", "expired", "superseded"):
            lines.append(f"{decision.capitalize()}: {title} — nothing was sent.")
        else:
            lines.append(f"Skipped: {title} (an earlier step failed).")
    if lines:
        replies.append(say("\n".join(lines)))
    if state.get("approval_id"):
        replies.append({"kind": "card_update", "approval_id": state["approval_id"]})
    return {"replies": replies}
