"""The local web listener of ``solo serve`` (``[console] host, port``): the operator console
(:mod:`bot.console`), ``/metrics``, and playbook webhooks.

``POST /hooks/NAME`` runs playbook NAME when its file says ``hook = true`` and the request
carries the file's ``secret`` (``Authorization: Bearer SECRET`` or ``X-Solo-Secret``; compared in
constant time). The body — JSON with a ``text`` field, or plain text — is the run's first item:
outside text, so whatever the run then does waits for the operator's tap. The run is a durable
job written before the answer (``202``), keyed by the request's ``Idempotency-Key`` header, so a
sender that retries (or delivers twice) gets one run; the jobs loop of any instance runs it.
Nothing else is answered with detail: an unknown, disabled or paused hook and a wrong secret are
told apart only by status (404, 409, 401). ``GET /healthz`` says the listener runs and how
long ago each chat adapter last had an event and a sign of life.

It listens only with a ``[console] password``: the console's pages ask for it, the webhooks
for their own secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.console.app import Console
from bot.console.channel import WebChannel
from bot.console.guard import SecurityHeaders
from graph.playbooks import put_event_run

if TYPE_CHECKING:  # the app imports this module
    from bot.app import SoloApp

MAX_BODY = 64 * 1024


def web_app(solo: SoloApp, console: Console) -> Starlette:
    """The ASGI app for ``solo``'s listener."""

    async def hook(request: Request) -> JSONResponse:
        name = request.path_params["name"].lower()
        playbook = solo.jobs.playbooks.load()[0].get(name)
        trigger = playbook.spec.trigger if playbook else None
        if playbook is None or not playbook.spec.enabled or not trigger.hook:
            return JSONResponse({"error": "no such hook"}, status_code=404)
        given = request.headers.get("x-solo-secret") or \
            request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), trigger.secret.encode()):
            return JSONResponse({"error": "wrong or missing secret"}, status_code=401)
        if name in await solo.storage.playbooks.paused():
            return JSONResponse({"error": f"playbook {name} is paused"}, status_code=409)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
        key = request.headers.get("idempotency-key") or uuid.uuid4().hex
        run = await put_event_run(solo.storage, name, event="hook", key=key,
                                  text=_text_of(body))
        return JSONResponse({"accepted": True, "run": run}, status_code=202)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "adapters": solo.liveness()})

    return Starlette(routes=[Route("/hooks/{name}", hook, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"]),
                             *console.routes()],
                     middleware=[Middleware(SecurityHeaders)])


def _text_of(body: bytes) -> str:
    """A body's text: the ``text`` field of a JSON object, other JSON as it is, or the bytes
    as UTF-8."""
    raw = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(raw) if raw else ""
    except json.JSONDecodeError:
        return raw
    if isinstance(parsed, dict) and isinstance(parsed.get("text"), str):
        return parsed["text"]
    return raw


class WebListener:
    """:func:`web_app` served by uvicorn inside the running process: ``await start()``, then
    ``port`` is the bound port (``port=0`` picks a free one); ``await stop()``.

    Args:
        solo: the app; the console's ``web`` channel is registered on it at :meth:`start`.
        host, port: where to listen.
        password: the console's password (required: without one nothing may listen).
    """

    def __init__(self, solo: SoloApp, host: str, port: int, *, password: str) -> None:
        import uvicorn

        if not password:
            raise ValueError("the console listens only with a password")
        self._solo = solo
        self._channel = WebChannel()
        self.console = Console(solo, password=password, channel=self._channel)

        class EmbeddedServer(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the process's own SIGTERM/SIGINT handlers stay in charge

        self._server = EmbeddedServer(uvicorn.Config(
            web_app(solo, self.console), host=host, port=port, log_level="warning",
            lifespan="off", proxy_headers=False))
        self._task: asyncio.Task | None = None
        self._host = host
        self.port = port

    async def start(self) -> None:
        """Listen; raises ``OSError`` when it cannot (e.g. the port is taken)."""
        await self._solo.add_adapter(self._channel, operators=set())
        # Bound here, not by uvicorn: its own bind failure exits the whole process.
        sock = socket.create_server((self._host, self.port))
        # Inherited by accepted connections. asyncio sets it itself only on sockets whose proto
        # is TCP, and create_server leaves proto 0: without it every request after the first
        # on a kept-alive connection waited ~40 ms (Nagle against the client's delayed ACK;
        # curl and bench/console.py: 43 ms → 0.3 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"the web listener on port {self.port} did not start")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop listening (requests in flight finish first)."""
        if self._task is not None:
            self._server.should_exit = True
            await self._task
        await self.console.wait(10.0)
