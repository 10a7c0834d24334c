"""The Telegram adapter: the real python-telegram-bot client against a fake Bot API server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.adapters.telegram import TelegramAdapter
from bot.app import SoloApp
from bot.wiring import build_adapters
from config import Settings
from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver

OPERATOR = 111
STRANGER = 666


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramServer]:
    server = FakeTelegramServer()
    await server.start()
    yield server
    await server.stop()


def telegram_settings(tmp_path: Path, server: FakeTelegramServer, receiver: WebhookReceiver,
                      **telegram: object) -> Settings:
    return Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "telegram": {"token": server.token, "base_url": server.base_url,
                     "base_file_url": server.base_file_url, "operators": [OPERATOR],
                     "poll_timeout_seconds": 1, **telegram},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}},
    })


async def open_app(settings: Settings) -> tuple[SoloApp, TelegramAdapter]:
    app = await SoloApp.open(settings)
    (adapter,) = build_adapters(settings, timezone=app.timezone)
    adapter._typing_after = 0.2
    await app.add_adapter(adapter)
    return app, adapter


@pytest.fixture
async def bot(tmp_path: Path, telegram: FakeTelegramServer,
              receiver: WebhookReceiver) -> AsyncIterator[TelegramAdapter]:
    app, adapter = await open_app(telegram_settings(tmp_path, telegram, receiver))
    adapter.app = app
    yield adapter
    await app.aclose()


async def reply_to(server: FakeTelegramServer, before: int, *, chat: int = OPERATOR,
                   contains: str = "") -> dict:
    """The first message sent to ``chat`` after ``before`` calls that contains ``contains``."""
    def found():
        for call in server.calls[before:]:
            if call.method == "sendMessage" and str(call.params["chat_id"]) == str(chat) \
                    and contains in call.params["text"]:
                return call.params
        return None
    return await server.wait_for(found)


async def card_for(server: FakeTelegramServer, text: str) -> tuple[dict, str]:
    before = len(server.calls)
    server.message(f"/send crm {text}")
    card = await reply_to(server, before, contains="Approval ")
    approve, reject, edit = server.card_buttons(card)
    assert edit.startswith("edit:")
    assert approve.startswith("approve:") and reject.startswith("reject:")
    assert len(approve.encode()) <= 64
    return card, approve.split(":")[1]


async def test_start_registers_commands_and_polls(bot: TelegramAdapter,
                                                  telegram: FakeTelegramServer) -> None:
    commands = telegram.sent("setMyCommands")[0]["commands"]
    assert {c["command"] for c in commands} >= {"note", "send", "approvals", "audit", "status"}
    assert telegram.sent("deleteWebhook")


async def test_note_is_saved_and_the_update_acknowledged(bot: TelegramAdapter,
                                                         telegram: FakeTelegramServer) -> None:
    update = telegram.message("/note pricing call went well")
    reply = await reply_to(telegram, 0, contains="Done: note saved")
    assert "receipt r" in reply["text"]
    await telegram.wait_for(lambda: update not in telegram.pending_updates())


async def test_send_card_approve_posts_once_and_edits_the_card(
        bot: TelegramAdapter, telegram: FakeTelegramServer, receiver: WebhookReceiver) -> None:
    card, approval_id = await card_for(telegram, "Invoice 42 is paid")
    assert card["parse_mode"] == "HTML" and "POST to webhook" in card["text"]
    assert receiver.posts == []
    press = telegram.press(f"approve:{approval_id}", message_id=card["message_id"])
    await telegram.wait_for(lambda: telegram.sent("editMessageText"))
    assert telegram.sent("answerCallbackQuery")
    assert len(receiver.posts) == 1 and receiver.posts[0].key.startswith("solo-")
    edit = telegram.sent("editMessageText")[0]
    assert edit["message_id"] == card["message_id"] and "reply_markup" not in edit
    assert "Approved by 111" in edit["text"] and "receipt r" in edit["text"]
    done = await reply_to(telegram, 0, contains="Done: posted")
    assert done["text"].split("receipt ")[1] in edit["text"]
    await telegram.wait_for(lambda: press not in telegram.pending_updates())


async def test_reject_never_posts(bot: TelegramAdapter, telegram: FakeTelegramServer,
                                  receiver: WebhookReceiver) -> None:
    card, approval_id = await card_for(telegram, "do not send")
    telegram.press(f"reject:{approval_id}", message_id=card["message_id"])
    edit = await telegram.wait_for(lambda: telegram.sent("editMessageText"))
    assert "Rejected by 111" in edit[0]["text"] and "nothing was sent" in edit[0]["text"]
    assert receiver.posts == []


async def test_double_press_posts_once_and_says_so(bot: TelegramAdapter,
                                                   telegram: FakeTelegramServer,
                                                   receiver: WebhookReceiver) -> None:
    card, approval_id = await card_for(telegram, "only once")
    before = len(telegram.calls)
    telegram.press(f"approve:{approval_id}", message_id=card["message_id"])
    telegram.press(f"approve:{approval_id}", message_id=card["message_id"])
    await reply_to(telegram, before, contains="Already approved by 111")
    await telegram.wait_for(lambda: len(telegram.sent("answerCallbackQuery")) == 2)
    assert receiver.deliveries_of("only once") == 1 and len(receiver.posts) == 1


async def test_strangers_get_one_refusal_and_their_presses_do_nothing(
        bot: TelegramAdapter, telegram: FakeTelegramServer, receiver: WebhookReceiver) -> None:
    card, approval_id = await card_for(telegram, "operators only")
    telegram.message("/note hi", user=STRANGER)
    telegram.message("/note hi again", user=STRANGER)
    telegram.press(f"approve:{approval_id}", message_id=card["message_id"], user=STRANGER,
                   chat=OPERATOR)
    await telegram.wait_for(lambda: len(telegram.sent("answerCallbackQuery")) == 1)
    await telegram.wait_for(lambda: not telegram.pending_updates())
    await asyncio.sleep(0.3)
    assert telegram.texts(STRANGER) == ["Sorry, this assistant only works for its operators."]
    assert receiver.posts == []
    refused = [e for e in await bot.app.storage.audit.recent() if e.decision == "refused"]
    assert [e.actor for e in refused] == [str(STRANGER)] * 3


async def test_a_redelivered_update_is_processed_once(bot: TelegramAdapter,
                                                      telegram: FakeTelegramServer,
                                                      tmp_path: Path) -> None:
    message = {"message_id": 5, "date": 0, "chat": {"id": OPERATOR, "type": "private"},
               "from": {"id": OPERATOR, "is_bot": False, "first_name": "op"},
               "text": "/note once", "entities": [
                   {"type": "bot_command", "offset": 0, "length": 5}]}
    telegram.push({"update_id": 77, "message": message})
    await reply_to(telegram, 0, contains="Done")
    telegram.push({"update_id": 77, "message": message})  # as after a crash before the ack
    telegram.message("/status")
    await reply_to(telegram, 0, contains="Actions:")
    assert len([t for t in telegram.texts() if t.startswith("Done")]) == 1
    assert len(list((tmp_path / "data" / "notes").glob("*.md"))) == 1


async def test_429_is_waited_out_then_delivered(bot: TelegramAdapter,
                                                telegram: FakeTelegramServer) -> None:
    telegram.failures["sendMessage"] = [{"error_code": 429, "retry_after": 1}]
    telegram.message("/help")
    await telegram.wait_for(lambda: len(telegram.sent("sendMessage")) == 2)
    attempts = [c for c in telegram.calls if c.method == "sendMessage"]
    assert attempts[0].params["text"] == attempts[1].params["text"]
    assert attempts[1].at - attempts[0].at >= 1.0


async def test_a_5000_character_reply_is_split(bot: TelegramAdapter,
                                               telegram: FakeTelegramServer) -> None:
    name = "x" * 5000
    telegram.message(f"/{name}")
    await telegram.wait_for(lambda: len(telegram.texts()) == 2)
    first, second = telegram.texts()
    assert len(first) <= 4096 and len(second) <= 4096
    assert first + second == f"Unknown command /{name}. Try /help."


async def test_special_characters_in_a_diff_are_escaped(bot: TelegramAdapter,
                                                        telegram: FakeTelegramServer) -> None:
    card, _ = await card_for(telegram, '<b>bold</b> & "quotes" <script>')
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in card["text"]
    assert "<script>" not in card["text"] and "&lt;script&gt;" in card["text"]


async def test_long_content_is_truncated_with_a_note(bot: TelegramAdapter,
                                                     telegram: FakeTelegramServer) -> None:
    card, _ = await card_for(telegram, "y" * 6000)
    assert len(card["text"]) <= 4096 and "more characters not shown" in card["text"]


async def test_groups_answer_only_when_mentioned(bot: TelegramAdapter,
                                                 telegram: FakeTelegramServer) -> None:
    telegram.message("/note not for the bot", chat=-100, chat_type="group")
    telegram.message("@solo_test_bot /note for the bot", chat=-100, chat_type="group")
    reply = await reply_to(telegram, 0, chat=-100, contains="Done")
    assert "for-the-bot" in reply["text"]
    assert len(telegram.texts(-100)) == 1


async def test_typing_shows_while_a_plan_runs(bot: TelegramAdapter,
                                              telegram: FakeTelegramServer,
                                              receiver: WebhookReceiver) -> None:
    card, approval_id = await card_for(telegram, "slow target")
    receiver.delay = 1.0
    telegram.press(f"approve:{approval_id}", message_id=card["message_id"])
    await telegram.wait_for(lambda: telegram.sent("editMessageText"))
    actions = telegram.sent("sendChatAction")
    assert actions and actions[0]["action"] == "typing"


async def test_voice_notes_are_downloaded_and_answered(bot: TelegramAdapter,
                                                       telegram: FakeTelegramServer) -> None:
    telegram.voice(b"OggS fake opus bytes")
    reply = await reply_to(telegram, 0, contains="voice note")
    assert "could not use that voice note" in reply["text"]
    assert await bot.download_file("voice-0") == b"OggS fake opus bytes"


async def test_malformed_updates_are_skipped(bot: TelegramAdapter,
                                             telegram: FakeTelegramServer) -> None:
    telegram.push({"message": {"message_id": "not a number", "chat": "nope"}})
    telegram.push({"callback_query": {"id": "x", "data": "approve:zzzzzzzz"}})
    telegram.message("/status")
    await reply_to(telegram, 0, contains="Approvals waiting")
    await telegram.wait_for(lambda: not telegram.pending_updates())


async def test_queued_replies_survive_a_restart(tmp_path: Path, telegram: FakeTelegramServer,
                                                receiver: WebhookReceiver) -> None:
    settings = telegram_settings(tmp_path, telegram, receiver)
    app, _ = await open_app(settings)
    telegram.failures["sendMessage"] = [{"error_code": 502}] * 1000
    telegram.message("/note kept while Telegram is down")
    await telegram.wait_for(lambda: telegram.sent("sendMessage"))
    await app.aclose(drain_seconds=0.2)
    telegram.failures.clear()
    app = await SoloApp.open(settings)
    try:
        assert await app.storage.deliveries.count_pending() == 1
        (adapter,) = build_adapters(settings, timezone=app.timezone)
        await app.add_adapter(adapter)
        reply = await reply_to(telegram, 0, contains="Done: note saved")
        assert "receipt r" in reply["text"]
    finally:
        await app.aclose()


async def test_webhook_mode_checks_the_secret(tmp_path: Path, telegram: FakeTelegramServer,
                                              receiver: WebhookReceiver) -> None:
    settings = telegram_settings(tmp_path, telegram, receiver, mode="webhook",
                                 webhook_url="https://solo.example.com/telegram",
                                 webhook_secret="s3cret", port=0)
    app, adapter = await open_app(settings)
    try:
        assert telegram.webhook["url"] == "https://solo.example.com/telegram"
        assert telegram.webhook["secret_token"] == "s3cret"
        url = f"http://127.0.0.1:{adapter.bound_port}/telegram"
        update = {"update_id": 1, "message": {
            "message_id": 1, "date": 0, "chat": {"id": OPERATOR, "type": "private"},
            "from": {"id": OPERATOR, "is_bot": False, "first_name": "op"}, "text": "/status"}}
        async with aiohttp.ClientSession() as http:
            bad = await http.post(url, json=update,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
            assert bad.status == 401
            health = await http.get(url.replace("/telegram", "/healthz"))
            assert await health.json() == {"ok": True, "refused": 1,  # someone is knocking
                                           "last_event_seconds": None}
            garbage = await http.post(url, data=b"{not json",
                                      headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"})
            assert garbage.status == 400
            good = await http.post(url, data=json.dumps(update),
                                   headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret",
                                            "Content-Type": "application/json"})
            assert good.status == 200
        await reply_to(telegram, 0, contains="Approvals waiting")
    finally:
        await app.aclose()
    assert telegram.webhook == {}


async def test_unsure_questions_come_with_buttons(bot: TelegramAdapter,
                                                  telegram: FakeTelegramServer) -> None:
    telegram.message("the invoice for Acme tomorrow")
    question = await reply_to(telegram, 0, contains="not sure")
    buttons = telegram.card_buttons(question)
    assert len(buttons) == 2 and all(b.startswith("choose:p") for b in buttons)
    assert all(len(b.encode()) <= 64 for b in buttons)
    help_button = buttons[0].rsplit(":", 1)[0] + ":help"
    telegram.press(help_button, message_id=question["message_id"])
    await reply_to(telegram, 0, contains="Solo OS — commands")


VOICE = Path(__file__).resolve().parents[1] / "data" / "voice"


async def test_a_voice_note_becomes_an_intent(bot: TelegramAdapter,
                                              telegram: FakeTelegramServer,
                                              tmp_path: Path) -> None:
    telegram.voice((VOICE / "clip01.ogg").read_bytes())  # "note the client loved the new logo"
    await reply_to(telegram, 0, contains="transcribing")
    heard = await reply_to(telegram, 0, contains="I heard")
    assert "client loved the new logo" in heard["text"].lower()
    assert "understood as note" in heard["text"]
    texts = await telegram.wait_for(lambda: [t for t in telegram.texts()
                                             if t.startswith("Done: note saved")
                                             or "Approval " in t])
    assert texts  # confident notes run at once; otherwise a card waits for a tap
    events = await bot.app.storage.audit.recent()
    assert any(e.decision == "voice.transcribed" and "logo" in e.detail["summary"]
               for e in events)


async def test_a_voice_note_never_sends_without_the_card(
        bot: TelegramAdapter, telegram: FakeTelegramServer, receiver: WebhookReceiver) -> None:
    telegram.voice((VOICE / "clip04.ogg").read_bytes())  # "send the crm hook that invoice 42…"
    card = await reply_to(telegram, 0, contains="Approval ")
    assert telegram.card_buttons(card)[0].startswith("approve:")
    assert receiver.posts == []


async def test_a_forwarded_voice_note_is_information_not_an_order(
        bot: TelegramAdapter, telegram: FakeTelegramServer, tmp_path: Path) -> None:
    # Spoken by the operator this recording is a sure note (transcript 0.67, intent 0.99) and
    # is saved at once; passed on from someone else it only makes a card.
    telegram.voice((VOICE / "clip01.ogg").read_bytes(), forwarded_from=222)
    heard = await reply_to(telegram, 0, contains="I heard (forwarded)")
    assert "client loved the new logo" in heard["text"].lower()
    card = await reply_to(telegram, 0, contains="Approval ")
    assert telegram.card_buttons(card)[0].startswith("approve:")
    assert not any(t.startswith("Done: note saved") for t in telegram.texts())
    assert not (tmp_path / "data" / "notes").exists()


@pytest.mark.parametrize(("confidence", "forwarded"), [(0.6, None), (1.0, 222)])
async def test_a_model_planned_step_from_an_unsure_or_forwarded_voice_note_waits_for_a_tap(
        tmp_path: Path, telegram: FakeTelegramServer, receiver: WebhookReceiver,
        confidence: float, forwarded: int | None) -> None:
    from tests.fakes.openai import FakeOpenAI

    # The transcript first (0.9 sure), then the model's plan: one step, understood at 0.6
    # (unsure), or at 1.0 from a note someone else recorded. Memory is empty, so nothing else
    # makes the step wait.
    model = FakeOpenAI(script=["note that the framer wants half upfront", {
        "intent": "note", "slots": {}, "confidence": confidence,
        "steps": [{"action": "note.create", "text": "the framer wants half upfront"}]}])
    await model.start()
    base = telegram_settings(tmp_path, telegram, receiver)
    settings = base.model_copy(update={
        "voice": base.voice.model_copy(update={"model": "openai:whisper-1",
                                               "base_url": model.base_url}),
        "llm": base.llm.model_copy(update={"model": "openai:gpt-test", "base_url": model.base_url,
                                           "api_key": SecretStr("sk-test")})})
    app, _ = await open_app(settings)
    try:
        telegram.voice((VOICE / "clip13.ogg").read_bytes(), forwarded_from=forwarded)
        card = await reply_to(telegram, 0, contains="Approval ")
        assert telegram.card_buttons(card)[0].startswith("approve:")
        assert not (tmp_path / "data" / "notes").exists()
    finally:
        await app.aclose()
        await model.stop()


async def test_malformed_audio_gets_a_clear_error_and_nothing_else(
        bot: TelegramAdapter, telegram: FakeTelegramServer, tmp_path: Path) -> None:
    telegram.voice(b"this is not an ogg file at all")
    reply = await reply_to(telegram, 0, contains="could not use that voice note")
    assert "Nothing was done" in reply["text"]
    assert not (tmp_path / "data" / "notes").exists()


async def test_a_voice_note_through_an_openai_compatible_transcription_endpoint(
        tmp_path: Path, telegram: FakeTelegramServer, receiver: WebhookReceiver) -> None:
    from tests.fakes.openai import FakeOpenAI

    cloud = FakeOpenAI(script=["note the invoice template needs the new address"])
    await cloud.start()
    settings = telegram_settings(tmp_path, telegram, receiver).model_copy(update={
        "voice": telegram_settings(tmp_path, telegram, receiver).voice.model_copy(update={
            "model": "openai:whisper-1", "base_url": cloud.base_url})})
    app, _ = await open_app(settings)
    try:
        telegram.voice((VOICE / "clip13.ogg").read_bytes())
        heard = await reply_to(telegram, 0, contains="I heard")
        assert "invoice template needs the new address" in heard["text"]
        assert cloud.requests[0]["model"] == "whisper-1" and cloud.requests[0]["audio_bytes"]
    finally:
        await app.aclose()
        await cloud.stop()
