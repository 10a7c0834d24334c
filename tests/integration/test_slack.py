"""The Slack adapter: the real bolt app and slack_sdk client against a fake Slack on 127.0.0.1,
with Events API and interactivity payloads delivered as signed HTTP requests (or over a local
Socket Mode websocket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.adapters.slack import SlackAdapter
from bot.app import SoloApp
from bot.wiring import build_adapters
from config import Settings
from tests.fakes.slack import FakeSlack
from tests.fakes.webhooks import WebhookReceiver

OPERATOR = "UOP"
STRANGER = "UBAD"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    server = FakeSlack()
    await server.start()
    yield server
    await server.stop()


def slack_settings(tmp_path: Path, slack: FakeSlack, receiver: WebhookReceiver,
                   **extra: object) -> Settings:
    return Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "slack": {"bot_token": slack.bot_token, "signing_secret": slack.signing_secret,
                  "app_token": slack.app_token, "base_url": slack.api_url, "port": 0,
                  "operators": [OPERATOR], **extra},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}},
    })


class Running:
    """A running app with the Slack adapter, and the URL Slack posts to."""

    def __init__(self, app: SoloApp, adapter: SlackAdapter) -> None:
        self.app = app
        self.adapter = adapter
        self.url = f"http://127.0.0.1:{adapter.bound_port}/slack/events"


@pytest.fixture
async def bot(tmp_path: Path, slack: FakeSlack, receiver: WebhookReceiver
              ) -> AsyncIterator[Running]:
    app = await SoloApp.open(slack_settings(tmp_path, slack, receiver))
    (adapter,) = build_adapters(app.settings, timezone=app.timezone)
    await app.add_adapter(adapter)
    yield Running(app, adapter)
    await app.aclose()


async def say(slack: FakeSlack, bot: Running, text: str, **kwargs: object) -> None:
    delivery = await slack.deliver(bot.url, slack.message_event(text, **kwargs))
    assert delivery.status == 200


async def card_for(slack: FakeSlack, bot: Running, text: str) -> dict:
    await say(slack, bot, f"/send crm {text}")
    (card,) = await slack.wait_for(lambda: [c for c in slack.cards() if text in c["text"]])
    return card


async def test_note_in_a_dm(bot: Running, slack: FakeSlack) -> None:
    await say(slack, bot, "/note pricing call went well")
    (reply,) = await slack.wait_for(lambda: slack.sent(channel="DOP"))
    assert reply["text"].startswith("Done: note saved") and "receipt r" in reply["text"]
    assert "thread_ts" not in reply or reply["thread_ts"] is None


async def test_send_card_approve_posts_once_and_updates_the_card(
        bot: Running, slack: FakeSlack, receiver: WebhookReceiver) -> None:
    card = await card_for(slack, bot, "Invoice 42 is paid")
    values = slack.button_values(card)
    assert values[0].startswith("approve:") and values[1].startswith("reject:")
    styles = [e.get("style") for b in card["blocks"] if b["type"] == "actions"
              for e in b["elements"]]
    assert styles == ["primary", "danger", None]
    context = next(b for b in card["blocks"] if b["type"] == "context")
    assert "Risk: *high*" in context["elements"][0]["text"]
    assert "cost estimate" in context["elements"][0]["text"]
    assert receiver.posts == []
    click = await slack.deliver(bot.url, slack.click(values[0], message=card))
    assert click.status == 200
    (update,) = await slack.wait_for(lambda: slack.sent("chat.update"))
    assert update["ts"] == card["ts"] and update["channel"] == card["channel"]
    assert not [b for b in update["blocks"] if b["type"] == "actions"]
    assert "Approved by UOP" in update["text"] and "receipt r" in update["text"]
    assert len(receiver.posts) == 1 and receiver.posts[0].key.startswith("solo-")


async def test_reject_never_posts(bot: Running, slack: FakeSlack,
                                  receiver: WebhookReceiver) -> None:
    card = await card_for(slack, bot, "not this one")
    await slack.deliver(bot.url, slack.click(slack.button_values(card)[1], message=card))
    (update,) = await slack.wait_for(lambda: slack.sent("chat.update"))
    assert "Rejected by UOP" in update["text"]
    assert receiver.posts == []


async def test_double_click_posts_once_and_tells_ephemerally(
        bot: Running, slack: FakeSlack, receiver: WebhookReceiver) -> None:
    card = await card_for(slack, bot, "only once")
    approve = slack.button_values(card)[0]
    await slack.deliver(bot.url, slack.click(approve, message=card))
    await slack.wait_for(lambda: slack.sent("chat.update"))
    await slack.deliver(bot.url, slack.click(approve, message=card))
    (notice,) = await slack.wait_for(lambda: slack.sent("chat.postEphemeral"))
    assert notice["user"] == OPERATOR and "Already approved by UOP" in notice["text"]
    assert receiver.deliveries_of("only once") == 1 and len(receiver.posts) == 1


async def test_strangers_get_an_ephemeral_refusal_and_cannot_approve(
        bot: Running, slack: FakeSlack, receiver: WebhookReceiver) -> None:
    card = await card_for(slack, bot, "operators only")
    await say(slack, bot, "/note let me in", user=STRANGER, channel="DBAD")
    await slack.deliver(bot.url, slack.click(slack.button_values(card)[0], message=card,
                                             user=STRANGER))
    (refusal,) = await slack.wait_for(lambda: slack.sent("chat.postEphemeral"))
    assert refusal["user"] == STRANGER and "only works for its operators" in refusal["text"]
    await asyncio.sleep(0.3)
    assert receiver.posts == [] and not slack.sent("chat.update")
    refused = [e for e in await bot.app.storage.audit.recent() if e.decision == "refused"]
    assert [e.actor for e in refused] == [STRANGER, STRANGER]


async def test_a_retried_event_is_processed_once(bot: Running, slack: FakeSlack,
                                                 tmp_path: Path) -> None:
    event = slack.message_event("/note only once")
    assert (await slack.deliver(bot.url, event)).status == 200
    assert (await slack.deliver(bot.url, event, retry=1)).status == 200
    await slack.wait_for(lambda: slack.sent(channel="DOP"))
    await say(slack, bot, "/status")
    await slack.wait_for(lambda: len(slack.sent(channel="DOP")) == 2)
    assert len([p for p in slack.sent() if p["text"].startswith("Done")]) == 1
    assert len(list((tmp_path / "data" / "notes").glob("*.md"))) == 1


async def test_a_bad_signature_is_rejected_and_counted(bot: Running, slack: FakeSlack) -> None:
    event = slack.message_event("/note forged")
    for _ in range(2):
        delivery = await slack.deliver(bot.url, event, signature={
            "X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=deadbeef"})
        assert delivery.status == 401
    await asyncio.sleep(0.2)
    assert not slack.sent()
    async with aiohttp.ClientSession() as http, \
            http.get(bot.url.replace("/slack/events", "/healthz")) as response:
        health = await response.json()
        assert health["ok"] and health["refused"] == 2


async def test_mentions_and_thread_replies_answer_in_the_thread(bot: Running,
                                                                slack: FakeSlack) -> None:
    await say(slack, bot, "<@UBOT> /note from a channel", channel="C1",
              channel_type="channel", event_type="app_mention")
    (reply,) = await slack.wait_for(lambda: slack.sent(channel="C1"))
    thread = reply["thread_ts"]
    assert thread
    await say(slack, bot, "/status", channel="C1", channel_type="channel", thread_ts=thread)
    await say(slack, bot, "chatter not for the bot", channel="C1", channel_type="channel")
    await slack.wait_for(lambda: len(slack.sent(channel="C1")) == 2)
    await asyncio.sleep(0.2)
    assert [p["thread_ts"] for p in slack.sent(channel="C1")] == [thread, thread]


async def test_slow_connector_never_delays_the_ack(bot: Running, slack: FakeSlack,
                                                   receiver: WebhookReceiver) -> None:
    receiver.delay = 2.0
    card = await card_for(slack, bot, "slow target")
    click = await slack.deliver(bot.url, slack.click(slack.button_values(card)[0], message=card))
    await say(slack, bot, "/status")
    await slack.wait_for(lambda: slack.sent("chat.update"))
    assert len(receiver.posts) == 1
    assert all(d.status == 200 for d in slack.deliveries)
    assert max(d.seconds for d in slack.deliveries) < 3.0, slack.deliveries
    assert click.seconds < 1.0


async def test_429_is_waited_out_and_long_replies_split(bot: Running, slack: FakeSlack) -> None:
    slack.failures["chat.postMessage"] = [{"error": "ratelimited", "status": 429,
                                           "retry_after": 1}]
    await say(slack, bot, "/" + "x" * 5000)
    await slack.wait_for(lambda: len(slack.sent(channel="DOP")) == 3)
    attempts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert attempts[1].at - attempts[0].at >= 1.0
    first, second = (p["text"] for p in slack.sent(channel="DOP")[1:])
    assert len(first) <= 3900 and first + second == f"Unknown command /{'x' * 5000}. Try /help."


async def test_health_endpoint(bot: Running) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(bot.url.replace("/slack/events", "/healthz")) as response:
            assert response.status == 200


async def test_socket_mode(tmp_path: Path, slack: FakeSlack, receiver: WebhookReceiver) -> None:
    app = await SoloApp.open(slack_settings(tmp_path, slack, receiver, mode="socket"))
    (adapter,) = build_adapters(app.settings, timezone=app.timezone)
    await app.add_adapter(adapter)
    try:
        envelope = await slack.send_envelope(slack.message_event("/send crm over a socket"))
        await slack.wait_for(lambda: any(a.get("envelope_id") == envelope for a in slack.acks))
        (card,) = await slack.wait_for(lambda: slack.cards())
        click = await slack.send_envelope(slack.click(slack.button_values(card)[0],
                                                      message=card))
        await slack.wait_for(lambda: any(a.get("envelope_id") == click for a in slack.acks))
        (update,) = await slack.wait_for(lambda: slack.sent("chat.update"))
        assert "receipt r" in update["text"]
        assert receiver.deliveries_of("over a socket") == 1
    finally:
        await app.aclose()


def test_http_mode_needs_a_signing_secret(tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"data_dir": tmp_path},
                                        "slack": {"bot_token": "xoxb-1"}})
    with pytest.raises(ValueError, match="signing_secret"):
        build_adapters(settings, timezone=None)


async def test_unsure_questions_come_with_buttons(bot: Running, slack: FakeSlack) -> None:
    await say(slack, bot, "the invoice for Acme tomorrow")
    (question,) = await slack.wait_for(lambda: [p for p in slack.sent() if p.get("blocks")])
    values = slack.button_values(question)
    assert len(values) == 2 and all(v.startswith("choose:p") for v in values)
    click = slack.click(values[0].rsplit(":", 1)[0] + ":help", message=question)
    click["actions"][0]["action_id"] = "choose_0"
    assert (await slack.deliver(bot.url, click)).status == 200
    await slack.wait_for(lambda: [p for p in slack.sent() if "Solo OS — commands" in p["text"]])


async def test_an_audio_file_in_a_dm_becomes_an_intent(bot: Running, slack: FakeSlack) -> None:
    clip = Path(__file__).resolve().parents[1] / "data" / "voice" / "clip01.ogg"
    assert (await slack.deliver(bot.url, slack.audio_event(clip.read_bytes()))).status == 200
    await slack.wait_for(lambda: [p for p in slack.sent() if "transcribing" in p["text"]])
    (heard,) = await slack.wait_for(lambda: [p for p in slack.sent() if "I heard" in p["text"]])
    assert "logo" in heard["text"].lower()
