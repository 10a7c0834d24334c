"""A scriptable webhook receiver on 127.0.0.1 that records every POST.

It deduplicates by ``Idempotency-Key`` like a well-behaved target: the first POST of a key that
it accepts is *effective* (answered 2xx, or processed with its answer lost); a repeat of an
effective key gets 409. Duplicates a client causes by changing keys show up as two effective
deliveries of the same text (:meth:`deliveries_of`). Scripted
behaviours per request: an HTTP status (e.g. 500, 429 with Retry-After), ``"lose"`` (process
the request, then drop the connection so the response is lost) and a delay.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.base import LoopbackServer


@dataclass
class Post:
    """One POST as received."""

    key: str | None
    body: Any
    status: int | str


@dataclass
class WebhookReceiver(LoopbackServer):
    """Start with ``await receiver.start()``; ``url`` is then the hook's URL.

    Attributes:
        script: behaviours for the next requests, consumed in order; when empty, requests are
            accepted normally.
        delay: seconds to wait before answering each request.
    """

    script: list[Any] = field(default_factory=list)
    delay: float = 0.0
    posts: list[Post] = field(default_factory=list)
    effective: Counter = field(default_factory=Counter)
    on_post: Any = None
    answer: Any = None
    """When set, the JSON every accepted request is answered with (else ``{"ok": true, ...}``)."""
    arrivals: list[str | None] = field(default_factory=list)
    """The Idempotency-Key of every request, recorded as it arrives (before any delay)."""

    def routes(self, router: web.UrlDispatcher) -> None:
        """The hook."""
        router.add_post("/hook", self._handle)

    async def started(self) -> None:
        """``url`` is the hook's URL."""
        self.url += "/hook"

    def ok_count(self, key: str) -> int:
        """How many times ``key`` was answered 2xx (or processed with the answer lost)."""
        return sum(1 for p in self.posts if p.key == key and p.status in (200, "lost"))

    def deliveries_of(self, text: str) -> int:
        """How many effective deliveries carried ``text`` (exactly-once means 1)."""
        return sum(1 for p in self.posts if p.status in (200, "lost")
                   and isinstance(p.body, dict) and p.body.get("text") == text)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        body = await request.json()
        behaviour = self.script.pop(0) if self.script else "ok"
        self.arrivals.append(key)
        self.changed()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.on_post is not None:
            await self.on_post(key, body)
        if isinstance(behaviour, int):
            self.posts.append(Post(key, body, behaviour))
            headers = {"Retry-After": "0.2"} if behaviour == 429 else {}
            return web.json_response({"error": "scripted"}, status=behaviour, headers=headers)
        if key is not None and key in self.effective:
            self.posts.append(Post(key, body, 409))
            return web.json_response({"error": "duplicate idempotency key"}, status=409)
        self.effective[key] += 1
        if behaviour == "lose":
            self.posts.append(Post(key, body, "lost"))
            request.transport.close()
            raise asyncio.CancelledError
        self.posts.append(Post(key, body, 200))
        if self.answer is not None:
            return web.json_response(self.answer)
        return web.json_response({"ok": True, "id": f"evt-{len(self.posts)}"})
