"""The web console as a chat channel (``web``): what the operator does on the page (a button,
a command, a sentence in its chat box) enters through the operator gate like any chat event,
and the answers come back here, for the page to show."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.adapters.base import ChatAdapter, EventSink
from graph.events import ApprovalCard
from memory.models import utcnow

CHANNEL = "web"
CHAT = "console"
ACTOR = "web-console"
"""Who the web console's operator is in the audit log and on decided cards."""
KEPT = 100


@dataclass(frozen=True)
class Said:
    """One answer shown on the console."""

    seq: int
    at: datetime
    kind: str
    text: str
    approval_id: str | None = None


class WebChannel(ChatAdapter):
    """Keeps the newest answers (``KEPT``) in order; :meth:`since` reads those after a point."""

    name = CHANNEL

    def __init__(self) -> None:
        self._said: deque[Said] = deque(maxlen=KEPT)
        self._seq = itertools.count(1)
        self.last_seq = 0

    def _add(self, kind: str, text: str, approval_id: str | None = None) -> None:
        self.last_seq = next(self._seq)
        self._said.append(Said(self.last_seq, utcnow(), kind, text, approval_id))

    def since(self, seq: int) -> list[Said]:
        """Answers after ``seq`` (0: all kept), oldest first."""
        return [s for s in self._said if s.seq > seq]

    async def start(self, sink: EventSink) -> None:
        """Nothing to receive from: the console's pages hand events to the app."""

    async def stop(self) -> None:
        """Nothing runs in the background."""

    async def send(self, chat: str, text: str) -> None:
        """Keep a message."""
        self._add("message", text)

    async def ask(self, chat: str, text: str, choices: list[tuple[str, str]]) -> None:
        """Keep a question; its choices are shown as commands to type (the page has no
        button for them)."""
        self._add("message", text + "".join(f"\n  · {label}" for label, _ in choices))

    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """A card asked for on the console waits in the queue page; say so."""
        self._add("card", f"Approval {card.approval_id} waits in the queue: {card.reason}",
                  card.approval_id)
        return card.approval_id

    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Keep a decided card's outcome."""
        self._add("card", f"Approval {card.approval_id}: {card.outcome or card.status}",
                  card.approval_id)
