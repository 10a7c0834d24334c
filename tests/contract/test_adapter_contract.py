"""One conversation contract, run over every chat adapter: the console (`solo chat`'s adapter
reading a pipe), the in-memory test backend, Telegram (python-telegram-bot against the fake Bot
API) and Slack (bolt against the fake Slack, signed HTTP requests).

Each case reads like a conversation: the operator says something, sees a card, presses its
buttons, and the webhook receiver (and the transcript of what the operator was shown) says what
happened. Multi-step plans come from a scripted model behind the fake OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bot.adapters.console import ConsoleAdapter
from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from bot.rendering import render_card_text
from bot.wiring import build_adapters
from config import Settings
from tests.conftest import CLOCK_START
from tests.fakes.openai import FakeOpenAI
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.waiting import poll_until

WAIT = 120.0


@dataclass
class Card:
    """A card as the operator sees it: its id, its buttons (label → data) and where it is."""

    approval_id: str
    buttons: dict[str, str]
    text: str
    ref: Any = None


@dataclass
class Driver:
    """Drives one adapter like its operator would; subclasses know the platform."""

    app: SoloApp
    stop: list[Callable[[], Any]] = field(default_factory=list)

    def transcript(self) -> str:
        """Everything shown to the operator so far, in order."""
        raise NotImplementedError

    def cards(self) -> list[Card]:
        """Every card shown (posted or updated), oldest first."""
        raise NotImplementedError

    async def say(self, text: str, *, stranger: bool = False) -> None:
        """The operator (or a stranger) sends ``text``."""
        raise NotImplementedError

    async def press(self, card: Card, label: str, *, stranger: bool = False) -> None:
        """Press the button labelled ``label`` on ``card``."""
        raise NotImplementedError

    def mark(self) -> int:
        """A position in the transcript, for :meth:`sees` ``after``."""
        return len(self.transcript())

    async def sees(self, fragment: str, *, after: int = 0) -> str:
        """Wait until ``fragment`` was shown after position ``after``; return what was shown."""
        await poll_until(lambda: fragment in self.transcript()[after:], timeout=WAIT,
                         describe=lambda: f"never shown: {fragment!r}; shown after the mark:\n"
                                          f"{self.transcript()[after:]}")
        return self.transcript()[after:]

    async def card(self, contains: str, *, after: int = 0, buttons: bool = True) -> Card:
        """The newest card whose text contains ``contains`` (with buttons, by default)."""
        def found() -> Card | None:
            return next((card for card in reversed(self.cards()[after:])
                         if contains in card.text and (card.buttons or not buttons)), None)
        return await poll_until(found, timeout=WAIT, describe=lambda: (
            f"no card with {contains!r}:\n{self.transcript()}"))

    async def settle(self) -> None:
        """Let background work finish (a tick of the loop for in-process adapters)."""
        await asyncio.sleep(0)


class MemoryDriver(Driver):
    """The in-memory adapter: the test backend."""

    adapter: InMemoryAdapter

    def transcript(self) -> str:
        tz = ZoneInfo("UTC")
        return "\n".join(render_card_text(s.card, timezone=tz) if s.card else s.text
                         for s in self.adapter.sent)

    def cards(self) -> list[Card]:
        return [Card(s.card.approval_id, {label: data for row in s.card.buttons
                                          for label, data in row},
                     render_card_text(s.card, timezone=ZoneInfo("UTC")))
                for s in self.adapter.sent if s.card]

    async def say(self, text: str, *, stranger: bool = False) -> None:
        await self.adapter.say(text, actor="stranger" if stranger else "operator")

    async def press(self, card: Card, label: str, *, stranger: bool = False) -> None:
        verb, _, ref = card.buttons[label].partition(":")
        await self.adapter.press(verb, ref, actor="stranger" if stranger else "operator")


class ConsoleDriver(Driver):
    """The terminal adapter reading lines from a pipe, as ``solo chat`` does."""

    out: StringIO
    writer: Any

    def transcript(self) -> str:
        return self.out.getvalue()

    def cards(self) -> list[Card]:
        found = []
        for match in re.finditer(r"Approval ([a-z2-7]{8})(.*?)(?=\nApproval |┌─|\Z)",
                                 self.transcript(), re.DOTALL):
            body = match[0]
            labels = [name for key, name in (("[a]pprove", "Approve"), ("[r]eject", "Reject"),
                                             ("[e]dit", "Edit"), ("[u]ndo", "Undo"))
                      if key in body]
            steps = re.search(r"\(N = ([\d, ]+)\)", body)
            for number in (steps[1].split(", ") if steps else []):
                labels += [f"Approve {number}", f"Reject {number}"]
            found.append(Card(match[1], {label: label for label in labels}, body))
        return found

    async def _line(self, line: str) -> None:
        mark = self.mark()
        self.writer.write(line + "\n")
        self.writer.flush()
        # One line at a time, like a person at a terminal: wait for its answer.
        await self.sees("", after=mark)
        for _ in range(200):
            before = self.mark()
            await asyncio.sleep(0.02)
            if self.mark() == before and self.mark() > mark:
                return

    async def say(self, text: str, *, stranger: bool = False) -> None:
        await self._line(text)

    async def press(self, card: Card, label: str, *, stranger: bool = False) -> None:
        verb, _, step = label.partition(" ")
        await self._line(f"{verb[0].lower()} {card.approval_id} {step}".strip())


class TelegramDriver(Driver):
    """python-telegram-bot against the fake Bot API; the operator is user 111."""

    server: FakeTelegramServer

    def _shown(self) -> list[dict]:
        return [c.params for c in self.server.calls
                if c.method in ("sendMessage", "editMessageText")]

    def transcript(self) -> str:
        return "\n".join(p["text"] for p in self._shown())

    def cards(self) -> list[Card]:
        found = []
        for params in self._shown():
            match = re.search(r"Approval ([a-z2-7]{8})", params["text"])
            if match:
                rows = (params.get("reply_markup") or {}).get("inline_keyboard", [])
                found.append(Card(match[1], {b["text"]: b["callback_data"] for row in rows
                                             for b in row}, params["text"],
                                  params.get("message_id")))
        return found

    async def say(self, text: str, *, stranger: bool = False) -> None:
        self.server.message(text, user=666 if stranger else 111)

    async def press(self, card: Card, label: str, *, stranger: bool = False) -> None:
        self.server.press(card.buttons[label], message_id=int(card.ref),
                          user=666 if stranger else 111, chat=111)


class SlackDriver(Driver):
    """bolt in HTTP mode against the fake Slack; the operator is UOP in the DM DOP."""

    server: FakeSlack
    url: str

    def _shown(self) -> list[tuple[str, dict]]:
        return [(c.method, c.params) for c in self.server.calls
                if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")]

    @staticmethod
    def _text(params: dict) -> str:
        parts = [params.get("text", "")]
        for block in params.get("blocks") or []:
            if block.get("text"):
                parts.append(block["text"]["text"])
            parts += [e.get("text", "") for e in block.get("elements", [])
                      if isinstance(e.get("text"), str)]
        return "\n".join(parts)

    def transcript(self) -> str:
        return "\n".join(self._text(p) for _, p in self._shown())

    def cards(self) -> list[Card]:
        found = []
        for method, params in self._shown():
            match = re.search(r"Approval `?([a-z2-7]{8})", self._text(params))
            if match and method != "chat.postEphemeral":
                buttons = {e["text"]["text"]: e["value"] for b in params.get("blocks") or []
                           if b.get("type") == "actions" for e in b["elements"]}
                found.append(Card(match[1], buttons, self._text(params), params))
        return found

    async def say(self, text: str, *, stranger: bool = False) -> None:
        delivery = await self.server.deliver(self.url, self.server.message_event(
            text, user="UBAD" if stranger else "UOP"))
        assert delivery.status == 200

    async def press(self, card: Card, label: str, *, stranger: bool = False) -> None:
        delivery = await self.server.deliver(self.url, self.server.click(
            card.buttons[label], message=card.ref, user="UBAD" if stranger else "UOP"))
        assert delivery.status == 200


ADAPTERS = ["console", "memory", "telegram", "slack"]
WITH_STRANGERS = ["memory", "telegram", "slack"]  # whoever sits at the terminal is the operator


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegramServer, FakeSlack]]:
    telegram, slack = FakeTelegramServer(), FakeSlack()
    await telegram.start()
    await slack.start()
    yield telegram, slack
    await slack.stop()
    await telegram.stop()


@pytest.fixture
def policy() -> dict[str, Any]:
    """``[policy]`` for the test (a test overrides it to open undo windows and so on)."""
    return {}


@pytest.fixture
async def driver(request: pytest.FixtureRequest, clock: time_machine.Traveller, tmp_path: Path,
                 receiver: WebhookReceiver, openai: FakeOpenAI, fakes: tuple,
                 policy: dict[str, Any]) -> AsyncIterator[Driver]:
    telegram, slack = fakes
    kind = request.param
    settings: dict[str, Any] = {
        "storage": {"data_dir": tmp_path / "data"},
        "connectors": {"webhooks": {"crm": {"url": receiver.url},
                                    "books": {"url": receiver.url}}},
        "llm": {"model": "openai:gpt-test", "base_url": openai.base_url, "api_key": "sk-test",
                "timeout_seconds": 5.0},
        "policy": policy,
    }
    if kind == "telegram":
        settings["telegram"] = {"token": telegram.token, "base_url": telegram.base_url,
                                "base_file_url": telegram.base_file_url, "operators": [111],
                                "poll_timeout_seconds": 1}
    if kind == "slack":
        settings["slack"] = {"bot_token": slack.bot_token, "signing_secret": slack.signing_secret,
                             "base_url": slack.api_url, "port": 0, "operators": ["UOP"]}
    app = await SoloApp.open(Settings.model_validate(settings))
    if kind == "memory":
        drive: Driver = MemoryDriver(app)
        drive.adapter = InMemoryAdapter(name="memory")
        await app.add_adapter(drive.adapter, operators={"operator"})
    elif kind == "console":
        drive = ConsoleDriver(app)
        read, write = os.pipe()
        drive.out, drive.writer = StringIO(), os.fdopen(write, "w")
        stdin = os.fdopen(read, "r")
        await app.add_adapter(ConsoleAdapter(stdin=stdin, stdout=drive.out))
        drive.stop += [drive.writer.close]
    else:
        (adapter,) = build_adapters(app.settings, timezone=app.timezone)
        await app.add_adapter(adapter)
        drive = TelegramDriver(app) if kind == "telegram" else SlackDriver(app)
        if kind == "telegram":
            drive.server = telegram
        else:
            drive.server = slack
            drive.url = f"http://127.0.0.1:{adapter.bound_port}/slack/events"
    yield drive
    for stop in drive.stop:
        stop()
    await app.aclose()


def each(*kinds: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("driver", kinds or ADAPTERS, indirect=True)


async def send_card(driver: Driver, text: str) -> Card:
    mark = len(driver.cards())
    await driver.say(f"/send crm {text}")
    return await driver.card(text, after=mark)


async def release_due(driver: Driver) -> None:
    """One pass of the jobs loop (the scheduler releases plans whose undo window ended)."""
    await driver.app.deliver(await driver.app.jobs.scheduler.tick())


@each()
async def test_approve_posts_once_and_names_the_receipt(
        driver: Driver, receiver: WebhookReceiver) -> None:
    card = await send_card(driver, "Invoice 42 is paid")
    assert set(card.buttons) == {"Approve", "Reject", "Edit"} and receiver.posts == []
    await driver.press(card, "Approve")
    await driver.sees("receipt r")
    assert receiver.deliveries_of("Invoice 42 is paid") == 1


@each()
async def test_reject_posts_nothing(driver: Driver, receiver: WebhookReceiver) -> None:
    card = await send_card(driver, "not this one")
    await driver.press(card, "Reject")
    await driver.sees("nothing was sent")
    assert receiver.posts == []


@each()
async def test_a_double_press_runs_once_and_says_so(
        driver: Driver, receiver: WebhookReceiver) -> None:
    card = await send_card(driver, "only once")
    await driver.press(card, "Approve")
    await driver.sees("receipt r")
    mark = driver.mark()
    await driver.press(card, "Approve")
    await driver.sees("Already approved", after=mark)
    assert receiver.deliveries_of("only once") == 1


@each(*WITH_STRANGERS)
async def test_a_stranger_can_neither_command_nor_approve(
        driver: Driver, receiver: WebhookReceiver) -> None:
    card = await send_card(driver, "operators only")
    await driver.say("/send crm from a stranger", stranger=True)
    await driver.sees("only works for its operators")
    await driver.press(card, "Approve", stranger=True)
    async def refused_twice() -> bool:
        events = await driver.app.storage.audit.recent(50)
        return sum(e.decision == "refused" for e in events) >= 2
    await poll_until(refused_twice, timeout=WAIT, describe=lambda: "no two refusals audited")
    assert receiver.posts == []
    await driver.press(card, "Approve")
    await driver.sees("receipt r")
    assert receiver.deliveries_of("operators only") == 1
    assert receiver.deliveries_of("from a stranger") == 0


@each()
async def test_a_stale_card_says_so_and_an_expired_one_sends_nothing(
        driver: Driver, receiver: WebhookReceiver, clock: time_machine.Traveller) -> None:
    old = await send_card(driver, "too late")
    clock.move_to(CLOCK_START + timedelta(hours=25))
    mark = driver.mark()
    await driver.press(old, "Approve")
    await driver.sees("expired", after=mark)
    assert receiver.posts == []


@each()
async def test_edit_runs_the_new_text_once_and_the_old_card_runs_nothing(
        driver: Driver, receiver: WebhookReceiver) -> None:
    card = await send_card(driver, "Invoice 42 is paid")
    mark = driver.mark()
    await driver.press(card, "Edit")
    await driver.sees("Send the new text", after=mark)
    mark = len(driver.cards())
    await driver.say("Invoice 43 is paid, not 42")
    new = await driver.card("Invoice 43 is paid, not 42", after=mark)
    assert new.approval_id != card.approval_id
    shown = driver.mark()
    await driver.press(card, "Approve")  # the card from before the edit
    await driver.sees("replaced by an edit", after=shown)
    assert receiver.posts == []
    await driver.press(new, "Approve")
    await driver.sees("receipt r")
    assert [p.body["text"] for p in receiver.posts] == ["Invoice 43 is paid, not 42"]


@each()
@pytest.mark.parametrize("policy", [{"undo_seconds": {"webhook.post": 20}}])
async def test_undo_inside_the_window_sends_nothing(
        driver: Driver, receiver: WebhookReceiver, clock: time_machine.Traveller) -> None:
    card = await send_card(driver, "take it back")
    await driver.press(card, "Approve")
    held = await driver.card("unless you press Undo")
    assert list(held.buttons) == ["Undo"] and "runs in 20 s" in held.text
    await driver.press(held, "Undo")
    await driver.sees("Undone: POST")
    clock.move_to(CLOCK_START + timedelta(seconds=60))
    await release_due(driver)
    await driver.settle()
    assert receiver.posts == []


@each()
@pytest.mark.parametrize("policy", [{"undo_seconds": {"webhook.post": 20}}])
async def test_after_the_undo_window_it_posts_exactly_once(
        driver: Driver, receiver: WebhookReceiver, clock: time_machine.Traveller) -> None:
    card = await send_card(driver, "send it later")
    await driver.press(card, "Approve")
    await driver.card("unless you press Undo")
    await release_due(driver)
    assert receiver.posts == []  # still inside the window
    clock.move_to(CLOCK_START + timedelta(seconds=21))
    await release_due(driver)
    await driver.sees("receipt r")
    await release_due(driver)
    assert receiver.deliveries_of("send it later") == 1


THREE_STEPS = {"intent": "send", "slots": {}, "confidence": 0.9, "steps": [
    {"action": "note.create", "text": "Acme paid invoice 42"},
    {"action": "webhook.post", "webhook": "crm", "text": "Invoice 42 is paid",
     "depends_on": [0]},
    {"action": "webhook.post", "webhook": "books", "text": "Book 42 as income",
     "depends_on": []},
]}


@each()
@pytest.mark.parametrize("policy", [{"risk": {"note.create": "high"}}])
async def test_one_card_per_plan_and_a_rejected_step_halts_only_its_dependants(
        driver: Driver, receiver: WebhookReceiver, openai: FakeOpenAI, tmp_path: Path) -> None:
    openai.script = [THREE_STEPS]
    await driver.say("log that Acme paid invoice 42, tell the crm, and book it")
    card = await driver.card("Book 42 as income")
    assert len(driver.cards()) == 1  # the whole plan on one card
    assert {"Approve", "Reject", "Edit", "Reject 1", "Approve 2", "Approve 3"} <= \
        set(card.buttons)
    await driver.press(card, "Reject 1")
    card = await driver.card("step 1 rejected")
    await driver.press(card, "Approve 2")
    card = await driver.card("step 2 approved")
    await driver.press(card, "Approve 3")
    shown = await driver.sees("Not run:")
    assert "Rejected: New note" in shown
    assert re.search(r"Not run: POST to webhook \"crm\" — it depends on step 1 \(New note",
                     shown)
    await driver.sees("receipt r")
    assert receiver.deliveries_of("Book 42 as income") == 1
    assert receiver.deliveries_of("Invoice 42 is paid") == 0
    assert not list((tmp_path / "data" / "notes").glob("*.md"))
