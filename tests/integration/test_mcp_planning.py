"""MCP tools in the model's plans: the planning call shows the model only the few allowed tools
the message needs (the tool search), a step the model plans is gated like a ``/call``, and a tool
the operator excluded is refused even when a model asks for it by name. Real tool servers
(``mcp-server-time`` and our own), the real OpenAI client against a scripted model server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from tests.fakes.openai import FakeOpenAI

TIME = {"command": sys.executable, "trust_annotations": True,
        "args": ["-m", "mcp_server_time", "--local-timezone", "Europe/Berlin"]}


def plan(*steps: dict) -> dict:
    return {"intent": "tools", "slots": {}, "confidence": 0.9, "steps": list(steps)}


def call(tool: str, **arguments: object) -> dict:
    return {"action": "mcp.call", "tool": tool, "arguments": arguments}


@pytest.fixture
async def planner(tmp_path: Path, openai: FakeOpenAI) -> AsyncIterator[
        tuple[InMemoryAdapter, SoloApp, Path]]:
    ledger = tmp_path / "ledger.txt"
    app = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "llm": {"model": "openai:gpt-test", "base_url": openai.base_url, "api_key": "sk-test",
                "timeout_seconds": 5.0},
        "connectors": {"mcp": {
            "time": TIME,
            "box": {"command": sys.executable, "exclude": ["crash"], "timeout_seconds": 30,
                    "args": ["-m", "tests.support.mcp_test_server", str(ledger)]}}}}))
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    for name in ("mcp:time", "mcp:box"):
        assert await app.director.deps.connectors[name].server.ready(within=60)
    yield chat, app, ledger
    await app.aclose()


def shown_tools(openai: FakeOpenAI) -> str:
    return openai.requests[-1]["messages"][0]["content"]


async def test_the_planner_is_shown_the_tools_the_message_needs_and_runs_a_safe_one(
        planner, openai: FakeOpenAI) -> None:
    chat, _, _ = planner
    openai.script = [plan(call("time.get_current_time", timezone="Asia/Tokyo"))]
    sent = await chat.say("what time is it in Tokyo right now?")
    prompt = shown_tools(openai)
    assert '"name":"time.get_current_time"' in prompt
    assert prompt.count('"input_schema"') == 5  # every allowed tool (the search keeps five)
    assert "box.crash" not in prompt  # excluded: never shown
    assert not [s for s in sent if s.kind == "card"]  # a trusted read-only tool: at once
    assert "Asia/Tokyo" in sent[-1].text and "receipt r" in sent[-1].text


async def test_a_write_the_model_plans_waits_for_approval_then_happens_once(
        planner, openai: FakeOpenAI) -> None:
    chat, _, ledger = planner
    openai.script = [plan(call("box.append_line", text="invoice 42 paid"))]
    sent = await chat.say("put invoice 42 paid in the ledger")
    assert '"name":"box.append_line"' in shown_tools(openai)
    [card] = [s.card for s in sent if s.kind == "card"]
    assert card.risk == "high" and card.diffs[0]["title"] == "Call box.append_line"
    assert not ledger.exists()
    await chat.press("approve", card.approval_id)
    await chat.press("approve", card.approval_id)
    assert ledger.read_text() == "invoice 42 paid\n"


async def test_an_excluded_tool_is_refused_when_a_model_asks_for_it(
        planner, openai: FakeOpenAI) -> None:
    chat, app, ledger = planner
    openai.script = [plan(call("box.crash", text="boom"))]
    sent = await chat.say("use box.crash with boom")
    assert "box.crash" not in shown_tools(openai)  # even named, an excluded tool is not shown
    assert not [s for s in sent if s.kind == "card"]
    assert "box.crash is not allowed" in sent[-1].text
    assert not ledger.exists()
    assert await app.storage.outbox.count_by_status() == {}
