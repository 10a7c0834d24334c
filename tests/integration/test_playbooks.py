"""Playbooks on the durable scheduler, the clock pinned for the whole test: the same local time
across a DST change, once per occurrence; a long outage yields one catch-up run (or a skip);
a run with nothing to do costs no model call and says nothing; the action goes through the
gate; broken files are reported and never run; pause, resume, /run; two instances on one
database run each occurrence once."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from graph.cron import Cron
from graph.playbooks import load_playbooks
from tests.fakes.openai import FakeOpenAI
from tests.fakes.webhooks import WebhookReceiver

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = """description = "Monday check"
enabled = true
[trigger]
schedule = "every monday at 9:00"
[[steps]]
draft = "weekly check {date}"
[[steps]]
note = true
"""
DIGEST = """description = "notes digest to the crm"
enabled = true
[trigger]
cron = "0 8 * * *"
grace_hours = 336
[[steps]]
collect = ["notes"]
[[steps]]
only_if = "collected"
[[steps]]
draft = "New since {since}:\\n{items}"
[[steps]]
send = "crm"
"""


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BERLIN)


@pytest.fixture
async def app(clock: time_machine.Traveller, tmp_path: Path, database_url: str,
              receiver: WebhookReceiver, openai: FakeOpenAI,
              ) -> AsyncIterator[tuple[SoloApp, InMemoryAdapter, Path]]:
    folder = tmp_path / "data" / "playbooks"
    folder.mkdir(parents=True)
    solo = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data", "database_url": database_url},
        "operator": {"timezone": "Europe/Berlin"},
        "llm": {"model": "openai:gpt-test", "base_url": openai.base_url, "api_key": "sk-test"},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}}}))
    chat = InMemoryAdapter()
    await solo.add_adapter(chat, operators={"operator"})
    yield solo, chat, folder
    await solo.aclose()


async def tick(solo: SoloApp, clock: time_machine.Traveller, moment: datetime) -> None:
    clock.move_to(moment)
    await solo.deliver(await solo.jobs.scheduler.tick(moment))


async def summary_text(solo: SoloApp, chat: InMemoryAdapter, now: datetime) -> str:
    before = len(chat.sent)
    await solo.deliver(await solo.director.summary_for([("memory", "chat-1")], now=now))
    return chat.sent[before].text


def notes(folder: Path) -> list[str]:
    return sorted(p.read_text() for p in (folder.parent / "notes").glob("*.md"))


async def test_a_weekly_playbook_keeps_its_local_time_across_dst_and_runs_once(
        app, clock) -> None:
    solo, chat, folder = app
    (folder / "weekly.toml").write_text(WEEKLY)
    clock.move_to(at(2026, 10, 16, 12, 0))  # clocks go back on Sunday 25 October
    assert await solo.jobs.sync_playbooks() == []
    [job] = await solo.storage.jobs.scheduled("playbook")
    assert job.due_at.astimezone(BERLIN) == at(2026, 10, 19, 9, 0)
    await tick(solo, clock, at(2026, 10, 19, 8, 59))
    assert notes(folder) == []
    for minute in (0, 1, 2):  # due once, however often the loop looks
        await tick(solo, clock, at(2026, 10, 19, 9, minute))
    [job] = await solo.storage.jobs.scheduled("playbook")
    assert job.due_at.astimezone(BERLIN) == at(2026, 10, 26, 9, 0)  # 08:00 UTC, not 07:00
    await tick(solo, clock, at(2026, 10, 26, 9, 0))
    await tick(solo, clock, at(2026, 10, 26, 9, 5))
    written = notes(folder)
    assert len(written) == 2
    assert "weekly check 2026-10-19" in "".join(written)
    assert "weekly check 2026-10-26" in "".join(written)
    shown = (await chat.say("/playbook weekly"))[0].text
    assert "Run weekly@2026-10-26T09:00" in shown and "done" in shown and "receipt r" in shown


async def test_a_long_outage_yields_one_run_and_nothing_to_do_costs_nothing(
        app, clock, openai: FakeOpenAI, receiver: WebhookReceiver) -> None:
    solo, chat, folder = app
    (folder / "digest.toml").write_text(DIGEST)
    clock.move_to(at(2026, 11, 2, 10, 0))
    await solo.jobs.sync_playbooks()
    # Nothing new: the run ends quietly (no model call, nothing in chat), in the ledger.
    before = len(chat.sent)
    await tick(solo, clock, at(2026, 11, 3, 8, 0))
    assert chat.sent[before:] == [] and openai.requests == []
    [run] = await solo.storage.playbooks.runs("digest")
    assert run.status == "idle" and "nothing new since" in run.detail
    await chat.say("/note Acme wants the annual plan")
    # Down for nine days: one catch-up run when it comes back, not nine.
    await tick(solo, clock, at(2026, 11, 12, 14, 0))
    await tick(solo, clock, at(2026, 11, 12, 14, 1))
    runs = await solo.storage.playbooks.runs("digest")
    assert [r.status for r in runs] == ["started", "idle"]
    [card] = [s.card for s in chat.sent if s.kind == "card"]  # outside text: a tap first
    assert card.reason.startswith("playbook:digest asked:")
    assert receiver.posts == []
    await chat.press("approve", card.approval_id)
    await chat.press("approve", card.approval_id)
    [post] = receiver.posts
    assert post.status == 200 and post.body["text"].startswith("New since 2026-11-03 08:00 CET:")
    assert post.body["text"].endswith("\n- Acme wants the annual plan")
    [job] = await solo.storage.jobs.scheduled("playbook")
    assert job.due_at.astimezone(BERLIN) == at(2026, 11, 13, 8, 0)
    assert openai.requests == []  # the whole run was deterministic
    summary = await summary_text(solo, chat, at(2026, 11, 13, 7, 0))
    assert "Playbooks yesterday (1 run(s)):\n• digest: done (plan p" in summary
    assert ", receipt r" in summary


async def test_skip_policy_reports_and_does_not_run_late(app, clock) -> None:
    solo, chat, folder = app
    (folder / "weekly.toml").write_text(WEEKLY.replace(
        '[trigger]\n', '[trigger]\nmissed = "skip"\n'))
    clock.move_to(at(2026, 11, 1, 12, 0))
    await solo.jobs.sync_playbooks()
    await tick(solo, clock, at(2026, 11, 2, 15, 0))  # six hours late
    assert notes(folder) == []
    summary = await summary_text(solo, chat, at(2026, 11, 3, 7, 0))
    assert "• weekly: skipped — it was due 2026-11-02 08:00 UTC" in summary


async def test_commands_pause_resume_run_and_broken_files(app, clock) -> None:
    solo, chat, folder = app
    (folder / "weekly.toml").write_text(WEEKLY)
    (folder / "broken.toml").write_text('enabled = true\n[[steps]]\nsend = "crm"\nnote = true\n')
    (folder / "Bad Name.toml").write_text(WEEKLY)
    clock.move_to(at(2026, 11, 1, 12, 0))
    errors = await solo.jobs.sync_playbooks()
    assert any(e.startswith("broken.toml: steps.0") and "exactly one" in e for e in errors)
    assert any(e.startswith("Bad Name.toml:") for e in errors)
    listed = (await chat.say("/playbooks"))[0].text
    assert "weekly · every monday at 9:00 · next Mon 2026-11-02 09:00 CET" in listed
    assert "⚠ not loaded: broken.toml" in listed
    assert "Paused weekly" in (await chat.say("/pause weekly"))[0].text
    assert await solo.storage.jobs.scheduled("playbook") == []
    await solo.jobs.sync_playbooks()  # a restart, or a file edit, keeps it paused
    assert await solo.storage.jobs.scheduled("playbook") == []
    await tick(solo, clock, at(2026, 11, 2, 9, 0))
    assert notes(folder) == []
    resumed = (await chat.say("/resume weekly"))[0].text
    assert "next run Mon 2026-11-09 09:00 CET" in resumed
    assert "Running weekly now" in (await chat.say("/run weekly"))[0].text
    await tick(solo, clock, at(2026, 11, 2, 9, 30))
    assert len(notes(folder)) == 1
    assert "No playbook 'nope'" in (await chat.say("/run nope"))[0].text


def test_cron_reads_local_times_across_both_dst_changes() -> None:
    nightly = Cron.parse("30 2 * * *")
    spring = nightly.next_after(at(2027, 3, 27, 12, 0), BERLIN)
    assert spring.astimezone(BERLIN).strftime("%m-%d %H:%M") == "03-28 03:30"  # the gap
    autumn = nightly.next_after(at(2026, 10, 24, 12, 0), BERLIN)
    assert autumn == at(2026, 10, 25, 2, 30) and autumn.fold == 0
    again = nightly.next_after(autumn, BERLIN)  # the second 02:30 that night is not a run
    assert again.astimezone(BERLIN).strftime("%m-%d %H:%M") == "10-26 02:30"
    friday = Cron.parse("0 16 * * 5").next_after(at(2026, 11, 30, 0, 0), BERLIN)
    assert friday == at(2026, 12, 4, 16, 0)
    for bad in ("* * *", "61 * * * *", "0 9 * * mon", "5-1 * * * *"):
        with pytest.raises(ValueError, match="cron"):
            Cron.parse(bad)


def test_the_shipped_examples_load_and_are_off() -> None:
    playbooks, errors = load_playbooks(Path(__file__).parents[2] / "config" / "playbooks")
    assert errors == []
    assert sorted(p.name for p in playbooks) == ["inbox-digest", "weekly-review"]
    assert not any(p.spec.enabled for p in playbooks)


async def test_two_instances_on_one_database_run_each_occurrence_once(
        app, clock, tmp_path: Path, database_url: str) -> None:
    solo, _, folder = app
    (folder / "often.toml").write_text(
        'enabled = true\n[trigger]\ncron = "*/5 * * * *"\n'
        '[[steps]]\ndraft = "tick {date}"\n[[steps]]\nnote = true\n')
    other = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data", "database_url": database_url},
        "operator": {"timezone": "Europe/Berlin"}}))
    second = InMemoryAdapter()
    await other.add_adapter(second, operators={"operator"})
    try:
        start = at(2026, 11, 4, 10, 1)
        clock.move_to(start)
        await solo.jobs.sync_playbooks()
        await other.jobs.sync_playbooks()  # both read the same files: still one job
        for minute in range(0, 24 * 5 + 1):  # 24 occurrences, both looking every minute
            moment = start + timedelta(minutes=minute)
            clock.move_to(moment)
            first, later = (solo, other) if minute % 2 else (other, solo)
            await first.deliver(await first.jobs.scheduler.tick(moment))
            await later.deliver(await later.jobs.scheduler.tick(moment))
        runs = await solo.storage.playbooks.runs("often", limit=100)
        assert len(runs) == 24 and len({r.id for r in runs}) == 24
        assert len(notes(folder)) == 24
    finally:
        await other.aclose()


def playbook_plan(text: str = "") -> dict:
    """What the (scripted) model answers for a playbook sentence."""
    return {"intent": "playbook", "slots": {"text": text} if text else {}, "confidence": 0.9,
            "steps": []}


async def test_a_playbook_defined_in_chat_is_approved_saved_and_fires_after_a_restart(
        app, clock, tmp_path: Path, database_url: str, openai: FakeOpenAI) -> None:
    solo, chat, folder = app
    clock.move_to(at(2026, 11, 4, 10, 0))
    openai.script = [playbook_plan()]
    sent = await chat.say("every day at 8 write down the daily check")
    [card] = [s.card for s in sent if s.kind == "card"]
    assert card.diffs[0]["title"] == "Save playbook daily-check"
    shown = dict((name, after) for name, _, after in card.diffs[0]["fields"])["playbook"]
    assert 'cron = "0 8 * * *"' in shown and "note = true" in shown
    assert not (folder / "daily-check.toml").exists()  # nothing before the tap
    done = await chat.press("approve", card.approval_id)
    assert any("playbook daily-check saved" in s.text for s in done if s.kind == "message")
    await solo.aclose()
    again = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data", "database_url": database_url},
        "operator": {"timezone": "Europe/Berlin"}}))
    try:
        chat = InMemoryAdapter(_ids=itertools.count(100))  # new events, not re-deliveries
        await again.add_adapter(chat, operators={"operator"})
        await again.jobs.sync_playbooks()  # what `solo serve` does when it starts
        await tick(again, clock, at(2026, 11, 5, 8, 0))
        assert "Daily check (2026-11-05)" in "".join(notes(folder))
        # Said again from chat, it is a new version of the same playbook.
        sent = await chat.say("every day at 9 write down the daily check")
        [card] = [s.card for s in sent if s.kind == "card"]
        before = dict((n, b) for n, b, _ in card.diffs[0]["fields"])["playbook"]
        assert 'cron = "0 8 * * *"' in before
        await chat.press("approve", card.approval_id)
        await again.jobs.sync_playbooks()
        shown = (await chat.say("/playbook daily check"))[0].text
        assert shown.count("(seen ") == 2
    finally:
        await again.aclose()


async def test_plain_words_run_pause_and_show(app, clock, openai: FakeOpenAI) -> None:
    solo, chat, folder = app
    (folder / "friday-update.toml").write_text(WEEKLY)
    clock.move_to(at(2026, 11, 4, 10, 0))
    await solo.jobs.sync_playbooks()
    openai.script = [playbook_plan("friday update"), playbook_plan("friday update"),
                     playbook_plan("friday update"), playbook_plan(), playbook_plan()]
    assert "Paused friday-update" in (await chat.say("pause the friday update playbook"))[0].text
    assert "Resumed friday-update" in (await chat.say("resume the friday update"))[0].text
    assert "Running friday-update now" in (await chat.say("run the friday update playbook"))[0].text
    assert "friday-update ·" in (await chat.say("what playbooks do I have"))[0].text
    assert "There is no webhook named 'nowhere'" in (
        await chat.say("every day at 7 send the digest to the nowhere hook"))[0].text
