"""The chat adapter seam."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from graph.events import ApprovalCard, Inbound

EventHandler = Callable[[Inbound], Awaitable[None]]


class ChatAdapter(ABC):
    """A chat platform. Constructed with its SDK client or base URL, so tests use fake servers."""

    name: str
    """The channel name carried by its events (``console``, ``telegram``, ``slack``)."""

    @abstractmethod
    async def start(self, on_event: EventHandler) -> None:
        """Begin receiving events; each is handed to ``on_event``."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and flush what is queued for delivery."""

    @abstractmethod
    async def send(self, chat: str, text: str) -> None:
        """Send a text message."""

    @abstractmethod
    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """Post an approval card with its buttons; return a reference for :meth:`update_card`."""

    @abstractmethod
    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Show a decided card's outcome where it was posted (and remove its buttons)."""

    async def notice(self, chat: str, text: str) -> None:
        """A short answer to a button press; ephemeral where the platform allows."""
        await self.send(chat, text)
