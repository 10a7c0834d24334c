"""Pure routers between the director's nodes."""

from __future__ import annotations

from typing import Literal

from graph.state import PlanState


def route_after_plan(state: PlanState) -> Literal["gate_steps", "compose_reply"]:
    """Plans with steps go through the gate; answers go straight to the reply."""
    return "gate_steps" if state.get("steps") else "compose_reply"


def route_after_gate(state: PlanState) -> Literal["await_approval", "execute_steps",
                                                  "compose_reply"]:
    """Risky plans wait for approval; safe ones run; refused previews just reply."""
    if not state.get("steps"):
        return "compose_reply"
    return "await_approval" if state.get("approval_id") else "execute_steps"


def route_after_approval(state: PlanState) -> Literal["gate_steps", "execute_steps"]:
    """An edited plan goes through the gate again; a decided one runs what was approved."""
    return "gate_steps" if state.get("decision") == "superseded" else "execute_steps"
