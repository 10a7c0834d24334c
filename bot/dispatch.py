"""Showing one reply on one adapter: the only place that switches on a reply's kind.

A reply arrives as its kind, its chat and its stored payload (the form the ``deliveries`` table
keeps), whether it comes straight from the app or from the durable queue. Cards are rendered
from their approval at the moment they are shown, so they always show its current state.
"""

from __future__ import annotations

from typing import Any

from bot.adapters.base import ChatAdapter
from graph.desk import ApprovalDesk


async def show(adapter: ChatAdapter, *, kind: str, chat: str, payload: dict[str, Any],
               desk: ApprovalDesk) -> None:
    """Show a ``message``, ``notice``, ``choice``, ``card`` or ``card_update`` on ``adapter``.

    Raises:
        DeliveryError: the platform refused it or asked to wait.
    """
    if kind == "choice":
        await adapter.ask(chat, payload["text"], [tuple(c) for c in payload["choices"]])
    elif kind == "notice":
        await adapter.notice(chat, payload["text"])
    elif kind in ("card", "card_update"):
        approval = await desk.storage.approvals.get(payload["approval_id"])
        card = await desk.card_for(approval)
        if kind == "card":
            ref = await adapter.post_card(chat, card)
            await desk.attach_card(approval.id, adapter.name, ref)
        else:
            await adapter.update_cards(chat, approval.card_refs.get(adapter.name, []), card)
    else:
        await adapter.send(chat, payload["text"])
