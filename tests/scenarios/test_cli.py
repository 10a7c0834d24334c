"""The ``solo`` command as a user runs it: real processes, piped stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.mailrig import MailRig
from tests.support.processes import solo, start_serve, stop, write_serve_config


def write_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[connectors.webhooks.crm]\nurl = "{url}"\n')
    return config


async def test_scripted_chat_session_ends_cleanly_at_eof(tmp_path: Path) -> None:
    script = "/help\n/note first note from a script\n\n/status\nhi\n"
    result = await solo("chat", stdin=script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Hi! I'm here." in result.stdout and "I'm not sure" not in result.stdout
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


@pytest.mark.parametrize("order", ["serve --config", "--config serve", "no config"])
async def test_serve_without_an_adapter_exits_nonzero_naming_the_settings(
        tmp_path: Path, order: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/")
    args = {"serve --config": ["serve", "--config", str(config)],
            "--config serve": ["--config", str(config), "serve"], "no config": ["serve"]}[order]
    result = await solo(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SOLO_TELEGRAM__TOKEN" in lines[0] and "SOLO_SLACK__BOT_TOKEN" in lines[0]


@pytest.mark.parametrize("config_first", [False, True], ids=["serve --config", "--config serve"])
async def test_serve_with_a_telegram_section_starts_polling(tmp_path: Path,
                                                            config_first: bool) -> None:
    telegram = FakeTelegramServer()
    await telegram.start()
    config = write_serve_config(tmp_path, telegram.config_section())
    proc = await start_serve(config, tmp_path / "serve.log", config_first=config_first)
    try:
        await telegram.wait_for(lambda: telegram.sent("getUpdates"))
        telegram.message("/note polled")
        await telegram.wait_for(lambda: [p for p in telegram.sent("sendMessage")
                                         if "receipt r" in p["text"]])
    finally:
        await stop(proc)
        await telegram.stop()


@pytest.mark.parametrize("command", ["chat", "doctor", "understand"])
async def test_config_is_accepted_before_and_after_every_subcommand(tmp_path: Path,
                                                                    command: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[operator]\ntimezone = "Nowhere/Land"\n')
    extra = ["hello"] if command == "understand" else []
    for args in ([command, *extra, "--config", str(config)],
                 ["--config", str(config), command, *extra]):
        result = await solo(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "unknown IANA timezone 'Nowhere/Land'" in result.stderr, args


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
        "note", "smalltalk", "status"]


async def test_doctor_says_what_works_and_what_to_fix(tmp_path: Path) -> None:
    good = await solo("doctor", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok  speech to text: Whisper base, weights verified" in good.stdout
    config = tmp_path / "bad.toml"
    config.write_text('[slack]\nbot_token = "xoxb-1"\n')
    bad = await solo("--config", str(config), "doctor", cwd=tmp_path)
    assert bad.returncode == 1
    assert 'FAIL chat adapters — [slack] mode = "http" needs signing_secret' in bad.stdout


async def test_the_data_directory_and_everything_in_it_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "notes").mkdir(parents=True)
    (data / "notes" / "old.md").write_text("written by an older version")
    for path, mode in ((data, 0o755), (data / "notes", 0o755), (data / "notes" / "old.md", 0o644)):
        path.chmod(mode)
    script = "/note private note\n/remember the door code is 4471\n/send nowhere hi\n"
    result = await solo("chat", stdin=script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = {p.relative_to(data).as_posix(): p.stat().st_mode & 0o777
            for p in [data, *data.rglob("*")]}
    assert {".", "solo.sqlite3", "checkpoints.sqlite3", "solo.log", "notes/old.md"} <= set(seen)
    assert any(name.startswith("notes/") and name != "notes/old.md" for name in seen)
    loose = {name: oct(mode) for name, mode in seen.items() if mode & 0o077}
    assert loose == {}
    assert seen["."] == 0o700


async def test_repairing_plans_in_the_console(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """/plans, /plan, /retry, /cancel and /undo in `solo chat`, as the operator types them."""
    config = str(write_config(tmp_path, receiver.url))
    receiver.script = [400]  # the target refuses until its owner fixes it
    first = await solo("--config", config, "chat", stdin="/send crm Invoice 7 is paid\na\n"
                       "/send crm wait for me\n/note call the printer\n/plans\n")
    assert first.returncode == 0, first.stderr
    assert "HTTP 400" in first.stdout
    listing = first.stdout.split("Plans (open first")[1].splitlines()
    failed = next(line for line in listing if line.endswith("/send crm Invoice 7 is paid"))
    waiting = next(line for line in listing if line.endswith("/send crm wait for me"))
    failed_id, waiting_id = failed.split(" · ")[0], waiting.split(" · ")[0]
    receipt = first.stdout.split("Done: note saved as")[1].split("receipt ")[1].split()[0]

    second = await solo("--config", config, "chat", stdin=(
        f"/plan {failed_id}\n/retry {failed_id}\n/cancel {waiting_id}\n/undo {receipt}\na\n"))
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert "high risk · failed · webhook:crm: HTTP 400" in out and f"/retry {failed_id}" in out
    assert 'Done: posted to "crm" (HTTP 200)' in out
    assert receiver.deliveries_of("Invoice 7 is paid") == 1
    assert len({p.key for p in receiver.posts}) == 1  # the retry went out under the same key
    assert f"Cancelled plan {waiting_id}" in out and receiver.deliveries_of("wait for me") == 0
    assert "Move a note to the trash" in out and "moved to the trash" in out
    assert not list((tmp_path / "data" / "notes").glob("*.md"))


async def test_doctor_checks_the_mail_and_calendar_logins(tmp_path: Path,
                                                          mail_rig: MailRig) -> None:
    user = mail_rig.add_user()
    config = tmp_path / "office.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n' +
                      mail_rig.email_section(user) + mail_rig.calendar_section(user))
    good = await solo("--config", str(config), "doctor", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok  email: logins work" in good.stdout
    assert "ok  calendar: logins work" in good.stdout
    assert "ok  email: last mail read: none yet" in good.stdout
    config.write_text(config.read_text().replace(f'password = "{mail_rig.users[user]}"',
                                                 'password = "wrong"'))
    bad = await solo("--config", str(config), "doctor", cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAIL email — IMAP: IMAP login refused" in bad.stdout
    assert "SMTP: login refused" in bad.stdout and "check [connectors.email]" in bad.stdout
    assert "FAIL calendar — CalDAV: login refused" in bad.stdout
