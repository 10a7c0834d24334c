"""An in-process adapter that records everything: the test backend that reads like a chat."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.base import ChatAdapter, EventSink
from graph.events import ApprovalCard, Inbound


@dataclass
class Sent:
    """One thing the adapter was asked to show."""

    kind: str
    chat: str
    text: str = ""
    card: ApprovalCard | None = None
    ref: Any = None
    choices: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class InMemoryAdapter(ChatAdapter):
    """Events go in through :meth:`say` and :meth:`press`; everything shown lands in ``sent``.

    Attributes:
        name: the channel name (pick one per test to test operator lists).
    """

    name: str = "memory"
    sent: list[Sent] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)
    _sink: EventSink | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def start(self, sink: EventSink) -> None:
        """Remember where events go."""
        self._sink = sink

    async def stop(self) -> None:
        """Nothing queued to flush."""
        self._sink = None

    async def say(self, text: str, *, actor: str = "operator", chat: str = "chat-1",
                  event_id: str | None = None) -> list[Sent]:
        """Deliver a message; return what was shown in answer."""
        return await self._deliver(Inbound(channel=self.name, chat=chat, actor=actor,
                                           event_id=event_id or f"m{next(self._ids)}", text=text))

    async def voice(self, audio: bytes, *, forwarded: bool = False, actor: str = "operator",
                    chat: str = "chat-1") -> list[Sent]:
        """Deliver a voice note (``forwarded``: someone else recorded it); return what was
        shown in answer."""
        file_id = f"voice-{len(self.recordings)}"
        self.recordings[file_id] = audio
        attachment = {"kind": "voice", "file_id": file_id, "mime": "audio/ogg",
                      **({"forwarded": True} if forwarded else {})}
        return await self._deliver(Inbound(channel=self.name, chat=chat, actor=actor,
                                           event_id=f"v{next(self._ids)}",
                                           attachment=attachment))

    async def download_file(self, file_id: str) -> bytes:
        """A recording delivered by :meth:`voice`."""
        return self.recordings[file_id]

    async def press(self, verb: str, approval_id: str, *, actor: str = "operator",
                    chat: str = "chat-1", event_id: str | None = None) -> list[Sent]:
        """Press a card button; return what was shown in answer."""
        return await self._deliver(Inbound(channel=self.name, chat=chat, actor=actor,
                                           event_id=event_id or f"b{next(self._ids)}",
                                           verb=verb, approval_id=approval_id))

    async def _deliver(self, inbound: Inbound) -> list[Sent]:
        assert self._sink is not None, "adapter not started"
        before = len(self.sent)
        await self._sink.on_event(inbound)
        return self.sent[before:]

    async def send(self, chat: str, text: str) -> None:
        """Record a message."""
        self.sent.append(Sent("message", chat, text=text))

    async def notice(self, chat: str, text: str) -> None:
        """Record a notice."""
        self.sent.append(Sent("notice", chat, text=text))

    async def ask(self, chat: str, text: str, choices: list[tuple[str, str]]) -> None:
        """Record a question with buttons."""
        self.sent.append(Sent("choice", chat, text=text, choices=list(choices)))

    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """Record a card; its ref is its position in ``sent``."""
        ref = f"card-{len(self.sent)}"
        self.sent.append(Sent("card", chat, card=card, ref=ref))
        return ref

    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Record a card edit."""
        self.sent.append(Sent("card_update", chat, card=card, ref=ref))

    def texts(self) -> list[str]:
        """Every message and notice text, in order."""
        return [s.text for s in self.sent if s.kind in ("message", "notice")]
