"""Telegram through python-telegram-bot 22: long polling (default) or a webhook.

Updates are acknowledged only after they are durably admitted: the polling loop asks for the
next batch (which is what tells Telegram the previous one was received) only once every update
of the current one went through :meth:`EventSink.admit`; in webhook mode the HTTP answer waits
for it. A crash therefore re-delivers unadmitted updates, and the inbox drops repeats. The slow
part (plans, connectors) runs afterwards, concurrently across chats and in order within one.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import warnings
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import ExtBot
from telegram.warnings import PTBUserWarning

from bot.adapters.base import (
    ChatAdapter,
    ChatProcessing,
    DeliveryError,
    EventSink,
    Watch,
    health_endpoint,
)
from bot.rendering import keyboard_rows, render_card_html, split_text
from graph.commands import menu as command_menu
from graph.events import ApprovalCard, Inbound
from memory.models import utcnow

log = logging.getLogger(__name__)

COMMANDS = [BotCommand(name, description) for name, description in command_menu()]
ALLOWED_UPDATES = ["message", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# getUpdates is called raw on purpose: Bot.get_updates parses the whole batch at once, so one
# malformed update would stop polling for good; raw, each update is parsed (or skipped) alone.
warnings.filterwarnings("ignore", message=".*Bot.getUpdates.*", category=PTBUserWarning)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _delivery_error(exc: TelegramError) -> DeliveryError:
    if isinstance(exc, RetryAfter):
        return DeliveryError(str(exc), retry_after=_seconds(exc.retry_after))
    if isinstance(exc, (Forbidden, BadRequest)):
        return DeliveryError(str(exc), permanent=True)
    return DeliveryError(str(exc))  # NetworkError, TimedOut: worth retrying


class TelegramAdapter(ChatAdapter):
    """The Telegram chat adapter.

    Args:
        bot: an ``ExtBot`` built with ``base_url`` / ``base_file_url`` (and a rate limiter).
        mode: ``"polling"`` or ``"webhook"``.
        poll_timeout: long-polling timeout in seconds.
        webhook_url, webhook_secret, host, port: webhook mode.
        timezone: for times on cards.
        typing_after: seconds a plan may run before the typing indicator shows.
    """

    name = "telegram"
    durable_delivery = True

    def __init__(self, *, bot: ExtBot, mode: str = "polling", poll_timeout: int = 30,
                 webhook_url: str = "", webhook_secret: str = "", host: str = "127.0.0.1",
                 port: int = 8443, timezone: ZoneInfo | None = None,
                 typing_after: float = 0.5) -> None:
        self.bot = bot
        self.mode = mode
        self.poll_timeout = poll_timeout
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.host = host
        self.port = port
        self._tz = timezone or ZoneInfo("UTC")
        self._typing_after = typing_after
        self._sink: EventSink | None = None
        self._offset: int | None = None
        self._poller: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._processing = ChatProcessing(while_running=self._typing)
        self.bound_port: int | None = None
        self.refused = 0
        """Deliveries refused for a wrong secret or signature since the start."""

    # --- receiving --------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Check the token (getMe), register commands, then poll or set the webhook."""
        self._sink = sink
        await self.bot.initialize()
        await self.bot.set_my_commands(COMMANDS)
        if self.mode == "webhook":
            await self._start_webhook()
        else:
            await self.bot.delete_webhook()
            self._poller = asyncio.create_task(self._poll(), name="telegram-poll")

    async def stop(self) -> None:
        """Stop receiving, acknowledge what was admitted, finish what is being processed."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            if self._offset is not None:
                try:
                    await self.bot.do_api_request(
                        "getUpdates", api_kwargs={"offset": self._offset, "timeout": 0})
                except TelegramError as exc:
                    log.warning("could not acknowledge the last updates: %s", exc)
        if self._runner is not None:
            try:
                await self.bot.delete_webhook()
            except TelegramError as exc:
                log.warning("could not delete the webhook: %s", exc)
            await self._runner.cleanup()
        await self._processing.wait(15)

    async def close(self) -> None:
        """Release the HTTP clients (after the delivery queue drained)."""
        await self.bot.shutdown()

    async def _poll(self) -> None:
        backoff = 1.0
        while True:
            try:
                batch = await self.bot.do_api_request(
                    "getUpdates",
                    api_kwargs={"offset": self._offset, "timeout": self.poll_timeout,
                                "allowed_updates": ALLOWED_UPDATES},
                    read_timeout=self.poll_timeout + 10)
                self.liveness.alive()
                for data in batch:
                    await self._receive(data)
                    self._offset = int(data["update_id"]) + 1
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
            except Exception as exc:
                # Network trouble or the database refusing an admit: the unadmitted updates are
                # asked for again after the pause.
                log.warning("telegram polling: %s; retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    # --- liveness ----------------------------------------------------------------------------

    def watch(self) -> Watch | None:
        """Polling: a long poll returns at least every ``poll_timeout`` seconds, so twice that
        (and some) without one is suspect. Webhook: Telegram calls us; every 15 minutes
        without a call, ask Telegram whether the webhook still points here."""
        if self.mode == "webhook":
            return Watch(quiet_seconds=15 * 60.0)
        return Watch(quiet_seconds=2 * (self.poll_timeout + 10) + 30)

    async def probe(self) -> str | None:
        """Polling: the loop runs and Telegram answers ``getMe``. Webhook: Telegram still has
        our URL and no delivery error newer than our last event."""
        try:
            if self.mode == "webhook":
                info = await self.bot.get_webhook_info(read_timeout=10)
                if info.url != self.webhook_url:
                    return f"the webhook points at {info.url or 'nothing'}"
                if info.last_error_date and info.last_error_date.timestamp() > \
                        (self.liveness.event_at or self.liveness.since).timestamp():
                    return f"Telegram cannot deliver to it: {info.last_error_message}"
            else:
                if self._poller is None or self._poller.done():
                    return "the polling loop stopped"
                await self.bot.get_me(read_timeout=10)
        except TelegramError as exc:
            return f"Telegram does not answer: {exc}"
        self.liveness.alive()
        return None

    async def reconnect(self) -> None:
        """Polling: restart the loop (it resumes from the last acknowledged offset). Webhook:
        register it again."""
        if self.mode == "webhook":
            await self.bot.set_webhook(url=self.webhook_url,
                                       secret_token=self.webhook_secret or None,
                                       allowed_updates=ALLOWED_UPDATES)
        else:
            if self._poller is not None:
                self._poller.cancel()
                await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = asyncio.create_task(self._poll(), name="telegram-poll")
        self.liveness.since = utcnow()

    async def _start_webhook(self) -> None:
        app = web.Application()
        app.router.add_post("/telegram", self._webhook)
        app.router.add_get("/healthz", health_endpoint(lambda: self.refused,
                                                       lambda: self.liveness))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.bound_port = site._server.sockets[0].getsockname()[1]
        await self.bot.set_webhook(url=self.webhook_url, secret_token=self.webhook_secret or None,
                                   allowed_updates=ALLOWED_UPDATES)

    async def _webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if self.webhook_secret and not hmac.compare_digest(given, self.webhook_secret):
            self.refused += 1
            log.warning("webhook call with a wrong secret token refused (%d so far)",
                        self.refused)
            return web.Response(status=401, text="bad secret token")
        try:
            data = await request.json()
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if not isinstance(data, dict) or "update_id" not in data:
            return web.Response(status=400, text="not an update")
        await self._receive(data)  # Telegram re-sends unless this answers 2xx
        return web.Response(text="ok")

    async def _receive(self, data: dict[str, Any]) -> None:
        try:
            update = Update.de_json(data, self.bot)
            inbound = self._inbound(update)
            if inbound is not None:
                _check_types(inbound)
        except Exception:  # PTB takes any JSON: a field of the wrong type shows up here
            log.exception("malformed update %s skipped", data.get("update_id"))
            return
        if update.callback_query is not None:
            await self._answer(update.callback_query.id)
        if inbound is None:
            return
        if (inbound.attachment or {}).get("kind") == "voice":
            await self.say_transcribing(inbound.chat)
        self._processing.spawn(self._sink, await self._sink.admit(inbound))

    async def _answer(self, callback_query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(callback_query_id)
        except (TelegramError, TypeError) as exc:  # an old query cannot be answered any more
            log.info("answerCallbackQuery failed: %s", exc)

    def _inbound(self, update: Update) -> Inbound | None:
        event_id = str(update.update_id)
        query = update.callback_query
        if query is not None:
            verb, _, approval_id = (query.data or "").partition(":")
            chat = query.message.chat.id if query.message else query.from_user.id
            # The pressed message is a card whose id we may never have learned (a crash right
            # after posting it): carry it so that its outcome is shown there too.
            pressed = ({"kind": "card", "ref": {"chat_id": chat,
                                                "message_id": query.message.message_id}}
                       if query.message else None)
            return Inbound(channel=self.name, chat=str(chat), actor=str(query.from_user.id),
                           event_id=event_id, verb=verb or "unknown", approval_id=approval_id,
                           attachment=pressed)
        message = update.message
        if message is None or message.from_user is None:
            return None
        text = message.text or message.caption or ""
        if message.chat.type != "private":
            mention = f"@{self.bot.username}"
            replying = (message.reply_to_message is not None
                        and message.reply_to_message.from_user is not None
                        and message.reply_to_message.from_user.id == self.bot.id)
            addressed = mention.lower() in text.lower() or replying
            if not addressed:
                return None
            text = " ".join(w for w in text.split(" ") if w.lower() != mention.lower()).strip()
        attachment = None
        voice = message.voice or message.audio
        if voice is not None:
            attachment = {"kind": "voice", "file_id": voice.file_id,
                          "mime": voice.mime_type or "audio/ogg", "duration": voice.duration}
            if message.forward_origin is not None:
                # someone else's words, passed on: information, never an order
                attachment["forwarded"] = True
        return Inbound(channel=self.name, chat=str(message.chat.id),
                       actor=str(message.from_user.id), event_id=event_id, text=text,
                       attachment=attachment)

    async def _typing(self, chat: str) -> None:
        await asyncio.sleep(self._typing_after)
        while True:
            try:
                await self.bot.send_chat_action(chat_id=int(chat), action="typing")
            except TelegramError:
                pass
            await asyncio.sleep(4.5)  # the indicator lasts about 5 s

    async def download_file(self, file_id: str) -> bytes:
        """The bytes of a file the user sent (voice notes), through ``getFile``."""
        file = await self.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    # --- sending ----------------------------------------------------------------------------

    async def send(self, chat: str, text: str) -> None:
        """Send ``text``, split into messages of at most 4096 characters."""
        for chunk in split_text(text, MessageLimit.MAX_TEXT_LENGTH):
            await self._call(self.bot.send_message(chat_id=int(chat), text=chunk))

    async def _call(self, request: Any) -> Any:
        try:
            return await request
        except TelegramError as exc:
            raise _delivery_error(exc) from exc

    async def ask(self, chat: str, text: str, choices: list[tuple[str, str]]) -> None:
        """The question with one inline button per choice."""
        buttons = [InlineKeyboardButton(label, callback_data=f"choose:{data}")
                   for label, data in choices]
        keyboard = InlineKeyboardMarkup([buttons])
        await self._call(self.bot.send_message(chat_id=int(chat), text=text,
                                               reply_markup=keyboard))

    @staticmethod
    def _keyboard(card: ApprovalCard) -> InlineKeyboardMarkup | None:
        rows = keyboard_rows(card)
        if not rows:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton(**button) for button in row]
                                     for row in rows])

    async def post_card(self, chat: str, card: ApprovalCard) -> Any:
        """Send the card (HTML) with its buttons; the ref is chat and message id."""
        message = await self._call(self.bot.send_message(
            chat_id=int(chat), text=render_card_html(card, timezone=self._tz),
            parse_mode=ParseMode.HTML, reply_markup=self._keyboard(card)))
        return {"chat_id": message.chat_id, "message_id": message.message_id}

    async def update_card(self, chat: str, ref: Any, card: ApprovalCard) -> None:
        """Edit the card to show its state; editing without a keyboard removes the buttons."""
        html = render_card_html(card, timezone=self._tz)
        if ref:
            try:
                await self.bot.edit_message_text(
                    chat_id=ref["chat_id"], message_id=ref["message_id"], text=html,
                    parse_mode=ParseMode.HTML, reply_markup=self._keyboard(card))
                return
            except BadRequest as exc:
                if "not modified" in str(exc).lower():
                    return
                log.info("card %s could not be edited (%s); posting the outcome",
                         card.approval_id, exc)
            except TelegramError as exc:
                raise _delivery_error(exc) from exc
        await self._call(self.bot.send_message(chat_id=int(chat), text=html,
                                               parse_mode=ParseMode.HTML))


def _check_types(inbound: Inbound) -> None:
    """Raise ``TypeError`` unless the fields taken from the update have the types Telegram
    documents (a forged or broken update may carry a list where text belongs)."""
    strings = (inbound.chat, inbound.actor, inbound.event_id, inbound.text)
    optional = (inbound.verb, inbound.approval_id)
    file_id = (inbound.attachment or {}).get("file_id", "")
    if not all(isinstance(v, str) for v in (*strings, file_id)) or \
            not all(v is None or isinstance(v, str) for v in optional):
        raise TypeError("an update field has the wrong type")
