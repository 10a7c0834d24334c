"""Fuzzing what arrives from outside (hypothesis): Telegram updates posted to the webhook with the
right secret, Slack events and interactivity payloads correctly signed, raw mail, config files.
Whatever the shape: no crash, the platform's delivery acknowledged (so it does not retry for
ever), no effect, and the app still answers the operator afterwards."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.slack import SlackAdapter
from bot.adapters.telegram import TelegramAdapter
from bot.app import SoloApp
from bot.wiring import build_adapters
from config import ConfigError, Settings, load_settings
from connectors.mailbox import parse_mail
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.strategies import json_values

OPERATOR_TG, OPERATOR_SLACK = 111, "UOP"
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

texts = st.text(max_size=300) | st.sampled_from([
    "/send crm x", "/forget", "/call a.b {", "/approve", "/run", "\x00", "<b>", "💥" * 50,
    "/note", "/remind", "/email nobody"])


def tg_person(ids: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({"id": ids, "is_bot": st.booleans(),
                                  "first_name": st.text(max_size=10)})


tg_ids = st.sampled_from([OPERATOR_TG, 42]) | st.integers() | st.text(max_size=5) | st.none()
tg_message = st.fixed_dictionaries(
    {"message_id": st.integers(min_value=1, max_value=10**6) | json_values,
     "date": st.integers(min_value=0, max_value=2**31),
     "chat": st.fixed_dictionaries({"id": tg_ids, "type": st.sampled_from(
         ["private", "group", "supergroup", "channel"]) | st.text(max_size=8)}),
     "from": tg_person(tg_ids)},
    optional={"text": texts | json_values, "entities": json_values, "voice": json_values,
              "photo": json_values, "caption": st.text(max_size=50), "document": json_values})
tg_update = st.one_of(
    st.fixed_dictionaries({}, optional={
        "message": tg_message, "edited_message": tg_message, "channel_post": tg_message,
        "my_chat_member": json_values,
        "callback_query": st.fixed_dictionaries(
            {"id": st.text(max_size=8), "from": tg_person(tg_ids),
             "chat_instance": st.text(max_size=5),
             "data": st.text(max_size=80) | st.sampled_from(
                 ["approve:xxxxxxxx", "reject:abcd", "edit:", "choose:p1:help", "undo:r1"])},
            optional={"message": tg_message})}),
    json_values)


@pytest.fixture
async def telegram_bot(tmp_path: Path, receiver: WebhookReceiver
                       ) -> AsyncIterator[tuple[FakeTelegramServer, str]]:
    telegram = FakeTelegramServer()
    await telegram.start()
    app = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "telegram": {"token": telegram.token, "base_url": telegram.base_url,
                     "base_file_url": telegram.base_file_url, "operators": [OPERATOR_TG],
                     "mode": "webhook", "webhook_url": "https://solo.example.com/telegram",
                     "webhook_secret": "fuzz-secret", "port": 0},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}}}))
    (adapter,) = build_adapters(app.settings, timezone=app.timezone)
    assert isinstance(adapter, TelegramAdapter)
    await app.add_adapter(adapter)
    yield telegram, f"http://127.0.0.1:{adapter.bound_port}/telegram"
    await app.aclose()
    await telegram.stop()


update_ids = itertools.count(10_000)


@FUZZ
@given(update=tg_update)
async def test_any_telegram_update_is_acknowledged_and_causes_nothing(
        telegram_bot, receiver: WebhookReceiver, update: Any) -> None:
    _, url = telegram_bot
    if isinstance(update, dict):
        update = {**update, "update_id": next(update_ids)}  # each one new: none deduplicated
    async with aiohttp.ClientSession() as http:
        answer = await http.post(url, data=json.dumps(update), headers={
            "X-Telegram-Bot-Api-Secret-Token": "fuzz-secret",
            "Content-Type": "application/json"})
    assert answer.status == 200 if isinstance(update, dict) else answer.status < 500
    assert receiver.posts == []


async def test_after_the_fuzzing_telegram_still_answers(telegram_bot) -> None:
    telegram, url = telegram_bot
    update = {"update_id": 1, "message": {
        "message_id": 1, "date": 0, "chat": {"id": OPERATOR_TG, "type": "private"},
        "from": {"id": OPERATOR_TG, "is_bot": False, "first_name": "op"}, "text": "/status"}}
    junk = [{"update_id": 2, "message": {"chat": None}}, {"update_id": 3, "message": 7}]
    async with aiohttp.ClientSession() as http:
        for body in (*junk, update):
            answer = await http.post(url, data=json.dumps(body), headers={
                "X-Telegram-Bot-Api-Secret-Token": "fuzz-secret",
                "Content-Type": "application/json"})
            assert answer.status == 200
    await telegram.wait_for(lambda: any("Approvals waiting" in t for t in telegram.texts()))


@pytest.fixture
async def slack_bot(tmp_path: Path, receiver: WebhookReceiver
                    ) -> AsyncIterator[tuple[FakeSlack, str]]:
    slack = FakeSlack()
    await slack.start()
    app = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "slack": {"bot_token": slack.bot_token, "signing_secret": slack.signing_secret,
                  "base_url": slack.api_url, "port": 0, "operators": [OPERATOR_SLACK]},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}}}))
    (adapter,) = build_adapters(app.settings, timezone=app.timezone)
    assert isinstance(adapter, SlackAdapter)
    await app.add_adapter(adapter)
    yield slack, f"http://127.0.0.1:{adapter.bound_port}/slack/events"
    await app.aclose()
    await slack.stop()


slack_ids = st.sampled_from([OPERATOR_SLACK, "UBAD"]) | st.text(max_size=6) | json_values
slack_event = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "app_mention", "file_shared", "reaction_added"]) |
     st.text(max_size=10)},
    optional={"user": slack_ids, "text": texts | json_values, "channel": slack_ids,
              "channel_type": st.sampled_from(["im", "channel", "group"]) | json_values,
              "ts": st.text(max_size=20) | json_values, "thread_ts": json_values,
              "subtype": st.sampled_from(["file_share", "bot_message", "message_changed"]) |
              json_values, "files": json_values, "bot_id": json_values})
slack_action = st.fixed_dictionaries(
    {"type": st.sampled_from(["block_actions", "view_submission", "shortcut"]) |
     st.text(max_size=10)},
    optional={"user": st.fixed_dictionaries({"id": slack_ids}) | json_values,
              "actions": st.lists(st.fixed_dictionaries(
                  {"action_id": st.text(max_size=12) | json_values,
                   "value": st.text(max_size=60) | st.sampled_from(
                       ["approve:xxxxxxxx", "reject:abcd", "edit:x"]) | json_values}),
                  max_size=3) | json_values,
              "channel": json_values, "container": json_values, "message": json_values,
              "view": json_values, "response_url": st.text(max_size=30) | json_values})
event_ids = itertools.count(1)


@FUZZ
@given(event=slack_event, action=slack_action)
async def test_any_signed_slack_event_or_click_is_acknowledged_and_causes_nothing(
        slack_bot, receiver: WebhookReceiver, event: dict, action: dict) -> None:
    slack, url = slack_bot
    envelope = {"type": "event_callback", "team_id": "T1", "api_app_id": "A1",
                "event_id": f"EvFuzz{next(event_ids)}", "event_time": 0, "event": event}
    assert (await slack.deliver(url, envelope)).status == 200
    assert (await slack.deliver(url, action)).status == 200
    assert receiver.posts == []


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=3000) | st.builds(
    lambda headers, body: (headers + "\r\n\r\n" + body).encode("utf-8", "surrogatepass"),
    st.text(max_size=400), st.text(max_size=800)))
def test_any_raw_mail_parses_to_data(raw: bytes) -> None:
    mail = parse_mail(raw)
    assert isinstance(mail.subject, str) and isinstance(mail.text, str)
    assert isinstance(mail.from_addr, str) and all(isinstance(a, str) for a in mail.to)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400) | st.builds(
    lambda section, key, value: f"[{section}]\n{key} = {value}\n",
    st.sampled_from(["storage", "operator", "telegram", "slack", "llm", "policy", "console",
                     "connectors.webhooks.crm", "connectors.email", "budget", "nope"]),
    st.sampled_from(["data_dir", "timezone", "token", "port", "risk", "url", "model",
                     "daily_usd", "mode", "x"]),
    st.sampled_from(['"Mars/Olympus"', "-1", "99999999", '"http://"', "[1, 2]", "{}",
                     '"high"', "true", '""', "1e309"])))
def test_any_config_file_loads_or_says_what_is_wrong(tmp_path: Path, text: str) -> None:
    path = tmp_path / "solo.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_settings(path)
    except ConfigError as exc:
        assert str(exc)  # a message naming what is wrong, never a traceback
