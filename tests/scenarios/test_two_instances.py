"""Two real ``solo serve`` processes on one PostgreSQL database, behind Telegram in webhook mode
and Slack in HTTP mode (the test is the load balancer: it picks the instance each update goes
to). One instance is killed (SIGKILL) while it carries out an approved POST; the other finishes
that plan — one effective delivery, the card edited once with the receipt. A press sent to both
instances at once is decided once. Replies are sent once although both instances see them
queued."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, fresh_postgres_url
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.mailrig import free_port
from tests.support.processes import start_serve, stop

SECRET = "telegram-webhook-secret-1"


def instance_config(tmp_path: Path, name: str, url: str, telegram: FakeTelegramServer,
                    slack: FakeSlack, receiver: WebhookReceiver) -> tuple[Path, int, int]:
    """An instance's config (its own ports and data directory, the shared database)."""
    telegram_port, slack_port = free_port(), free_port()
    folder = tmp_path / name
    folder.mkdir()
    config = folder / "solo.toml"
    config.write_text(f"""
[storage]
data_dir = "{folder / 'data'}"
database_url = "{url}"
[telegram]
token = "{telegram.token}"
base_url = "{telegram.base_url}"
base_file_url = "{telegram.base_file_url}"
operators = [111]
mode = "webhook"
webhook_url = "https://solo.example/telegram"
webhook_secret = "{SECRET}"
port = {telegram_port}
max_messages_per_second = 0
[slack]
bot_token = "{slack.bot_token}"
signing_secret = "{slack.signing_secret}"
base_url = "{slack.api_url}"
port = {slack_port}
operators = ["UOP"]
[connectors.webhooks.crm]
url = "{receiver.url}"
""")
    return config, telegram_port, slack_port


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL and not REQUIRE_POSTGRES,
                    reason="PostgreSQL not available: set SOLO_TEST_POSTGRES_URL (.ci/run does)")
async def test_two_instances_one_killed_mid_plan_the_other_finishes_it_once(
        tmp_path: Path) -> None:
    url = await fresh_postgres_url(f"solo_pair_{os.getpid()}")
    telegram, slack, receiver = FakeTelegramServer(), FakeSlack(), WebhookReceiver(delay=4.0)
    for server in (telegram, slack, receiver):
        await server.start()
    a_config, a_telegram, a_slack = instance_config(tmp_path, "a", url, telegram, slack,
                                                    receiver)
    b_config, b_telegram, b_slack = instance_config(tmp_path, "b", url, telegram, slack,
                                                    receiver)
    a = await start_serve(a_config, tmp_path / "a.log")
    b = await start_serve(b_config, tmp_path / "b.log")
    logs = lambda: (tmp_path / "a.log").read_text()[-3000:] + "\n---\n" + \
        (tmp_path / "b.log").read_text()[-3000:]  # noqa: E731

    async def to_telegram(port: int, update: dict) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"http://127.0.0.1:{port}/telegram", json=update,
                                       headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert answer.status_code == 200, answer.text

    def cards() -> list[dict]:
        return [p for p in telegram.sent("sendMessage") if "reply_markup" in p]

    try:
        # Asked on A, approved on A; A dies while the POST is in flight.
        await to_telegram(a_telegram, telegram.message_update("/send crm paid in full"))
        (card,) = await telegram.wait_for(cards)
        approve = telegram.card_buttons(card)[0]
        await to_telegram(a_telegram, telegram.press_update(approve,
                                                            message_id=card["message_id"]))
        await receiver.wait_for(lambda: receiver.arrivals)
        a.send_signal(signal.SIGKILL)
        assert await a.wait() == -signal.SIGKILL
        # B finds the plan A held (its process is gone) and finishes it: one delivery.
        edits = await telegram.wait_for(lambda: [
            e for e in telegram.sent("editMessageText", message_id=card["message_id"])
            if "receipt r" in e["text"]], timeout=180)
        assert "Approved by 111" in edits[0]["text"]
        [key] = set(receiver.arrivals)
        await receiver.wait_for(lambda: receiver.ok_count(key) == 1)
        assert receiver.deliveries_of("paid in full") == 1

        # A back; a press delivered to both instances at once is decided once.
        a = await start_serve(a_config, tmp_path / "a.log")
        receiver.delay = 0.0
        await to_telegram(b_telegram, telegram.message_update("/send crm second"))
        (_, second) = await telegram.wait_for(lambda: len(cards()) >= 2 and cards())
        press = telegram.press_update(telegram.card_buttons(second)[0],
                                      message_id=second["message_id"])
        await asyncio.gather(to_telegram(a_telegram, press), to_telegram(b_telegram, press))
        await telegram.wait_for(lambda: [
            e for e in telegram.sent("editMessageText", message_id=second["message_id"])
            if "receipt r" in e["text"]])
        assert receiver.deliveries_of("second") == 1

        # Slack over HTTP: asked on B, approved on A (one plan, whichever instance).
        sent = await slack.deliver(f"http://127.0.0.1:{b_slack}/slack/events",
                                   slack.message_event("/send crm from slack"))
        assert sent.status == 200
        (slack_card,) = await slack.wait_for(lambda: slack.cards())
        click = slack.click(slack.button_values(slack_card)[0], message=slack_card)
        await asyncio.gather(slack.deliver(f"http://127.0.0.1:{a_slack}/slack/events", click),
                             slack.deliver(f"http://127.0.0.1:{b_slack}/slack/events", click))
        await slack.wait_for(lambda: [u for u in slack.sent("chat.update")
                                      if "receipt r" in u["text"]])
        assert receiver.deliveries_of("from slack") == 1
        await asyncio.sleep(3)  # time for a duplicate reply or POST to show up
        assert receiver.deliveries_of("from slack") == 1
        assert len([u for u in slack.sent("chat.update") if "receipt r" in u["text"]]) == 1
        texts = telegram.texts()  # each reply sent once (a second press is told "Already…")
        assert {t for t in texts if texts.count(t) > 1 and not t.startswith("Already")} == set()
    except AssertionError:
        print(logs())
        raise
    finally:
        await stop(a)
        await stop(b)
        for server in (telegram, slack, receiver):
            await server.stop()
