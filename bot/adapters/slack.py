"""Slack through slack-bolt's ``AsyncApp``: HTTP mode (Events API and interactivity on one
listener) or Socket Mode.

Bolt runs with ``process_before_response=True``: a listener records the event durably
(:meth:`EventSink.admit`, a few milliseconds) and returns, and only then does Slack get its
acknowledgement; the slow part runs afterwards, so a slow connector or model never makes Slack
retry, and an event acknowledged is an event recorded. Retries Slack sends anyway (same
``event_id``, ``X-Slack-Retry-Num``) are dropped by the inbox.

A chat is ``channel|thread_ts|user``: replies go to the thread the operator used (top level in
a DM when they wrote at top level), ephemeral notices to that user.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.base import (
    ChatAdapter,
    ChatProcessing,
    DeliveryError,
    EventSink,
    Watch,
    health_endpoint,
)
from bot.rendering import card_blocks, split_text
from graph.events import ApprovalCard, Inbound
from memory.models import utcnow

log = logging.getLogger(__name__)
MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What reading a payload of an unexpected shape raises."""

REDELIVERY_WINDOW = 60.0
"""Seconds after a refresh in which an event Slack re-sends tells the old connection was deaf."""
MAX_TEXT = 3900  # Slack truncates long messages; it recommends staying under 4,000 characters
_MENTION = re.compile(r"<@[A-Z0-9]+>")
_TRANSIENT = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
              "request_timeout"}


def chat_key(channel: str, thread_ts: str | None, user: str) -> str:
    """The chat of a Slack conversation: channel, thread (may be empty) and user."""
    return f"{channel}|{thread_ts or ''}|{user}"


def parse_chat(chat: str) -> tuple[str, str | None, str]:
    """Inverse of :func:`chat_key`."""
    channel, thread_ts, user = chat.split("|")
    return channel, thread_ts or None, user


def _delivery_error(exc: Exception) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error", "") if exc.response is not None else ""
        status = exc.response.status_code if exc.response is not None else 0
        if status == 429 or error == "ratelimited":
            retry_after = exc.response.headers.get("Retry-After") or \
                exc.response.headers.get("retry-after") or "1"
            return DeliveryError(f"slack: {error}", retry_after=float(retry_after))
        return DeliveryError(f"slack: {error or status}",
                             permanent=status < 500 and error not in _TRANSIENT)
    return DeliveryError(f"slack: {type(exc).__name__}: {exc}")


