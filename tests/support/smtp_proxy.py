"""A TCP proxy between an SMTP client and a real server, for faults no real server makes on
demand: drop the connection right after the server accepted a message (the client never hears
``250``), turn a connection away with ``421`` once, or call a hook at a point of the
conversation (the crash tests kill the client process there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

END_OF_DATA = b"\r\n.\r\n"


class SmtpProxy:
    """Listens on 127.0.0.1 (port 0) and forwards to ``127.0.0.1:upstream``.

    Attributes:
        drop_after_accept: connections to cut after the server's reply to the end of DATA
            (that reply is swallowed), counted down.
        refuse: connections to answer ``421`` and close without reaching the server.
        on_point: called with ``"mail_from"``, ``"end_of_data"``, ``"accepted"`` (the server
            answered the end of DATA; not forwarded yet) and ``"forwarded"``.
        accepted: how many end-of-DATA replies with ``250`` the server sent through the proxy.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.drop_after_accept = 0
        self.refuse = 0
        self.on_point: Callable[[str], None] | None = None
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> SmtpProxy:
        """Start listening; ``self.port`` is where."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _point(self, name: str) -> None:
        if self.on_point is not None:
            self.on_point(name)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
                      ) -> None:
        if self.refuse > 0:
            self.refuse -= 1
            client_w.write(b"421 127.0.0.1 Service not available, try again later\r\n")
            await client_w.drain()
            client_w.close()
            return
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        state = {"data_ended": False}

        async def upstream() -> None:
            tail = b""
            while chunk := await client_r.read(65536):
                seen = tail + chunk
                if b"MAIL FROM" in seen.upper():
                    self._point("mail_from")
                if END_OF_DATA in seen:
                    state["data_ended"] = True
                    self._point("end_of_data")
                tail = seen[-8:]
                server_w.write(chunk)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while chunk := await server_r.read(65536):
                accepted = False
                if state["data_ended"]:
                    state["data_ended"] = False
                    if chunk.startswith(b"250"):
                        accepted = True
                        self.accepted += 1
                        self._point("accepted")
                        if self.drop_after_accept > 0:
                            self.drop_after_accept -= 1
                            client_w.transport.abort()
                            server_w.transport.abort()
                            return
                client_w.write(chunk)
                await client_w.drain()
                if accepted:
                    self._point("forwarded")
            client_w.close()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            for writer in (client_w, server_w):
                writer.close()
