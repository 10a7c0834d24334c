"""The one base of every fake server: aiohttp on 127.0.0.1, port 0, inside the caller's event
loop, with a change signal to wait on instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.waiting import wait_until


@dataclass
class Call:
    """One API request as a fake server received it."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class LoopbackServer:
    """Subclasses add their routes in :meth:`routes`; ``await server.start()`` then sets
    ``url`` (``http://127.0.0.1:PORT``), ``await server.stop()`` ends it.

    Attributes:
        url: where the server listens, once started.
    """

    url: str = ""
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def routes(self, router: web.UrlDispatcher) -> None:
        """Add the server's routes."""
        raise NotImplementedError

    async def start(self) -> None:
        """Listen on 127.0.0.1, on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        await self.started()

    async def started(self) -> None:
        """Hook: after the server listens."""

    async def stopping(self) -> None:
        """Hook: before the server stops (wake long polls, close sockets)."""

    async def stop(self) -> None:
        """Stop listening."""
        await self.stopping()
        if self._runner is not None:
            await self._runner.cleanup()

    def changed(self) -> None:
        """Tell waiters something happened (a request arrived, state changed)."""
        self._changed.set()

    def describe(self) -> str:
        """What a failed wait shows about the server's state."""
        return ""

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 120) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked after every change)."""
        return await wait_until(predicate, self._changed, timeout=timeout,
                                describe=self.describe)
