"""SIGKILL the real ``solo serve`` (Telegram) while an approval is pending, restart it, press
the ORIGINAL button: exactly one effective POST, and the original card shows the receipt."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.processes import start_serve, stop, write_serve_config


async def test_sigkill_with_a_pending_card_then_the_original_button_works(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    telegram = FakeTelegramServer()
    await telegram.start()
    config = write_serve_config(tmp_path, telegram.config_section(),
                                f'[connectors.webhooks.crm]\nurl = "{receiver.url}"\n')
    log = tmp_path / "serve.log"
    proc = await start_serve(config, log)
    try:
        telegram.message("/send crm paid in full")
        (card,) = await telegram.wait_for(
            lambda: [p for p in telegram.sent("sendMessage") if "reply_markup" in p])
        approve = telegram.card_buttons(card)[0]
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        assert receiver.posts == []

        proc = await start_serve(config, log)
        telegram.press(approve, message_id=card["message_id"])
        edit = await telegram.wait_for(lambda: telegram.sent("editMessageText",
                                                             message_id=card["message_id"]))
        assert "Approved by 111" in edit[0]["text"] and "receipt r" in edit[0]["text"]
        assert receiver.deliveries_of("paid in full") == 1 and len(receiver.posts) == 1
        # A card the crash re-sent (its delivery was not marked yet) is edited too.
        copies = {p["message_id"] for p in telegram.sent("sendMessage") if "reply_markup" in p}
        await telegram.wait_for(lambda: {e["message_id"] for e in telegram.sent(
            "editMessageText")} == copies)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    except AssertionError:
        print(log.read_text()[-4000:])
        raise
    finally:
        await stop(proc)
        await telegram.stop()