class SlackAdapter(ChatAdapter):
    """The Slack chat adapter.

    Args:
        client: ``AsyncWebClient`` with the bot token and ``base_url``.
        mode: ``"http"`` or ``"socket"``.
        signing_secret: HTTP mode: requests with a bad signature get 401.
        app_token: Socket Mode.
        host, port: HTTP mode listener (``/slack/events``, plus ``/healthz``).
        refresh_seconds: Socket Mode: with no event for this long, open a fresh connection
            (None: never); see :class:`bot.adapters.base.Watch`.
    """

    name = "slack"
    durable_delivery = True

    def __init__(self, *, client: AsyncWebClient, mode: str = "http", signing_secret: str = "",
                 app_token: str = "", host: str = "127.0.0.1", port: int = 3000,
                 timezone: ZoneInfo | None = None,
                 refresh_seconds: float | None = 90.0) -> None:
        self.client = client
        self.mode = mode
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.host = host
        self.port = port
        self._tz = timezone or ZoneInfo("UTC")
        self._sink: EventSink | None = None
        self._processing = ChatProcessing()
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._threads: set[tuple[str, str]] = set()
        self.bound_port: int | None = None
        self.refused = 0
        """Deliveries refused for a wrong secret or signature since the start."""
        self._refresh_seconds = refresh_seconds
        self._refreshed_at: float | None = None
        self._incident: str | None = None
        self.app = AsyncApp(client=client, process_before_response=True,
                            signing_secret=signing_secret or None,
                            request_verification_enabled=mode == "http",
                            raise_error_for_unhandled_request=True)
        self.app.error(self._on_error)
        self.app.event("message")(self._on_message)
        self.app.event("app_mention")(self._on_mention)
        self.app.command(re.compile(r"^/"))(self._on_command)
        self.app.action(re.compile(r"^((approve|reject|edit|undo):|choose_\d+$)"))(self._on_action)

    # --- receiving --------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Check the token (auth.test), then listen (HTTP) or connect (Socket Mode)."""
        self._sink = sink
        auth = await self.client.auth_test()
        self.bot_user = auth["user_id"]
        if self.mode == "socket":
            self._socket = AsyncSocketModeHandler(self.app, self.app_token,
                                                  web_client=AsyncWebClient(
                                                      token=self.app_token,
                                                      base_url=self.client.base_url))
            self._socket.client.on_message_listeners.append(self._on_frame)
            await self._socket.connect_async()
            return
        web_app = self.app.web_app(path="/slack/events")
        web_app.middlewares.append(self._count_refusals)
        web_app.middlewares.append(_acknowledge_what_bolt_cannot_read)
        web_app.router.add_get("/healthz", health_endpoint(lambda: self.refused,
                                                           lambda: self.liveness))
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.bound_port = site._server.sockets[0].getsockname()[1]

    # --- liveness (Socket Mode) ----------------------------------------------------------------

    def watch(self) -> Watch | None:
        """Socket Mode: frames come at least with slack_sdk's pongs (every 5 s); a minute
        without any is suspect. HTTP mode: Slack calls us; nothing to expect."""
        if self.mode != "socket":
            return None
        return Watch(quiet_seconds=60.0, refresh_seconds=self._refresh_seconds)

    async def probe(self) -> str | None:
        """Whether the Socket Mode connection is up and answering slack_sdk's pings."""
        client = self._socket.client if self._socket is not None else None
        if client is None or not await client.is_connected():
            return "the Socket Mode connection is down or does not answer pings"
        self.liveness.alive()
        return None

    async def reconnect(self) -> None:
        """Open a fresh Socket Mode connection (the old one is closed by slack_sdk)."""
        if self._socket is None:
            return
        self._refreshed_at = time.monotonic()
        await self._socket.client.connect_to_new_endpoint(force=True)
        self.liveness.since = utcnow()

    def take_incident(self) -> str | None:
        """A deaf connection found after a refresh (see :meth:`_on_frame`), once."""
        incident, self._incident = self._incident, None
        return incident

    async def _on_frame(self, message: Any) -> None:
        """Every frame from Slack is a sign of life; an event Slack re-sends right after a
        refresh shows the previous connection had gone deaf (up, but not delivering)."""
        self.liveness.alive()
        try:
            frame = json.loads(message.data)
        except (TypeError, ValueError):
            return
        retried = isinstance(frame, dict) and frame.get("type") == "events_api" and \
            isinstance(frame.get("retry_attempt"), int) and frame["retry_attempt"] > 0
        if retried and self._refreshed_at is not None and \
                time.monotonic() - self._refreshed_at < REDELIVERY_WINDOW:
            self._refreshed_at = None
            log.warning("slack: the previous Socket Mode connection was deaf; events it "
                        "missed arrived on the new one")
            self._incident = ("Slack's connection had gone deaf (it answered pings but "
                              "delivered no events); a fresh one was opened and the events "
                              "Slack had held back arrived. Nothing was lost.")

    async def stop(self) -> None:
        """Stop listening, finish what is being processed."""
        if self._socket is not None:
            await self._socket.close_async()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._processing.wait(15)

    async def close(self) -> None:
        """Close the Web API client's session, if it owns one."""
        session = getattr(self.client, "session", None)
        if isinstance(session, aiohttp.ClientSession):
            await session.close()

    async def _admit(self, inbound: Inbound) -> None:
        self._processing.spawn(self._sink, await self._sink.admit(inbound))

    @web.middleware
    async def _count_refusals(self, request: web.Request, handler: Any) -> Any:
        """Count the requests Bolt refuses for a bad or stale signature (someone knocking)."""
        response = await handler(request)
        if response.status == 401:
            self.refused += 1
            log.warning("Slack request with a bad signature refused (%d so far)", self.refused)
        return response

    async def _on_error(self, error: Exception, response: BoltResponse) -> None:
        if isinstance(error, BoltUnhandledRequestError):
            # An event or click nobody listens for (a reaction, a malformed payload): Bolt
            # answers 404, which makes Slack retry it and in the end turn the subscription
            # off. It is acknowledged instead, and ignored.
            response.status, response.body = 200, ""
            log.info("Slack request with no listener acknowledged and ignored")
            return
        if isinstance(error, MALFORMED):
            # A payload of a shape Bolt cannot read (an action id that is a list): sending
            # it again will not help, so it is acknowledged.
            response.status, response.body = 200, ""
            log.warning("malformed Slack payload acknowledged and ignored: %r", error)
            return
        # Anything else (the database did not answer while admitting): 500, so Slack sends
        # it again; admitting is idempotent by event id.
        log.error("Slack listener failed", exc_info=error)

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("subtype") not in (None, "file_share") or event.get("bot_id") \
                or event.get("user") == self.bot_user:
            return
        if not _well_formed(body, event, "channel", "user"):
            return
        channel, thread_ts = event["channel"], _text(event.get("thread_ts")) or None
        if event.get("channel_type") != "im":
            # In channels: only replies in threads the bot is part of (mentions arrive as
            # app_mention events).
            if not thread_ts or (channel, thread_ts) not in self._threads:
                return
            if f"<@{self.bot_user}>" in event.get("text", ""):
                return  # the app_mention event carries it
        chat = chat_key(channel, thread_ts, event["user"])
        files = event.get("files") if isinstance(event.get("files"), list) else []
        audio = next((f for f in files if isinstance(f, dict) and isinstance(f.get("id"), str)
                      and str(f.get("mimetype", "")).startswith("audio/")), None)
        attachment = None
        if audio is not None:
            attachment = {"kind": "voice", "file_id": audio["id"],
                          "mime": audio.get("mimetype", "")}
            await self.say_transcribing(chat)
        await self._admit(Inbound(
            channel=self.name, chat=chat, actor=event["user"], event_id=body["event_id"],
            text="" if audio else _MENTION.sub("", event.get("text", "")).strip(),
            attachment=attachment))

    async def download_file(self, file_id: str) -> bytes:
        """The bytes of a file the user shared (audio clips), with the bot token."""
        info = await self.client.files_info(file=file_id)
        url = info["file"]["url_private_download"]
        async with aiohttp.ClientSession() as http, http.get(
                url, headers={"Authorization": f"Bearer {self.client.token}"}) as response:
            response.raise_for_status()
            return await response.read()

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if not _well_formed(body, event, "channel", "user", "ts"):
            return
        channel = event["channel"]
        thread_ts = _text(event.get("thread_ts")) or event["ts"]
        self._threads.add((channel, thread_ts))
        await self._admit(Inbound(
            channel=self.name, chat=chat_key(channel, thread_ts, event["user"]),
            actor=event["user"], event_id=body["event_id"],
            text=_MENTION.sub("", event.get("text", "")).strip()))

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        await self._admit(Inbound(
            channel=self.name, chat=chat_key(command["channel_id"], None, command["user_id"]),
            actor=command["user_id"], event_id=command["trigger_id"],
            text=f"{command['command']} {command.get('text', '')}".strip()))
        await ack()

    async def _on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        verb, _, approval_id = str(action.get("value", "")).partition(":")
        container = _mapping(body.get("container"))
        channel = _text(container.get("channel_id")) or \
            _text(_mapping(body.get("channel")).get("id"))
        message = _mapping(body.get("message"))
        user = _text(_mapping(body.get("user")).get("id"))
        if not channel or not user:  # not a click Slack would send: acknowledged, ignored
            log.warning("Slack action without a channel or user ignored")
            await ack()
            return
        pressed = {"channel": channel, "ts": container.get("message_ts") or message.get("ts")}
        await self._admit(Inbound(
            channel=self.name, chat=chat_key(channel, _text(message.get("thread_ts")) or None,
                                             user),
            actor=user, event_id=f"{user}:{action.get('action_ts')}", verb=verb or "unknown",
            approval_id=approval_id, attachment={"kind": "card", "ref": pressed}))
        await ack()

    # --- sending ----------------------------------------------------------------------------

    async def _call(self, method: str, **params: Any) -> Any:
        try:
            return await getattr(self.client, method)(**params)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise _delivery_error(exc) from exc

    async def send(self, chat: str, text: str) -> None:
        """Post ``text`` in the chat's thread, split into messages Slack shows in full."""
        channel, thread_ts, _ = parse_chat(chat)
        for chunk in split_text(text, MAX_TEXT):
            await self._call("chat_postMessage", channel=channel, text=chunk,
                             thread_ts=thread_ts)
        if thread_ts:
            self._threads.add((channel, thread_ts))

    async def ask(self, chat: str, text: str, choices: list[tuple[str, str]]) -> None:
        """The question with one button per choice."""
        channel, thread_ts, _ = parse_chat(chat)
        await self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=text,
                         blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                                 {"type": "actions", "elements": [
                                     {"type": "button", "action_id": f"choose_{i}",
                                      "text": {"type": "plain_text", "text": label},
                                      "value": f"choose:{data}"}
                                     for i, (label, data) in enumerate(choices)]}])

    async def notice(self, chat: str, text: str) -> None:
        """An ephemeral message only the chat's user sees."""
        channel, thread_ts, user = parse_chat(chat)
        await self._call("chat_postEphemeral", channel=channel, user=user, text=text,
                         thread_ts=thread_ts)

    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """Post the Block Kit card; the ref is channel and message ts."""
        channel, thread_ts, _ = parse_chat(chat)
        response = await self._call(
            "chat_postMessage", channel=channel, thread_ts=thread_ts,
            text=f"Approval {card.approval_id} waiting: {card.reason}"[:MAX_TEXT],
            blocks=card_blocks(card, timezone=self._tz))
        return {"channel": response["channel"], "ts": response["ts"]}

    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Replace the card (chat.update) with its outcome and without buttons."""
        text = f"Approval {card.approval_id}: {card.outcome}"
        blocks = card_blocks(card, timezone=self._tz)
        if ref:
            await self._call("chat_update", channel=ref["channel"], ts=ref["ts"], text=text,
                             blocks=blocks)
            return
        channel, thread_ts, _ = parse_chat(chat)
        await self._call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=text,
                         blocks=blocks)


def _text(value: Any) -> str:
    """``value`` if it is a string, else empty (fields of an event are data of any shape)."""
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else empty."""
    return value if isinstance(value, dict) else {}


def _well_formed(body: dict[str, Any], event: dict[str, Any], *fields: str) -> bool:
    """Whether an event has its ``fields`` and text as non-empty strings (and an event id);
    a malformed one is logged and acknowledged (so Slack does not retry it), never acted on."""
    if all(_text(event.get(f)) for f in fields) and _text(body.get("event_id")) and \
            isinstance(event.get("text", ""), str):
        return True
    log.warning("malformed Slack %s event ignored (missing or non-text: %s)",
                _text(event.get("type")) or "?",
                ", ".join(f for f in (*fields, "text") if not isinstance(event.get(f, ""), str)
                          or (f != "text" and not _text(event.get(f)))) or "event_id")
    return False


@web.middleware
async def _acknowledge_what_bolt_cannot_read(request: web.Request, handler: Any) -> Any:
    """A signed payload that Bolt itself fails on (e.g. a click with an empty ``actions``
    list) is acknowledged: a 500 would make Slack send it again and again. Bolt checks the
    signature before anything that can fail this way, so nothing forged gets a 200 here."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("a Slack payload Bolt could not read was acknowledged and ignored")
        return web.Response(status=200)
