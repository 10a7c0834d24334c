"""Reminders on the durable scheduler, with the clock pinned for the whole test (no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from graph.scheduler import Scheduler

BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BERLIN)


@pytest.fixture
def reminder_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings.model_validate({"storage": {"data_dir": tmp_path / "data",
                                                "database_url": database_url},
                                    "operator": {"timezone": "Europe/Berlin"}})


@pytest.fixture
async def app(clock: time_machine.Traveller,
              reminder_settings: Settings) -> AsyncIterator[tuple[SoloApp, InMemoryAdapter]]:
    solo = await SoloApp.open(reminder_settings)
    chat = InMemoryAdapter()
    await solo.add_adapter(chat, operators={"operator"})
    yield solo, chat
    await solo.aclose()


async def fired(solo: SoloApp, clock: time_machine.Traveller, moment: datetime) -> list[str]:
    """Move the clock to ``moment``, run the scheduler once and deliver what it fired."""
    clock.move_to(moment)
    replies = await solo.jobs.scheduler.tick(moment)
    await solo.deliver(replies)
    return [r.text for r in replies]


async def test_fires_once_at_the_local_time_across_a_dst_change(app, clock) -> None:
    solo, chat = app
    clock.move_to(at(2027, 3, 27, 12, 0))  # clocks go forward tonight
    reply = (await chat.say("/remind tomorrow at 9 call Alice"))[0].text
    assert "2027-03-28 09:00 CEST" in reply
    assert await fired(solo, clock, at(2027, 3, 28, 8, 59)) == []
    assert await fired(solo, clock, at(2027, 3, 28, 9, 0)) == ["⏰ Reminder: call Alice"]
    assert await fired(solo, clock, at(2027, 3, 28, 9, 1)) == []
    assert chat.texts()[-1] == "⏰ Reminder: call Alice"


async def test_weekly_reminders_keep_their_wall_clock_time(app, clock) -> None:
    solo, chat = app
    clock.move_to(at(2027, 3, 26, 12, 0))  # a Friday
    await chat.say("remind me every Saturday at 9 to plan the week")
    assert await fired(solo, clock, at(2027, 3, 27, 9, 0)) == ["⏰ Reminder: plan the week"]
    (job,) = await solo.storage.jobs.scheduled("reminder")
    assert job.due_at.astimezone(BERLIN).isoformat() == "2027-04-03T09:00:00+02:00"


async def test_missed_while_down_late_within_the_window_else_reported(app, clock) -> None:
    solo, chat = app
    clock.move_to(at(2026, 11, 23, 8, 0))
    await chat.say("/remind at 9 send the invoices")
    await chat.say("/remind at 10 call the printer")
    late = await fired(solo, clock, at(2026, 11, 23, 12, 0))  # nothing ran between 8 and 12
    assert [t.split(" (late")[0] for t in late] == ["⏰ Reminder: send the invoices",
                                                   "⏰ Reminder: call the printer"]
    assert all("late: it was due" in t for t in late)
    clock.move_to(at(2026, 11, 23, 12, 0))
    await chat.say("/remind at 13:00 water the plants")
    # 19 hours late: past the 12 h window
    skipped = await fired(solo, clock, at(2026, 11, 24, 8, 0))
    assert skipped == ['Missed while I was not running: reminder "water the plants" was due '
                       'Mon 2026-11-23 13:00 CET; too late to send now.']
    events = [e.decision for e in await solo.storage.audit.recent()]
    assert "job.skipped" in events and "job.ran" in events


async def test_reminders_survive_a_restart(clock: time_machine.Traveller,
                                           reminder_settings: Settings) -> None:
    solo = await SoloApp.open(reminder_settings)
    chat = InMemoryAdapter()
    await solo.add_adapter(chat, operators={"operator"})
    clock.move_to(at(2026, 11, 23, 8, 0))
    await chat.say("/remind at 9 stand up")
    await solo.aclose()
    solo = await SoloApp.open(reminder_settings)
    chat = InMemoryAdapter()
    await solo.add_adapter(chat, operators={"operator"})
    try:
        assert await fired(solo, clock, at(2026, 11, 23, 9, 0)) == ["⏰ Reminder: stand up"]
    finally:
        await solo.aclose()


async def test_two_schedulers_fire_a_due_job_once(app, clock) -> None:
    solo, chat = app
    clock.move_to(at(2026, 11, 23, 8, 0))
    await chat.say("/remind at 9 only once")
    other = Scheduler(storage=solo.storage, timezone=BERLIN)
    results = await asyncio.gather(solo.jobs.scheduler.tick(at(2026, 11, 23, 9, 0)),
                                   other.tick(at(2026, 11, 23, 9, 0)))
    assert sorted(len(r) for r in results) == [0, 1]


async def test_list_cancel_and_bad_input(app, clock) -> None:
    solo, chat = app
    clock.move_to(at(2026, 11, 23, 8, 0))
    set_reply = (await chat.say("/remind in 2 hours stretch"))[0].text
    assert set_reply.startswith("Done: reminder rem") and "— receipt r" in set_reply
    job_id = set_reply.split()[2]
    listed = (await chat.say("/reminders"))[0].text
    assert job_id in listed and "stretch" in listed
    assert (await chat.say(f"/reminders cancel {job_id}"))[0].text.startswith(
        f"Done: cancelled reminder {job_id} — receipt r")
    assert (await chat.say("/reminders"))[0].text == "No reminders are scheduled."
    assert "When should I remind you?" in (await chat.say("/remind call Bob"))[0].text
    assert "already passed" in (await chat.say("/remind 2020-01-01 10:00 old"))[0].text
    assert "no scheduled reminder" in (await chat.say("/reminders cancel nope"))[0].text
    assert await fired(solo, clock, at(2026, 11, 23, 10, 0) + timedelta(minutes=1)) == []
