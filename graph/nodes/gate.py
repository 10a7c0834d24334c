"""The ``gate_steps`` node: preview every step, apply the policy, open an approval for risky
plans (an approval row keyed by the plan and its version: re-running the node finds the same row;
an edit makes a new version and so a new approval).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from connectors.base import Action, ConnectorError
from graph.events import Inbound
from graph.policy import RISKS
from graph.state import (
    DirectorDeps,
    PlanState,
    action_hash,
    approval_id_for,
    idempotency_key_for,
    say,
)
from memory.models import utcnow


async def gate_steps(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Preview every step, apply the policy, and open an approval for risky plans."""
    deps = runtime.context
    inbound = Inbound.from_dict(state["inbound"])
    steps: list[dict[str, Any]] = []
    for step in state["steps"]:
        action = Action(**step["action"])
        connector = deps.connectors.get(action.connector)
        if connector is None:
            return {"steps": [], "replies": [say(f"{action.connector} is not configured.")]}
        try:
            diff = await connector.preview(action)
        except ConnectorError as exc:
            return {"steps": [], "replies": [say(f"Cannot do that: {exc}")]}
        risk = deps.policy.risk_for(action, connector.suggested_risk(action))
        if step.get("external") and risk == "low":
            risk = "medium"  # derived while outside text was in the prompt
        steps.append({**step, "risk": risk, "diff": diff.to_dict()})
    for position, step in enumerate(steps):
        step["position"] = position
        step.setdefault("key", idempotency_key_for(state["plan_id"], position))
        # Unless told otherwise, a step depends on the one before it (a plan reads in order).
        step.setdefault("depends_on", [position - 1] if position else [])
        # A step approved earlier (a retry) runs without a new card, unless it came from
        # outside text this time.
        step["needs_approval"] = deps.policy.needs_approval(step["risk"]) and \
            not (step.get("preapproved") and not step.get("external"))
    await deps.storage.plans.record_steps(state["plan_id"], [
        {**step, "idempotency_key": step["key"],
         "status": "waiting" if step["needs_approval"] else "approved"} for step in steps])
    risky = [s for s in steps if s["needs_approval"]]
    if not risky:
        return {"steps": steps, "approval_id": None}
    now = utcnow()
    approval = await deps.storage.approvals.ensure(
        id=approval_id_for(state["plan_id"], state.get("revision", 0)),
        plan_id=state["plan_id"], channel=inbound.channel, chat=inbound.chat,
        kind=risky[0]["action"]["kind"], risk=max((s["risk"] for s in risky), key=RISKS.index),
        reason=f'{inbound.actor} asked: "{inbound.text[:300]}"',
        diff={"steps": [s["diff"] for s in steps], "risks": [s["risk"] for s in steps],
              "decide": [s["position"] for s in risky]},
        # What the card shows is what may run: the exact action of each step it decides.
        bound={str(s["position"]): action_hash(s["action"]) for s in risky},
        created_at=now, expires_at=now + deps.policy.approval_ttl,
    )
    return {"steps": steps, "approval_id": approval.id}
