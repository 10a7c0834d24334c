"""The ``compose_reply`` node: a receipt per done step, the error per failed one."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from connectors.base import Receipt
from graph.state import DirectorDeps, PlanState, say


async def compose_reply(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Say what happened: a receipt per done step, the error per failed one."""
    replies: list[dict[str, Any]] = []
    steps = state.get("steps", [])
    lines = []
    for step, result in zip(steps, state.get("results", []), strict=False):
        title = step["diff"]["title"]
        if result["status"] == "done":
            receipt = Receipt.from_dict(result["receipt"])
            lines.append(f"Done: {receipt.summary} — receipt {receipt.id}")
        elif result["status"] == "failed":
            lines.append(f"Failed: {title}: {result['error']}")
        elif result["status"] == "skipped":
            cause = result.get("because", 0)
            lines.append(f"Not run: {title} — it depends on step {cause + 1} "
                         f"({steps[cause]['diff']['title']}), which "
                         f"{_outcome(state['results'][cause]['status'])}.")
        else:
            lines.append(f"{result['status'].capitalize()}: {title} — nothing was sent.")
    if lines:
        replies.append(say("\n".join(lines)))
    if any(result.get("unknown") for result in state.get("results", [])):
        # Whether it happened cannot be told: the operator decides.
        plan = state["plan_id"]
        replies.append({"kind": "choice", "text": "Whether it happened is unknown. Check, then:",
                        "run": [("Mark done", f"/retry {plan} done"),
                                ("Try again", f"/retry {plan}"),
                                ("Drop", f"/retry {plan} drop")]})
    if state.get("approval_id"):
        replies.append({"kind": "card_update", "approval_id": state["approval_id"]})
    return {"replies": replies}


def _outcome(status: str) -> str:
    return {"failed": "failed", "rejected": "was rejected", "expired": "expired",
            "skipped": "did not run", "undone": "was undone"}.get(status, f"is {status}")
