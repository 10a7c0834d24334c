"""Answers to what the operator asks that is not an action on a connector: each handler takes
the intent, the plan state and the dependencies and returns reply items.

Handlers that write Solo OS's own state (a fact, a reminder, a forgotten item) key what they
write by the plan id, so a re-run after a crash writes it once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graph.handlers.info import answer_question
from graph.handlers.memory import answer_memory
from graph.handlers.plans import answer_plans
from graph.handlers.reminders import answer_reminder
from graph.state import DirectorDeps, PlanState
from graph.understanding import Intent

Handler = Callable[[Intent, PlanState, DirectorDeps], Awaitable[list[dict[str, Any]]]]

HANDLERS: dict[str, Handler] = {
    "remember": answer_memory, "recall": answer_memory, "forget": answer_memory,
    "remind": answer_reminder, "plans": answer_plans,
}


async def answer(intent: Intent, state: PlanState, deps: DirectorDeps) -> list[dict[str, Any]]:
    """The reply items for ``intent``: its registered handler, else a read-only answer."""
    handler = HANDLERS.get(intent.name)
    if handler is not None and "error" not in intent.slots:
        return await handler(intent, state, deps)
    return await answer_question(intent, deps)
