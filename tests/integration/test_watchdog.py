"""The watchdog against fake platforms that fail the quiet ways they fail in the wild: a Slack
Socket Mode connection that stays up and answers pings but delivers nothing (refreshed; the
events Slack held back arrive on the fresh one; the operator is told on the other channel), and
a Telegram that stops answering altogether (probed, reconnected, the operator told on the other
channel, and told again when it answers), an MCP server whose process stops reading (pinged,
restarted, told twice) and a mail poller that stopped looking (a fresh poll reads what came,
told twice). ``/healthz`` reports each one's last event."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from bot.wiring import build_adapters
from config import Settings
from memory.models import utcnow
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegramServer
from tests.support.mailrig import MailRig, mail
from tests.support.waiting import poll_until

GENEROUS = 120.0


async def check_until(app: SoloApp, done: Callable[[], Any | Awaitable[Any]]) -> None:
    """Run the watchdog's check (as ``solo serve`` does every 15 s) until ``done()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GENEROUS
    while loop.time() < deadline:
        await app.watchdog.check()
        result = done()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the watchdog did not get there")


def notices(chat: InMemoryAdapter) -> list[str]:
    return [s.text for s in chat.sent if s.kind == "message"]


async def test_a_deaf_socket_mode_connection_is_refreshed_and_nothing_is_lost(
        tmp_path: Path) -> None:
    slack = FakeSlack()
    await slack.start()
    settings = Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "slack": {"bot_token": slack.bot_token, "app_token": slack.app_token,
                  "base_url": slack.api_url, "mode": "socket", "operators": ["UOP"],
                  "refresh_minutes": 2 / 60}})  # default 1.5 minutes
    app = await SoloApp.open(settings)
    (adapter,) = build_adapters(settings, timezone=app.timezone)
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    await app.add_adapter(adapter)
    try:
        first = await slack.send_envelope(slack.message_event("/note before"))
        await slack.wait_for(lambda: any(a.get("envelope_id") == first for a in slack.acks))
        slack.mute()  # up, answering pings, delivering nothing
        held = await slack.send_envelope(slack.message_event("/note while deaf"))
        assert slack.held and await adapter.probe() is None  # pings still answered
        await check_until(app, lambda: slack.connections == 2)
        await slack.wait_for(lambda: any(a.get("envelope_id") == held for a in slack.acks))
        await check_until(app, lambda: any("gone deaf" in t for t in notices(chat)))
        [told] = [t for t in notices(chat) if "gone deaf" in t]
        assert told.startswith("Slack: ") and "Nothing was lost" in told
        folder = tmp_path / "data" / "notes"
        await poll_until(lambda: any("while deaf" in p.read_text() for p in folder.glob("*.md")),
                         timeout=GENEROUS, describe=slack.describe, every=0.1)
        assert sum("while deaf" in p.read_text() for p in folder.glob("*.md")) == 1
        assert app.liveness()["slack"]["last_event_seconds"] is not None
    finally:
        await app.aclose()
        await slack.stop()


async def test_a_telegram_that_stops_answering_is_reconnected_and_the_operator_told(
        clock: time_machine.Traveller, tmp_path: Path) -> None:
    telegram = FakeTelegramServer()
    await telegram.start()
    settings = Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "telegram": {"token": telegram.token, "base_url": telegram.base_url,
                     "base_file_url": telegram.base_file_url, "operators": [111],
                     "poll_timeout_seconds": 1}})
    app = await SoloApp.open(settings)
    (adapter,) = build_adapters(settings, timezone=app.timezone)
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    await app.add_adapter(adapter)
    try:
        await app.watchdog.check()
        assert notices(chat) == []  # polling answers: nothing to say
        telegram.answering.clear()  # every request hangs from now on
        clock.move_to(utcnow() + timedelta(minutes=5))
        await check_until(app, lambda: app.watchdog.down)
        [told] = notices(chat)
        assert told.startswith("Telegram stopped answering (Telegram does not answer")
        assert "reach me here" in told
        telegram.answering.set()
        telegram.message("/note after the outage")
        await check_until(app, lambda: "telegram" not in app.watchdog.down)
        assert notices(chat)[-1] == "Telegram works again."
        notes = tmp_path / "data" / "notes"
        await poll_until(lambda: any("after the outage" in p.read_text()
                                     for p in notes.glob("*.md")),
                         timeout=GENEROUS, describe=telegram.describe, every=0.1)
    finally:
        telegram.answering.set()
        await app.aclose()
        await telegram.stop()


