"""What the operator asks of Solo OS itself: each handler takes the intent, the plan state and
the dependencies and returns what to do — replies for questions, steps for writes to Solo OS's
own state (a fact, a reminder, a forgotten item), which then run through the gate and the outbox
like any connector action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from graph.handlers.calendar import answer_calendar
from graph.handlers.info import answer_question
from graph.handlers.mail import answer_mail
from graph.handlers.memory import answer_memory
from graph.handlers.plans import answer_plans
from graph.handlers.playbooks import answer_playbooks
from graph.handlers.reminders import answer_reminder
from graph.handlers.tools import answer_tools
from graph.state import DirectorDeps, Planned, PlanState
from graph.understanding import Intent

Handler = Callable[[Intent, PlanState, DirectorDeps], Awaitable[Planned]]

HANDLERS: dict[str, Handler] = {
    "remember": answer_memory, "recall": answer_memory, "forget": answer_memory,
    "remind": answer_reminder, "plans": answer_plans,
    "email": answer_mail, "reply": answer_mail, "inbox": answer_mail,
    "agenda": answer_calendar, "event": answer_calendar, "task": answer_calendar,
    "tools": answer_tools, "playbook": answer_playbooks,
}


async def answer(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """What to do for ``intent``: its registered handler, else a read-only answer."""
    handler = HANDLERS.get(intent.name)
    if handler is not None and "error" not in intent.slots:
        return await handler(intent, state, deps)
    return {"replies": await answer_question(intent, deps)}
