"""The chat adapter seam."""

from __future__ import annotations

import asyncio
import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from graph.events import ApprovalCard, Inbound, Reply
from memory.models import utcnow

log = logging.getLogger(__name__)


@dataclass
class Admitted:
    """An inbound event after the gate: durably recorded, not yet carried out.

    Attributes:
        plan_ids: plans to continue (empty for a duplicate, a refusal or a stale press).
        replies: immediate answers (refusal, stale card notice).
    """

    inbound: Inbound
    plan_ids: list[str] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)


class EventSink(Protocol):
    """Where adapters hand events (the app).

    Adapters that must acknowledge the platform call :meth:`admit` (fast: the gate and the
    durable record), acknowledge, then :meth:`process` (the slow part). Others call
    :meth:`on_event`, which does both.
    """

    async def admit(self, inbound: Inbound) -> Admitted:
        """Gate and record ``inbound``."""
        ...

    async def process(self, admitted: Admitted) -> None:
        """Carry out an admitted event and deliver the replies."""
        ...

    async def on_event(self, inbound: Inbound) -> None:
        """Admit and process."""
        ...


@dataclass
class Liveness:
    """When an adapter last heard from its platform: ``event_at`` an event (a message, a
    press), ``alive_at`` any sign of life (an event, an empty poll, a frame, a pong),
    ``since`` when it (re)connected."""

    since: datetime = field(default_factory=utcnow)
    event_at: datetime | None = None
    alive_at: datetime | None = None

    def event(self) -> None:
        """An event arrived (also a sign of life)."""
        self.event_at = self.alive_at = utcnow()

    def alive(self) -> None:
        """The platform answered."""
        self.alive_at = utcnow()

    def quiet(self, now: datetime) -> float:
        """Seconds without a sign of life (counted from the connection at most)."""
        return (now - max(self.alive_at or self.since, self.since)).total_seconds()

    def without_events(self, now: datetime) -> float:
        """Seconds without an event (counted from the connection at most)."""
        return (now - max(self.event_at or self.since, self.since)).total_seconds()

    def event_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the last event, None if none came since the start."""
        if self.event_at is None:
            return None
        return round(((now or utcnow()) - self.event_at).total_seconds(), 1)


@dataclass(frozen=True)
class Watch:
    """What an adapter's watchdog expects (see :mod:`bot.watchdog`).

    Attributes:
        quiet_seconds: without a sign of life for this long, the connection is probed; a
            failed probe → reconnect, and the operator is told on another channel.
        refresh_seconds: without an event for this long, reconnect anyway, quietly (a
            connection can stay up, answering pings, and deliver nothing: only a fresh one
            tells). None: never.
    """

    quiet_seconds: float
    refresh_seconds: float | None = None


def health_endpoint(refused: Callable[[], int], liveness: Callable[[], Liveness]
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``/healthz`` handler of an adapter that listens on HTTP: ``{"ok": true,
    "refused": N, "last_event_seconds": S}``, N the deliveries refused since the start (a
    wrong secret or signature: someone is knocking), S the age of the last event (null: none
    since the start)."""
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "refused": refused(),
                                  "last_event_seconds": liveness().event_age()})
    return healthz


class DeliveryError(Exception):
    """A platform refused or failed a send.

    Attributes:
        retry_after: seconds the platform asked to wait (429), if it said.
        permanent: retrying cannot help (blocked by the user, chat gone, bad request).
    """

    def __init__(self, message: str, *, retry_after: float | None = None,
                 permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class ChatAdapter(ABC):
    """A chat platform. Constructed with its SDK client or base URL, so tests use fake servers."""

    name: str
    """The channel name carried by its events (``console``, ``telegram``, ``slack``)."""

    durable_delivery: bool = False
    """True: replies go through the app's durable per-chat queue (network platforms)."""

    @property
    def liveness(self) -> Liveness:
        """When the platform was last heard from (created on first use)."""
        found = self.__dict__.get("_liveness")
        if found is None:
            found = self.__dict__["_liveness"] = Liveness()
        return found

    def watch(self) -> Watch | None:
        """What the watchdog expects of this adapter's receiving side; None: nothing (it is
        not connected to anything that can go quiet, e.g. a webhook that is called)."""
        return None

    async def probe(self) -> str | None:
        """Check the receiving side: None when it works, else what is wrong."""
        return None

    async def reconnect(self) -> None:  # noqa: B027 - optional, as is watch()
        """Replace the receiving side's connection (raise if it cannot be done now)."""

    def take_incident(self) -> str | None:
        """Something the adapter noticed that the operator should hear of, once (e.g. a
        connection found deaf after the fact); None: nothing."""
        return None

    @property
    def title(self) -> str:
        """How the watchdog's notices name it ("Telegram")."""
        return self.name.capitalize()

    def down_notice(self, problem: str, last: str) -> str:
        """What the operator hears on the other channels when it stopped answering."""
        return (f"{self.title} stopped answering ({problem}); heard from last {last}. "
                "Reconnecting; until it works, reach me here.")

    @abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Begin receiving events; each is handed to ``sink``."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and finish the events being processed."""

    @abstractmethod
    async def send(self, chat: str, text: str) -> None:
        """Send a text message.

        Raises:
            DeliveryError: the platform refused it or asked to wait.
        """

    @abstractmethod
    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """Post an approval card with its buttons; return a reference for :meth:`update_card`."""

    @abstractmethod
    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Show a decided card's outcome where it was posted (and remove its buttons); with no
        ``ref``, post the outcome as a new message."""

    async def ask(self, chat: str, text: str, choices: list[tuple[str, str]]) -> None:
        """A question with one button per ``(label, data)``; a tap comes back as an inbound
        event with ``verb="choose"`` and ``approval_id=data``. Default: the text alone."""
        await self.send(chat, text)

    async def update_cards(self, chat: str, refs: list[Any], card: ApprovalCard) -> None:
        """:meth:`update_card` on every posted copy (or once without a ref if none is known)."""
        for ref in refs or [None]:
            await self.update_card(chat, ref, card)

    async def notice(self, chat: str, text: str) -> None:
        """A short answer to a button press; ephemeral where the platform allows."""
        await self.send(chat, text)

    async def say_transcribing(self, chat: str) -> None:
        """Tell at once that a voice note arrived (transcribing takes a moment); best effort,
        sent directly: the answer that follows goes through the usual delivery."""
        try:
            await self.send(chat, "🎙 transcribing…")
        except DeliveryError as exc:
            log.info("could not say 'transcribing' to %s: %s", chat, exc)

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release clients, after the app's delivery queue for this adapter drained."""


class ChatProcessing:
    """Runs admitted events in the background: concurrently across chats, in arrival order
    within one chat (a per-chat lock; asyncio locks are fair, so tasks take turns in order).

    Args:
        while_running: started beside each event's processing and cancelled after it (e.g. a
            typing indicator); receives the chat.
    """

    def __init__(self, *, while_running: Callable[[str], Awaitable[None]] | None = None) -> None:
        self._while_running = while_running
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    def spawn(self, sink: EventSink, admitted: Admitted) -> None:
        """Process ``admitted`` in the background."""
        task = asyncio.create_task(self._run(sink, admitted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, sink: EventSink, admitted: Admitted) -> None:
        chat = admitted.inbound.chat
        lock = self._locks.get(chat)
        if lock is None:
            lock = self._locks[chat] = asyncio.Lock()
        async with lock:
            beside = (asyncio.create_task(self._while_running(chat))
                      if self._while_running else None)
            try:
                await sink.process(admitted)
            finally:
                if beside is not None:
                    beside.cancel()

    async def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the events being processed."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=seconds)
