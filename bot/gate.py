"""The operator gate: who may command and approve, and what an admitted event starts.

Every inbound event passes here first. Strangers are refused and audited (and told once per
run); an operator's message becomes a plan, a button press a decision on the approval desk, the
text an operator sends while editing a card that card's edit. Everything here is fast and
durable, so adapters acknowledge the platform right after it.
"""

from __future__ import annotations

from bot.adapters.base import Admitted
from graph.director import Director
from graph.events import Inbound, Reply
from memory.db import urgent

REFUSAL = "Sorry, this assistant only works for its operators."
LOCAL_CHANNELS = ("console", "web")
"""Channels only the operator can reach: the terminal of ``solo chat`` and the web console
(whose requests pass its password and session first)."""


class OperatorGate:
    """See the module docstring.

    Args:
        director: records plans and decisions.
        operators: platform user ids allowed per channel (the local channels need none:
            whoever sits at the terminal, or logged in to the web console, is the operator).
    """

    def __init__(self, *, director: Director, operators: dict[str, set[str]]) -> None:
        self.director = director
        self.operators = operators
        self._refused: set[tuple[str, str]] = set()

    def is_operator(self, inbound: Inbound) -> bool:
        """Whether ``inbound.actor`` may command or approve on its channel."""
        if inbound.channel in LOCAL_CHANNELS:
            return True
        return inbound.actor in self.operators.get(inbound.channel, set())

    async def admit(self, inbound: Inbound) -> Admitted:
        """Gate and record ``inbound``. Raises on storage errors, so that an adapter leaves the
        event unacknowledged and gets it again."""
        with urgent():
            return await self._admit(inbound)

    async def _admit(self, inbound: Inbound) -> Admitted:
        director = self.director
        if not self.is_operator(inbound):
            await director.refuse(inbound)
            replies = []
            if (inbound.channel, inbound.actor) not in self._refused:
                self._refused.add((inbound.channel, inbound.actor))
                replies = [Reply("notice", inbound.channel, inbound.chat, text=REFUSAL)]
            return Admitted(inbound, replies=replies)
        if inbound.verb == "choose":
            plan_id = await director.accept_choice(inbound)
            return Admitted(inbound, plan_ids=[plan_id] if plan_id else [])
        if inbound.verb is not None:
            plan_ids, replies = await director.desk.decide(inbound)
            return Admitted(inbound, plan_ids=plan_ids, replies=replies)
        editing = await director.desk.being_edited(inbound)
        if editing is not None:
            plan_ids, replies = await director.desk.apply_edit(inbound, editing)
            return Admitted(inbound, plan_ids=plan_ids, replies=replies)
        plan_id = await director.accept(inbound)
        return Admitted(inbound, plan_ids=[plan_id] if plan_id else [])