def server_pids(marker: str) -> list[int]:
    """The processes whose command line holds ``marker`` (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_an_mcp_server_that_stops_answering_is_restarted_and_the_operator_told(
        clock: time_machine.Traveller, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    app = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "connectors": {"mcp": {"ledger": {
            "command": sys.executable, "timeout_seconds": 20,
            "args": ["-m", "tests.support.mcp_test_server", str(ledger)]}}}}))
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    server = app.director.deps.connectors["mcp:ledger"].server
    frozen: list[int] = []
    try:
        assert await server.ready(GENEROUS)
        clock.move_to(utcnow() + timedelta(minutes=5))
        await app.watchdog.check()  # quiet, so pinged: it answers, nothing to say
        assert notices(chat) == [] and app.liveness()["mcp:ledger"]["quiet_seconds"] == 0
        [pid] = server_pids(str(ledger))
        os.kill(pid, signal.SIGSTOP)  # the process is there and reads nothing
        frozen.append(pid)
        clock.move_to(utcnow() + timedelta(minutes=5))
        await check_until(app, lambda: app.watchdog.down)
        [told] = notices(chat)
        assert told.startswith("MCP server ledger stopped answering (no answer to a ping "), told
        assert "its tools wait until it works" in told
        await check_until(app, lambda: "mcp:ledger" not in app.watchdog.down)
        assert notices(chat)[-1] == "MCP server ledger works again."
        assert server_pids(str(ledger)) != [pid]  # a fresh process
        sent = await chat.say('/call ledger.append_line {"text": "after the restart"}')
        [card] = [s.card for s in sent if s.kind == "card"]
        await chat.press("approve", card.approval_id)
        assert ledger.read_text().splitlines() == ["after the restart"]
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await app.aclose()


async def test_a_mail_poller_that_stopped_looking_is_restarted_and_the_operator_told(
        clock: time_machine.Traveller, tmp_path: Path, mail_rig: MailRig) -> None:
    user = mail_rig.add_user()
    app = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "connectors": {"email": {
            "imap_host": "127.0.0.1", "imap_port": mail_rig.imap_port, "smtp_host": "127.0.0.1",
            "smtp_port": mail_rig.smtp_port, "security": "none", "username": user,
            "password": mail_rig.users[user], "address": mail_rig.address(user)}}}))
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    try:
        await app.jobs.poll_mail(now=0)  # the poller looked (here, by hand: no loop runs)
        await app.watchdog.check()
        assert notices(chat) == [] and app.liveness()["email"]["last_event_seconds"] is None
        me = mail_rig.address(user)
        mail_rig.deliver(user, mail("Ada <ada@client.example>", me, "Invoice 12", "Paid?",
                                    "<inv12@client.example>"))
        clock.move_to(utcnow() + timedelta(minutes=10))  # and then it stopped looking
        await check_until(app, lambda: app.watchdog.down)
        told = notices(chat)[0]
        assert told.startswith("Mail polling stopped (the mailbox was not looked at for 10 min)")
        assert "nothing is lost" in told
        await check_until(app, lambda: "email" not in app.watchdog.down)  # the fresh poll read
        assert notices(chat)[-1] == "Mail polling works again."
        assert app.liveness()["email"]["last_event_seconds"] == 0
        assert [m.subject for m in await app.storage.mail.latest(5)] == ["Invoice 12"]
    finally:
        await app.aclose()
