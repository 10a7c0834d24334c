"""The mail poller's health: a refused login is said once, a server that does not answer is
retried with backoff and said once, recovery is said once; /status and the summary show it. A
server that answers a byte at a time cannot hold a poll."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from tests.support.mailrig import MailRig, free_port


def settings_for(tmp_path: Path, rig: MailRig, user: str, *, password: str,
                 imap_port: int) -> Settings:
    return Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "connectors": {"email": {
            "imap_host": "127.0.0.1", "imap_port": imap_port, "smtp_host": "127.0.0.1",
            "smtp_port": rig.smtp_port, "security": "none", "username": user,
            "password": password, "address": rig.address(user), "poll_seconds": 60,
            "timeout_seconds": 5}}})


async def run(settings: Settings, steps) -> list[str]:
    app = await SoloApp.open(settings)
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    try:
        await steps(app, chat)
    finally:
        await app.aclose()
    return chat.texts()


async def test_a_refused_login_is_said_once_and_recovery_too(tmp_path: Path,
                                                              mail_rig: MailRig) -> None:
    user = mail_rig.add_user()

    async def polls(app: SoloApp, chat: InMemoryAdapter) -> None:
        with time_machine.travel("2026-12-01 09:00Z", tick=True) as clock:
            await app.jobs.poll_mail(now=0)
            clock.shift(3600)  # after the backoff: polled again, still refused, not said again
            await app.jobs.poll_mail(now=10_000)
            status = (await chat.say("/status"))[0].text
            assert "email: login refused — reconnect since" in status
            summary = "\n".join(s.text for s in await chat.say("/summary") if s.kind == "message")
            assert "email: login refused — reconnect" in summary

    texts = await run(settings_for(tmp_path, mail_rig, user, password="wrong",
                                   imap_port=mail_rig.imap_port), polls)
    assert sum("refused the login" in t for t in texts) == 1, texts

    async def fixed(app: SoloApp, chat: InMemoryAdapter) -> None:
        with time_machine.travel("2026-12-01 12:00Z", tick=True):
            await app.jobs.poll_mail(now=0)
            status = await chat.say("/status", event_id="second-run-status")
            assert "login refused" not in status[0].text

    texts = await run(settings_for(tmp_path, mail_rig, user, password=mail_rig.users[user],
                                   imap_port=mail_rig.imap_port), fixed)
    assert sum(t == "Mail works again." for t in texts) == 1, texts


async def test_a_server_that_does_not_answer_is_retried_with_backoff(
        tmp_path: Path, mail_rig: MailRig) -> None:
    user = mail_rig.add_user()

    async def polls(app: SoloApp, chat: InMemoryAdapter) -> None:
        with time_machine.travel("2026-12-01 09:00Z", tick=True) as clock:
            await app.jobs.poll_mail(now=0)
            health = await app.director.storage.health.get("email")
            assert health.state == "down" and health.failures == 1
            await app.jobs.poll_mail(now=100)  # inside the backoff (120 s): not polled
            assert (await app.director.storage.health.get("email")).failures == 1
            clock.shift(121)
            await app.jobs.poll_mail(now=200)
            health = await app.director.storage.health.get("email")
            assert health.failures == 2
            assert (health.retry_at - health.since).total_seconds() > 200  # doubled

    texts = await run(settings_for(tmp_path, mail_rig, user, password=mail_rig.users[user],
                                   imap_port=free_port()), polls)
    assert sum("not answering" in t for t in texts) == 1, texts


async def test_a_server_that_answers_a_byte_at_a_time_cannot_hold_a_poll(
        tmp_path: Path, mail_rig: MailRig) -> None:
    """Each byte comes well inside the socket timeout, so only the operation's deadline ends it
    (here inside imapclient's constructor, which waits for the first answer): the poll fails as
    the server not answering, and the connection is shut under the worker thread (so it ends,
    not after the quarter of an hour the whole answer would take)."""
    writers: list[asyncio.StreamWriter] = []
    cut_off = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] slow server ready\r\n")
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            tag = (await reader.readline()).split(b" ")[0]
            rest = asyncio.create_task(reader.read())  # b"" once the client shuts its side
            for byte in tag + b" OK CAPABILITY completed, eventually" * 100 + b"\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait({rest}, timeout=0.3)
                if rest.done():
                    break
            else:
                return  # the client waited for all of it: not cut off
        cut_off.set()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    user = mail_rig.add_user()
    settings = settings_for(tmp_path, mail_rig, user, password=mail_rig.users[user],
                            imap_port=port)
    settings.connectors.email.timeout_seconds = 1  # a deadline of 4 s; bytes every 0.3 s

    async def polls(app: SoloApp, chat: InMemoryAdapter) -> None:
        with time_machine.travel("2026-12-01 09:00Z", tick=True):
            await app.jobs.poll_mail(now=0)
            health = await app.director.storage.health.get("email")
            assert health.state == "down" and "no whole answer within 4 s" in health.detail
            await asyncio.wait_for(cut_off.wait(), 60)

    try:
        texts = await run(settings, polls)
    finally:
        server.close()
        for writer in writers:
            writer.close()
    assert sum("not answering" in t for t in texts) == 1, texts
