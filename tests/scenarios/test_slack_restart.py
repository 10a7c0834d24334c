"""SIGKILL the real ``solo serve`` (Slack, HTTP mode) while a card is pending, restart it, click
the ORIGINAL button: exactly one effective POST, and the original card shows the receipt."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

from tests.fakes.slack import FakeSlack
from tests.fakes.webhooks import WebhookReceiver
from tests.support.processes import start_serve, stop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_sigkill_with_a_pending_card_then_the_original_button_works(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    slack = FakeSlack()
    await slack.start()
    port = free_port()
    config = tmp_path / "solo.toml"
    config.write_text(f"""
[storage]
data_dir = "{tmp_path / 'data'}"
[slack]
bot_token = "{slack.bot_token}"
signing_secret = "{slack.signing_secret}"
base_url = "{slack.api_url}"
port = {port}
operators = ["UOP"]
[connectors.webhooks.crm]
url = "{receiver.url}"
""")
    url = f"http://127.0.0.1:{port}/slack/events"
    log = tmp_path / "serve.log"
    proc = await start_serve(config, log)
    try:
        assert (await slack.deliver(url, slack.message_event("/send crm paid in full"))).status \
            == 200
        (card,) = await slack.wait_for(lambda: slack.cards())
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL

        proc = await start_serve(config, log)
        click = await slack.deliver(url, slack.click(slack.button_values(card)[0], message=card))
        assert click.status == 200
        updates = await slack.wait_for(lambda: slack.sent("chat.update", ts=card["ts"]))
        assert "Approved by UOP" in updates[0]["text"] and "receipt r" in updates[0]["text"]
        assert receiver.deliveries_of("paid in full") == 1 and len(receiver.posts) == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    except AssertionError:
        print(log.read_text()[-4000:])
        raise
    finally:
        await stop(proc)
        await slack.stop()
