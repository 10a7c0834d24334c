"""A fake Slack on 127.0.0.1: the Web API the bot calls, and the two ways Slack calls the bot.

- Web API: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
  ``apps.connections.open``; scripted errors (e.g. 429 with ``Retry-After``).
- HTTP mode: :meth:`FakeSlack.deliver` POSTs Events API and interactivity payloads to the app,
  signed with the signing secret like Slack does (``v0:{ts}:{body}``, HMAC-SHA256), and records
  the status and how long the app took to answer.
- Socket Mode: a websocket endpoint that sends envelopes and records the client's acks.
  :meth:`FakeSlack.mute` makes the current connection deaf the way one goes deaf in the wild:
  it stays up and answers pings, but envelopes are held back; like Slack, the held ones are
  re-sent (``retry_attempt`` 1) on the next connection.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.fakes.base import Call, LoopbackServer

BOT_USER = "UBOT"
BOT_ID = "BBOT"


@dataclass
class Delivery:
    """One request Slack made to the app, and how the app answered."""

    kind: str
    status: int
    seconds: float
    body: str


@dataclass
class FakeSlack(LoopbackServer):
    """Start with ``await slack.start()``; ``api_url`` is the Web API base URL."""

    signing_secret: str = "test-signing-secret"
    bot_token: str = "xoxb-test"
    app_token: str = "xapp-test"
    calls: list[Call] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    acks: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _muted: web.WebSocketResponse | None = None
    held: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    _http: aiohttp.ClientSession | None = None

    def routes(self, router: web.UrlDispatcher) -> None:
        """The Web API, the Socket Mode websocket and file downloads."""
        router.add_post("/api/{method}", self._api)
        router.add_get("/api/{method}", self._api)  # slack_sdk sends some reads as GET
        router.add_get("/socket", self._socket)
        router.add_get("/files/{file_id}", self._file)

    async def started(self) -> None:
        """Open the client that delivers events to the app."""
        self._http = aiohttp.ClientSession()

    async def stopping(self) -> None:
        """Close sockets and the client."""
        for ws in list(self._sockets):
            await ws.close()
        if self._http is not None:
            await self._http.close()

    @property
    def api_url(self) -> str:
        """``[slack] base_url`` for this server."""
        return f"{self.url}/api/"

    # --- payloads ---------------------------------------------------------------------------

    def message_event(self, text: str, *, user: str = "UOP", channel: str = "DOP",
                      channel_type: str = "im", thread_ts: str | None = None,
                      event_type: str = "message", event_id: str | None = None) -> dict:
        """An Events API envelope for a message (or ``app_mention``)."""
        event = {"type": event_type, "user": user, "text": text, "channel": channel,
                 "channel_type": channel_type, "ts": self._ts_now()}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return {"type": "event_callback", "token": "legacy", "team_id": "T1",
                "api_app_id": "A1", "event_id": event_id or f"Ev{next(self._ids)}",
                "event_time": int(time.time()), "event": event,
                "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}]}

    def _ts_now(self) -> str:
        """A Slack timestamp, unique even while a test pins the clock (Slack's are)."""
        return f"{int(time.time())}.{next(self._ids):06d}"

    def click(self, value: str, *, message: dict, user: str = "UOP") -> dict:
        """A ``block_actions`` payload: ``user`` clicks the button carrying ``value`` (its
        ``action_id`` as posted, like Slack sends it)."""
        action_id = next((e["action_id"] for b in message.get("blocks") or []
                          if b.get("type") == "actions" for e in b["elements"]
                          if e.get("value") == value), value.split(":")[0])
        return {"type": "block_actions", "team": {"id": "T1"}, "api_app_id": "A1",
                "user": {"id": user}, "trigger_id": f"trig{next(self._ids)}",
                "channel": {"id": message["channel"]},
                "container": {"type": "message", "message_ts": message["ts"],
                              "channel_id": message["channel"]},
                "message": {"ts": message["ts"], "thread_ts": message.get("thread_ts")},
                "response_url": f"{self.url}/response",
                "actions": [{"type": "button", "action_id": action_id, "block_id": "decide",
                             "value": value, "action_ts": self._ts_now()}]}

    def audio_event(self, audio: bytes, *, user: str = "UOP", channel: str = "DOP",
                    mimetype: str = "audio/ogg") -> dict:
        """An Events API envelope for an audio file shared in a DM."""
        file_id = f"F{len(self.files) + 1}"
        self.files[file_id] = (audio, mimetype)
        envelope = self.message_event("", user=user, channel=channel)
        envelope["event"].update(subtype="file_share", files=[{
            "id": file_id, "mimetype": mimetype, "name": "audio_message.ogg",
            "size": len(audio), "url_private_download": f"{self.url}/files/{file_id}"}])
        return envelope

    async def _file(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}" or stored is None:
            return web.Response(status=404)
        return web.Response(body=stored[0], content_type=stored[1])

    # --- delivering to the app (HTTP mode) -----------------------------------------------------

    def sign(self, body: str, timestamp: int | None = None) -> dict[str, str]:
        """Slack's request signature headers for ``body``."""
        ts = str(timestamp or int(time.time()))
        digest = hmac.new(self.signing_secret.encode(), f"v0:{ts}:{body}".encode(),
                          hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    async def deliver(self, app_url: str, payload: dict, *, retry: int = 0,
                      signature: dict[str, str] | None = None) -> Delivery:
        """POST ``payload`` to the app like Slack (events as JSON, interactions as a form)."""
        if payload.get("type") == "event_callback":
            body, content_type, kind = json.dumps(payload), "application/json", "event"
        else:
            body = urlencode({"payload": json.dumps(payload)})
            content_type, kind = "application/x-www-form-urlencoded", payload["type"]
        headers = {"Content-Type": content_type, **(signature or self.sign(body))}
        if retry:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "timeout"})
        started = time.monotonic()
        async with self._http.post(app_url, data=body.encode(), headers=headers) as response:
            await response.read()
            delivery = Delivery(kind, response.status, time.monotonic() - started, body)
        self.deliveries.append(delivery)
        return delivery

    # --- delivering to the app (Socket Mode) -------------------------------------------------

    async def send_envelope(self, payload: dict) -> str:
        """Send ``payload`` to the connected Socket Mode client; return the envelope id."""
        await self.wait_for(lambda: self._sockets)
        kind = {"event_callback": "events_api", "block_actions": "interactive"}[payload["type"]]
        envelope_id = f"env{next(self._ids)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": False, "retry_attempt": 0, "retry_reason": ""}
        if self._sockets[-1] is self._muted:
            self.held.append(envelope)
        else:
            await self._sockets[-1].send_json(envelope)
        return envelope_id

    def mute(self) -> None:
        """Deafen the current connection (see the module docstring)."""
        self._muted = self._sockets[-1]

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "connection_info": {"app_id": "A1"}})
        self.connections += 1
        held, self.held = self.held, []
        for envelope in held:
            await ws.send_json({**envelope, "retry_attempt": 1, "retry_reason": "timeout"})
        self.changed()
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
                self.changed()
        self._sockets.remove(ws)
        return ws

    # --- observing ---------------------------------------------------------------------------

    def sent(self, method: str = "chat.postMessage", **match: Any) -> list[dict[str, Any]]:
        """Params of every call to ``method`` whose params include ``match``."""
        return [c.params for c in self.calls if c.method == method
                and all(c.params.get(k) == v for k, v in match.items())]

    def cards(self) -> list[dict[str, Any]]:
        """Posted messages with buttons."""
        return [p for p in self.sent() if any(b.get("type") == "actions"
                                               for b in p.get("blocks") or [])]

    @staticmethod
    def button_values(message: dict[str, Any]) -> list[str]:
        """Values of the buttons of a posted message."""
        return [e["value"] for b in message.get("blocks") or [] if b.get("type") == "actions"
                for e in b["elements"]]

    def describe(self) -> str:
        """The last calls, for a failed wait."""
        return f"calls: {[(c.method, c.params) for c in self.calls[-10:]]}"

    # --- Web API ---------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.method == "GET":
            params = dict(request.query)
        elif request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
            for key in ("blocks", "attachments"):
                if isinstance(params.get(key), str):
                    params[key] = json.loads(params[key])
        self.calls.append(Call(method, params))
        self.changed()
        scripted = self.failures.get(method)
        if scripted:
            failure = scripted.pop(0)
            status = failure.get("status", 200)
            headers = {"Retry-After": str(failure["retry_after"])} if "retry_after" in failure \
                else {}
            return web.json_response({"ok": False, "error": failure["error"]}, status=status,
                                     headers=headers)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if method == "apps.connections.open":
            if token != self.app_token:
                return web.json_response({"ok": False, "error": "invalid_auth"})
            ws_url = self.url.replace("http://", "ws://") + "/socket"
            return web.json_response({"ok": True, "url": ws_url})
        if token != self.bot_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return web.json_response({"ok": True, "url": "https://fake.slack.com/", "team": "T",
                                      "user": "solo", "team_id": "T1", "user_id": BOT_USER,
                                      "bot_id": BOT_ID})
        if method in ("chat.postMessage", "chat.update"):
            ts = params.get("ts") or f"{1700000000 + next(self._ts)}.000100"
            params["ts"] = ts
            return web.json_response({"ok": True, "channel": params["channel"], "ts": ts,
                                      "message": {"text": params.get("text", ""), "ts": ts}})
        if method == "files.info":
            file_id = params.get("file")
            if file_id not in self.files:
                return web.json_response({"ok": False, "error": "file_not_found"})
            return web.json_response({"ok": True, "file": {
                "id": file_id, "mimetype": self.files[file_id][1],
                "url_private_download": f"{self.url}/files/{file_id}"}})
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": f"{time.time():.6f}"})
        return web.json_response({"ok": True})
