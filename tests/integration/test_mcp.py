"""MCP tool servers as connectors, against servers nobody here wrote (``mcp-server-time`` from
PyPI) and our own SDK server for the cases they lack: risk from config or trusted annotations,
the allowlist enforced at dispatch, approval before a write that then happens once, a server
that hangs at start-up, and a call whose outcome a crash made unknown."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from tests.support.waiting import poll_until

TIME = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone",
                                            "Europe/Berlin"]}


def ours(ledger: Path, *extra: str) -> dict:
    return {"command": sys.executable, "args": ["-m", "tests.support.mcp_test_server",
                                                str(ledger), *extra]}


async def open_app(tmp_path: Path, servers: dict) -> tuple[SoloApp, InMemoryAdapter]:
    settings = Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "connectors": {"mcp": servers}})
    app = await SoloApp.open(settings)
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    return app, chat


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[tuple[InMemoryAdapter, SoloApp, Path]]:
    ledger = tmp_path / "ledger.txt"
    app, chat = await open_app(tmp_path, {
        "time": {**TIME, "trust_annotations": True, "exclude": ["convert_time"]},
        "box": {**ours(ledger), "risk": {"slow_echo": "low"}, "timeout_seconds": 20}})
    yield chat, app, ledger
    await app.aclose()


async def test_tools_are_listed_with_their_risk(tools) -> None:
    chat, _, _ = tools
    listed = (await chat.say("/tools"))[0].text
    assert "time (ok)" in listed and "time.get_current_time [low]" in listed
    assert "convert_time" not in listed  # excluded: not even shown
    assert "box.append_line [high]" in listed and "box.slow_echo [low]" in listed


async def test_a_trusted_read_only_tool_runs_at_once(tools) -> None:
    chat, _, _ = tools
    sent = await chat.say('/call time.get_current_time {"timezone": "Asia/Tokyo"}')
    assert not [s for s in sent if s.kind == "card"]
    done = next(s.text for s in sent if s.kind == "message")
    assert "Asia/Tokyo" in done and "receipt r" in done


async def test_an_excluded_tool_cannot_be_called_by_any_path(tools) -> None:
    chat, app, _ = tools
    sent = await chat.say('/call time.convert_time {"source_timezone": "UTC", "time": "10:00", '
                          '"target_timezone": "Asia/Tokyo"}')
    assert not [s for s in sent if s.kind == "card"]
    assert "convert_time is not allowed" in sent[-1].text
    assert await app.director.storage.outbox.count_by_status() == {}


async def test_a_write_waits_for_approval_then_happens_once(tools) -> None:
    chat, _, ledger = tools
    sent = await chat.say('/call box.append_line {"text": "invoice 42 paid"}')
    [card] = [s.card for s in sent if s.kind == "card"]
    fields = {name: after for name, _, after in card.diffs[0]["fields"]}
    assert card.diffs[0]["title"] == "Call box.append_line" and card.risk == "high"
    assert fields["text"] == '"invoice 42 paid"' and "Append a line" in fields["does"]
    assert not ledger.exists()
    await chat.press("approve", card.approval_id)
    await chat.press("approve", card.approval_id)  # a double tap calls nothing more
    assert ledger.read_text() == "invoice 42 paid\n"


async def test_bad_calls_get_clear_answers(tools) -> None:
    chat, _, _ = tools
    assert "Usage: /call" in (await chat.say("/call box.append_line {not json"))[0].text
    assert "has no tool 'nope'" in (await chat.say("/call box.nope"))[-1].text
    assert "needs text" in (await chat.say("/call box.append_line {}"))[-1].text
    assert "No tool server named 'nah'" in (await chat.say("/call nah.x"))[-1].text


async def test_a_server_that_hangs_does_not_hold_up_the_others(tmp_path: Path) -> None:
    app, chat = await open_app(tmp_path, {
        "stuck": {**ours(tmp_path / "l.txt", "--hang"), "timeout_seconds": 2},
        "time": {**TIME, "trust_annotations": True}})
    try:
        sent = await chat.say('/call time.get_current_time {"timezone": "UTC"}')
        assert "receipt r" in sent[-1].text
        stuck = app.director.deps.connectors["mcp:stuck"].server
        await poll_until(lambda: stuck.state == "down", timeout=60,
                         describe=lambda: f"stuck is {stuck.state}")
        listed = (await chat.say("/tools"))[0].text
        assert "stuck (down: no answer to initialize in time)" in listed
        refused = await chat.say('/call stuck.append_line {"text": "x"}')
        assert "not available" in refused[-1].text
        status = (await chat.say("/status"))[0].text
        assert "mcp:stuck: not answering, retrying (no answer to initialize in time)" in status
    finally:
        await app.aclose()


async def test_a_call_cut_short_by_a_dying_server_is_not_repeated(tools) -> None:
    chat, _, ledger = tools
    sent = await chat.say('/call box.crash {"text": "once"}')
    [card] = [s.card for s in sent if s.kind == "card"]
    done = await chat.press("approve", card.approval_id)
    assert any("box.crash" in s.text for s in done if s.kind == "message"), done
    assert ledger.read_text() == "crash:once\n"
