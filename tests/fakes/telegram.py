"""A fake Telegram Bot API on 127.0.0.1 for the real python-telegram-bot client.

Behaves like the real one where it matters to us: ``getUpdates`` long-polls and keeps returning
an update until a later call passes a higher ``offset`` (so a crash re-delivers it), requests are
form-encoded with JSON-encoded nested fields, errors carry ``error_code`` and
``parameters.retry_after``. Everything the bot does is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.base import Call, LoopbackServer

BOT_USER = {"id": 999000, "is_bot": True, "first_name": "Solo", "username": "solo_test_bot"}
_STRING_FIELDS = {"text", "callback_query_id", "secret_token", "url", "file_id", "action",
                  "parse_mode", "drop_pending_updates"}


@dataclass
class FakeTelegramServer(LoopbackServer):
    """Start with ``await server.start()``; point the client at ``base_url`` / ``base_file_url``.

    Attributes:
        token: the bot token the server accepts.
        failures: method name → list of scripted errors, consumed one per call
            (``{"error_code": 429, "retry_after": 1}`` or ``{"error_code": 400, ...}``).
        answering: cleared, every request hangs (the connection stays open, nothing comes
            back) until it is set again.
    """

    token: str = "123456:TEST-token"
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _update_ids: Any = field(default_factory=lambda: itertools.count(1000))
    _message_ids: Any = field(default_factory=lambda: itertools.count(1))
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=dict)
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    def __post_init__(self) -> None:
        self.answering.set()

    # --- server -----------------------------------------------------------------------------

    def routes(self, router: web.UrlDispatcher) -> None:
        """The Bot API and its file endpoint."""
        router.add_route("*", "/bot{token}/{method}", self._api)
        router.add_get("/file/bot{token}/{path:.*}", self._file)

    async def stopping(self) -> None:
        """Wake pending long polls (they answer at once from now on) and hung requests."""
        self._stopping = True
        self._new_update.set()
        self.answering.set()

    @property
    def base_url(self) -> str:
        """``[telegram] base_url`` for this server (the client appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """``[telegram] base_file_url`` for this server."""
        return f"{self.url}/file/bot"

    def config_section(self, *, operators: str = "[111]") -> str:
        """A ``[telegram]`` TOML section pointing ``solo serve`` at this server."""
        return (f'[telegram]\ntoken = "{self.token}"\nbase_url = "{self.base_url}"\n'
                f'base_file_url = "{self.base_file_url}"\noperators = {operators}\n'
                "poll_timeout_seconds = 1\n")

    # --- injecting updates ------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> int:
        """Queue a raw update (an ``update_id`` is added unless present); return its id."""
        if "update_id" not in update:
            update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._new_update.set()
        return update["update_id"]

    def message(self, text: str, *, user: int = 111, chat: int | None = None,
                chat_type: str = "private", entities: list[dict] | None = None,
                **extra: Any) -> int:
        """A user sends ``text``; returns the update id."""
        return self.push(self.message_update(text, user=user, chat=chat, chat_type=chat_type,
                                             entities=entities, **extra))

    def message_update(self, text: str, *, user: int = 111, chat: int | None = None,
                       chat_type: str = "private", entities: list[dict] | None = None,
                       **extra: Any) -> dict[str, Any]:
        """The update of a user sending ``text`` (not queued: e.g. to POST to a webhook)."""
        chat_id = chat if chat is not None else user
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": chat_type},
                   "from": {"id": user, "is_bot": False, "first_name": f"user{user}"},
                   "text": text, **extra}
        if text.startswith("/"):
            command = text.split()[0]
            entities = [{"type": "bot_command", "offset": 0, "length": len(command)},
                        *(entities or [])]
        if entities:
            message["entities"] = entities
        return {"update_id": next(self._update_ids), "message": message}

    def voice(self, audio: bytes, *, user: int = 111, mime: str = "audio/ogg",
              duration: int = 2, forwarded_from: int | None = None) -> int:
        """A user sends a voice note (passes on one ``forwarded_from`` someone else recorded);
        returns the update id."""
        file_id = f"voice-{len(self.files)}"
        self.files[file_id] = audio
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": {"id": user, "type": "private"},
                   "from": {"id": user, "is_bot": False, "first_name": f"user{user}"},
                   "voice": {"file_id": file_id, "file_unique_id": f"u{file_id}",
                             "duration": duration, "mime_type": mime, "file_size": len(audio)}}
        if forwarded_from is not None:
            message["forward_origin"] = {
                "type": "user", "date": int(time.time()) - 60,
                "sender_user": {"id": forwarded_from, "is_bot": False, "first_name": "Client"}}
        return self.push({"message": message})

    def press(self, data: str, *, message_id: int, user: int = 111,
              chat: int | None = None) -> int:
        """A user presses an inline button with ``callback_data`` on message ``message_id``."""
        return self.push(self.press_update(data, message_id=message_id, user=user, chat=chat))

    def press_update(self, data: str, *, message_id: int, user: int = 111,
                     chat: int | None = None) -> dict[str, Any]:
        """The update of a button press (not queued: e.g. to POST to a webhook)."""
        chat_id = chat if chat is not None else user
        message = self.messages.get(message_id) or {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"}, "text": "card"}
        query = {"id": f"cq{next(self._update_ids)}",
                 "from": {"id": user, "is_bot": False, "first_name": f"user{user}"},
                 "chat_instance": "ci", "data": data, "message": message}
        return {"update_id": next(self._update_ids), "callback_query": query}

    def pending_updates(self) -> list[int]:
        """Update ids not yet acknowledged by a higher ``offset``."""
        return [u["update_id"] for u in self._updates]

    # --- observing --------------------------------------------------------------------------

    def sent(self, method: str = "sendMessage", **match: Any) -> list[dict[str, Any]]:
        """Params of every call to ``method`` whose params include ``match``."""
        return [c.params for c in self.calls if c.method == method
                and all(str(c.params.get(k)) == str(v) for k, v in match.items())]

    def texts(self, chat: int = 111) -> list[str]:
        """Texts of messages sent to ``chat``, in order."""
        return [p["text"] for p in self.sent("sendMessage", chat_id=chat)]

    def describe(self) -> str:
        """The last requests, for a failed wait."""
        return f"calls: {[(c.method, c.params) for c in self.calls[-15:]]}"

    def card_buttons(self, message: dict[str, Any]) -> list[str]:
        """``callback_data`` of the inline keyboard of a sent message params."""
        markup = message.get("reply_markup")
        if not markup:
            return []
        return [b["callback_data"] for row in markup["inline_keyboard"] for b in row]

    # --- handlers ---------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            if not isinstance(value, str) or key in _STRING_FIELDS:
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
        return params

    def _ok(self, result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        await self.answering.wait()
        if method != "getUpdates":
            self.calls.append(Call(method, params))
        try:
            scripted = self.failures.get(method)
            if scripted:
                failure = scripted.pop(0)
                code = failure["error_code"]
                body = {"ok": False, "error_code": code,
                        "description": failure.get("description", f"Error {code}")}
                if "retry_after" in failure:
                    body["parameters"] = {"retry_after": failure["retry_after"]}
                    body["description"] = (f"Too Many Requests: retry after "
                                           f"{failure['retry_after']}")
                return web.json_response(body, status=code)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                return self._ok(True)
            return await handler(params)
        finally:
            self.changed()

    async def _m_getMe(self, params: dict) -> web.Response:
        return self._ok(BOT_USER)

    async def _m_getUpdates(self, params: dict) -> web.Response:
        offset = int(params.get("offset") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while not self._updates and not self._stopping and time.monotonic() < deadline:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        limit = int(params.get("limit") or 100)
        self.calls.append(Call("getUpdates", {"offset": offset, "returned": [
            u["update_id"] for u in self._updates[:limit]]}))
        return self._ok(self._updates[:limit])

    async def _m_sendMessage(self, params: dict) -> web.Response:
        message_id = next(self._message_ids)
        message = {"message_id": message_id, "date": int(time.time()), "from": BOT_USER,
                   "chat": {"id": int(params["chat_id"]), "type": "private"},
                   "text": params["text"]}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[message_id] = message
        params["message_id"] = message_id
        return self._ok(message)

    async def _m_editMessageText(self, params: dict) -> web.Response:
        message = self.messages.get(int(params["message_id"]))
        if message is None:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message to edit not found"},
                                     status=400)
        message["text"] = params["text"]
        message.pop("reply_markup", None)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return self._ok(message)

    async def _m_getFile(self, params: dict) -> web.Response:
        file_id = params["file_id"]
        if file_id not in self.files:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: invalid file_id"}, status=400)
        return self._ok({"file_id": file_id, "file_unique_id": f"u{file_id}",
                         "file_size": len(self.files[file_id]),
                         "file_path": f"voice/{file_id}.oga"})

    async def _m_setWebhook(self, params: dict) -> web.Response:
        self.webhook = params
        return self._ok(True)

    async def _m_deleteWebhook(self, params: dict) -> web.Response:
        self.webhook = {}
        return self._ok(True)

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        file_id = path.rsplit("/", 1)[-1].removesuffix(".oga")
        if request.match_info["token"] != self.token or file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])
