"""The watchdog: keeps alive what Solo OS listens to — each chat adapter's receiving side, the
mail poller and each MCP server (:mod:`bot.source_watch`) — and tells the operator when one was
not.

Every ``interval`` seconds, for each source that says what to expect (:meth:`Watched.watch`):
no sign of life for longer than expected → probe it; a failed probe → reconnect, and tell the
operator on the other channels (where they can still be reached), then again once it answers.
No event for ``refresh_seconds`` → a fresh connection, quietly (a connection may answer pings
and deliver nothing; the adapter tells afterwards if the fresh one proved the old one deaf).
A failed reconnect is tried again at the next check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.adapters.base import Liveness, Watch
from graph.events import Reply
from graph.timefmt import when_text
from memory.models import utcnow

log = logging.getLogger(__name__)
PROBE_SECONDS = 15.0


class Watched(Protocol):
    """What the watchdog looks after (a :class:`~bot.adapters.base.ChatAdapter` is one; see
    there for what each member means)."""

    @property
    def title(self) -> str:
        """How notices name it."""

    @property
    def liveness(self) -> Liveness:
        """When it was last heard from."""

    def watch(self) -> Watch | None:
        """What to expect of it; None: nothing."""

    async def probe(self) -> str | None:
        """None when it works, else what is wrong."""

    async def reconnect(self) -> None:
        """The cure: a fresh connection (raise if it cannot be had now)."""

    def take_incident(self) -> str | None:
        """Something to tell the operator once, found after the fact; None: nothing."""

    def down_notice(self, problem: str, last: str) -> str:
        """What the operator hears when it stopped (``last``: when it was last heard from)."""


class Watchdog:
    """See the module docstring.

    Args:
        sources: what is watched (the running chat adapters, the mail poller, MCP servers),
            by name; a chat adapter's name is its channel.
        deliver: sends replies.
        targets: where the operator is reached, as ``(channel, chat)``.
        timezone: the operator's, for times in notices.
    """

    def __init__(self, *, sources: Callable[[], dict[str, Watched]],
                 deliver: Callable[[list[Reply]], Awaitable[None]],
                 targets: Callable[[], list[tuple[str, str]]], timezone: ZoneInfo) -> None:
        self._sources = sources
        self._deliver = deliver
        self._targets = targets
        self._timezone = timezone
        self.down: dict[str, str] = {}
        """Sources found not answering, and why (until they answer again)."""

    async def check(self) -> None:
        """One look at every source (see the module docstring)."""
        for name, source in list(self._sources().items()):
            try:
                await self._check(name, source)
            except Exception:
                log.exception("watchdog: checking %s failed", name)

    async def _check(self, name: str, source: Watched) -> None:
        title = source.title
        watch = source.watch()
        incident = source.take_incident()
        if incident:
            await self._tell(name, f"{title}: {incident}")
        if watch is None:
            return
        live, now = source.liveness, utcnow()
        problem = None
        if live.quiet(now) > watch.quiet_seconds or name in self.down:
            try:
                problem = await asyncio.wait_for(source.probe(), PROBE_SECONDS)
            except TimeoutError:
                problem = f"no answer to a check in {PROBE_SECONDS:.0f} s"
        stale = watch.refresh_seconds is not None and \
            live.without_events(now) > watch.refresh_seconds
        if problem is None and name in self.down:
            del self.down[name]
            log.warning("watchdog: %s answers again", name)
            await self._tell(name, f"{title} works again.")
            return
        if problem is None and not stale:
            return
        if problem is not None:
            log.warning("watchdog: %s: %s; reconnecting", name, problem)
        try:
            await asyncio.wait_for(source.reconnect(), PROBE_SECONDS * 2)
        except Exception as exc:
            problem = problem or f"reconnecting failed: {type(exc).__name__}: {exc}"
            log.warning("watchdog: reconnecting %s failed: %s", name, exc)
        if problem is not None and name not in self.down:
            self.down[name] = problem
            last = when_text(live.alive_at or live.since, self._timezone)
            await self._tell(name, source.down_notice(problem, last))

    async def _tell(self, channel: str, text: str) -> None:
        """Say ``text`` on every channel but ``channel`` (on it too if it is the only one)."""
        targets = self._targets()
        others = [(c, chat) for c, chat in targets if c != channel] or targets
        await self._deliver([Reply("message", c, chat, text=text) for c, chat in others])

    async def run(self, interval: float = 15.0) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.check()
