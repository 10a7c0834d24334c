"""The terminal adapter behind ``solo chat``: interactive or driven by piped stdin."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bot.adapters.base import ChatAdapter, EventSink
from bot.rendering import console_keys, render_card_text, render_outcome_text
from graph.events import ApprovalCard, Inbound

CHAT = "terminal"
OPERATOR = "console"
_DECISION = re.compile(r"^(?P<verb>a|approve|r|reject|e|edit|u|undo)(?:\s+(?P<id>[a-z2-7]{8}))?"
                       r"(?:\s+(?P<step>\d{1,2}))?$", re.IGNORECASE)
_VERBS = {"a": "approve", "r": "reject", "e": "edit", "u": "undo"}


class ConsoleAdapter(ChatAdapter):
    """Reads one message per line; ``a``/``r``/``e``/``u`` answer cards.

    ``a`` approves the newest card, ``a ID`` any card, ``a ID 2`` (or ``a 2``) only its step 2;
    ``r`` rejects the same way, ``e`` edits (the next line is the new text), ``u`` undoes.

    Lines are handled one at a time, in order, so a piped script behaves like a conversation.
    Whoever sits at the terminal is the operator.

    Args:
        stdin, stdout: the streams (tests pass pipes).
        timezone: for times on cards.
    """

    name = "console"

    def __init__(self, *, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
                 timezone: ZoneInfo | None = None) -> None:
        self._in = stdin
        self._out = stdout
        self._tz = timezone or ZoneInfo("UTC")
        self._session = uuid.uuid4().hex[:12]
        self._count = 0
        self._last_card: str | None = None
        self._choices: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.interactive = stdin.isatty()

    def _print(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    async def start(self, sink: EventSink) -> None:
        """Start reading lines in the background."""
        self._task = asyncio.create_task(self._read_loop(sink))

    async def wait_closed(self) -> None:
        """Until the operator quits or stdin ends."""
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        """Stop reading (a line being handled is finished first)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _read_loop(self, sink: EventSink) -> None:
        while True:
            if self.interactive:
                print("> ", end="", file=self._out, flush=True)
            line = await asyncio.to_thread(self._in.readline)
            if not line:
                return
            text = line.strip()
            if not text:
                continue
            if text.lower() in ("quit", "exit", "/quit"):
                return
            await sink.on_event(self._inbound(text))

    def _inbound(self, text: str) -> Inbound:
        self._count += 1
        event_id = f"{self._session}:{self._count}"
        if text.isdigit() and 0 < int(text) <= len(self._choices):
            return Inbound(channel=self.name, chat=CHAT, actor=OPERATOR, event_id=event_id,
                           text=text, verb="choose", approval_id=self._choices[int(text) - 1])
        match = _DECISION.match(text)
        if match:
            verb = _VERBS[match["verb"][0].lower()]
            approval_id = (match["id"] or self._last_card or "").lower()
            if approval_id and match["step"]:
                approval_id += f":{int(match['step'])}"
            return Inbound(channel=self.name, chat=CHAT, actor=OPERATOR, event_id=event_id,
                           text=text, verb=verb, approval_id=approval_id)
        return Inbound(channel=self.name, chat=CHAT, actor=OPERATOR, event_id=event_id, text=text)

    async def send(self, chat: str, text: str) -> None:
        """Print ``text``."""
        self._print(text)

    async def ask(self, chat: str, text: str, choices: list[tuple[str, str]]) -> None:
        """Print the question; ``1``, ``2``... answer it."""
        self._choices = [data for _, data in choices]
        options = "  ".join(f"[{i}] {label}" for i, (label, _) in enumerate(choices, 1))
        self._print(f"{text}\n  {options}   (answer with the number)")

    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """Print the card; ``a``/``r``/``e``/``u`` alone now answer it."""
        self._print(render_card_text(card, timezone=self._tz))
        self._remember(card)
        return card.approval_id

    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Print the card's new state (and what can still be pressed)."""
        line = render_outcome_text(card)
        if card.buttons:
            line += f"\n  {console_keys(card)}"
        self._print(line)
        self._remember(card)

    def _remember(self, card: ApprovalCard) -> None:
        """The newest card with buttons is the one ``a``/``r``/``e``/``u`` answer."""
        if card.buttons:
            self._last_card = card.approval_id
        elif self._last_card == card.approval_id:
            self._last_card = None
