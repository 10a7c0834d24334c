"""MCP tool servers as connectors, against servers nobody here wrote (``mcp-server-time`` from
PyPI, ``@modelcontextprotocol/server-filesystem`` from npm) and our own SDK server for the cases
they lack: risk from config or trusted annotations, the allowlist enforced at dispatch, approval
before a write that then happens once, tool lists that follow the server, a server that hangs at
start-up, and a call whose outcome a crash made unknown."""

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


async def test_a_reference_filesystem_server_writes_once_after_approval(
        tmp_path: Path, filesystem_server: str) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "rates.txt").write_text("day rate 900 EUR\n")
    app, chat = await open_app(tmp_path, {"files": {
        "command": filesystem_server, "args": [str(files)], "trust_annotations": True,
        "timeout_seconds": 60}})
    try:
        listed = (await chat.say("/tools"))[0].text
        assert "files.read_text_file [low]" in listed and "files.write_file [high]" in listed
        read = await chat.say(f'/call files.read_text_file {{"path": "{files / "rates.txt"}"}}')
        assert not [s for s in read if s.kind == "card"]  # read-only, trusted: at once
        assert "day rate 900 EUR" in read[-1].text
        target = files / "invoice-42.txt"
        sent = await chat.say(f'/call files.write_file {{"path": "{target}", '
                              '"content": "invoice 42: paid"}')
        [card] = [s.card for s in sent if s.kind == "card"]
        assert card.risk == "high" and not target.exists()
        await chat.press("approve", card.approval_id)
        written = target.stat().st_mtime_ns
        await chat.press("approve", card.approval_id)  # a double tap writes nothing more
        assert target.read_text() == "invoice 42: paid"
        assert target.stat().st_mtime_ns == written
        assert await app.storage.outbox.count_by_status() == {"done": 2}
    finally:
        await app.aclose()


async def test_the_tool_list_follows_the_server_when_it_changes(tools) -> None:
    chat, app, _ = tools
    box = app.director.deps.connectors["mcp:box"].server
    assert "invoice_echo" not in box.tools
    sent = await chat.say('/call box.grow {"name": "invoice_echo"}')
    [card] = [s.card for s in sent if s.kind == "card"]
    await chat.press("approve", card.approval_id)
    await poll_until(lambda: "invoice_echo" in box.tools, timeout=60,
                     describe=lambda: f"box lists {sorted(box.tools)}")
    assert "box.invoice_echo [high]" in (await chat.say("/tools"))[0].text


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
    chat, app, ledger = tools
    sent = await chat.say('/call box.crash {"text": "once"}')
    [card] = [s.card for s in sent if s.kind == "card"]
    done = await chat.press("approve", card.approval_id)
    assert any("box.crash" in s.text for s in done if s.kind == "message"), done
    assert ledger.read_text() == "crash:once\n"
    # The operator's word on it: leave it. Nothing is tried again, and the ledger says who.
    plan = (await app.storage.plans.recent(1))[0].id[:8]
    assert "Usage: /retry" in (await chat.say(f"/retry {plan} maybe"))[0].text
    assert (await chat.say(f"/retry {plan} drop"))[0].text.startswith("Dropped")
    assert "no failed step" in (await chat.say(f"/retry {plan}"))[0].text
    assert "dropped" in (await chat.say(f"/plan {plan}"))[0].text
    assert any(e.decision == "step.dropped" and e.actor == "operator"
               for e in await app.storage.audit.recent())
    assert ledger.read_text() == "crash:once\n"
