"""The ``solo`` command as a user runs it: real processes, piped stdin."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]


async def solo(*args: str, stdin: str = "", env: dict | None = None, cwd: Path = ROOT,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``solo ARGS`` without blocking the loop (the fake servers live in it)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOLO_")}
    clean["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})}, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


def write_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[connectors.webhooks.crm]\nurl = "{url}"\n')
    return config


async def test_scripted_chat_session_ends_cleanly_at_eof(tmp_path: Path) -> None:
    script = "/help\n/note first note from a script\n\n/status\n"
    result = await solo("chat", stdin=script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Solo OS — commands:" in result.stdout
    assert "Done: note saved as" in result.stdout and "receipt r" in result.stdout
    assert "Actions: 1 done." in result.stdout
    # The embedded default: SQLite and notes in ./data, nothing else needed.
    assert (tmp_path / "data" / "solo.sqlite3").exists()
    assert len(list((tmp_path / "data" / "notes").glob("*.md"))) == 1


async def test_chat_lists_pending_approvals_on_start_and_old_cards_still_answer(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    config = str(write_config(tmp_path, receiver.url))
    first = await solo("--config", config, "chat", stdin="/send crm hello from yesterday\n")
    assert first.returncode == 0, first.stderr
    assert "[a]pprove / [r]eject" in first.stdout and receiver.posts == []
    approval_id = first.stdout.split("┌─ Approval ")[1].split()[0]

    second = await solo("--config", config, "chat", stdin=f"a {approval_id}\n")
    assert second.returncode == 0, second.stderr
    before, _, after = second.stdout.partition(f"Approval {approval_id}: Approved by console")
    assert f"┌─ Approval {approval_id}" in before  # re-surfaced before reading input
    assert "receipt r" in after or "receipt r" in second.stdout
    assert receiver.deliveries_of("hello from yesterday") == 1

    third = await solo("--config", config, "chat", stdin=f"a {approval_id}\n/approvals\n")
    assert "Already approved by console" in third.stdout
    assert "No approvals are waiting." in third.stdout
    assert receiver.deliveries_of("hello from yesterday") == 1


async def test_serve_without_an_adapter_exits_nonzero_naming_the_settings(tmp_path: Path) -> None:
    result = await solo("serve", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SOLO_TELEGRAM__TOKEN" in lines[0] and "SOLO_SLACK__BOT_TOKEN" in lines[0]


async def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[operator]\ntimezone = "Nowhere/Land"\n')
    result = await solo("--config", str(config), "chat")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "solo: invalid configuration: operator.timezone: Value error, "
        "unknown IANA timezone 'Nowhere/Land'")
    missing = await solo("chat", env={"SOLO_CONFIG": str(tmp_path / "none.toml")})
    assert missing.returncode == 2 and "config file not found" in missing.stderr


async def test_understand_prints_json_per_message() -> None:
    one = await solo("understand", "/send crm Invoice 42 is paid")
    assert json.loads(one.stdout) == {"intent": "send", "confidence": 1.0,
                                      "slots": {"webhook": "crm", "text": "Invoice 42 is paid"}}
    many = await solo("understand", "-", stdin="/note a\nhello\n/status\n")
    assert [json.loads(line)["intent"] for line in many.stdout.splitlines()] == [
        "note", "unknown", "status"]


async def test_doctor_says_what_works_and_what_to_fix(tmp_path: Path) -> None:
    good = await solo("doctor", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok  speech to text: Whisper base, weights verified" in good.stdout
    config = tmp_path / "bad.toml"
    config.write_text('[slack]\nbot_token = "xoxb-1"\n')
    bad = await solo("--config", str(config), "doctor", cwd=tmp_path)
    assert bad.returncode == 1
    assert 'FAIL chat adapters — [slack] mode = "http" needs signing_secret' in bad.stdout
