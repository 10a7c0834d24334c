"""The director graph: ``understand → plan → gate → (approve, or back to gate after an edit)
→ execute → record → reply``."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from graph.nodes.approve import await_approval
from graph.nodes.execute import execute_steps
from graph.nodes.gate import gate_steps
from graph.nodes.plan import make_plan
from graph.nodes.record import record_outcome
from graph.nodes.reply import compose_reply
from graph.nodes.understand import understand_message
from graph.routers import route_after_approval, route_after_gate, route_after_plan
from graph.state import DirectorDeps, PlanState


def build_graph(*, checkpointer: BaseCheckpointSaver | None) -> Any:
    """The compiled director graph. Dependencies arrive per run as ``context=DirectorDeps``."""
    builder = StateGraph(PlanState, context_schema=DirectorDeps)
    builder.add_node(understand_message)
    builder.add_node(make_plan)
    builder.add_node(gate_steps)
    builder.add_node(await_approval)
    builder.add_node(execute_steps)
    builder.add_node(record_outcome)
    builder.add_node(compose_reply)
    builder.add_edge(START, "understand_message")
    builder.add_edge("understand_message", "make_plan")
    builder.add_conditional_edges("make_plan", route_after_plan)
    builder.add_conditional_edges("gate_steps", route_after_gate)
    builder.add_conditional_edges("await_approval", route_after_approval)
    builder.add_edge("execute_steps", "record_outcome")
    builder.add_edge("record_outcome", "compose_reply")
    builder.add_edge("compose_reply", END)
    return builder.compile(checkpointer=checkpointer)
