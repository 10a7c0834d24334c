"""The daily summary for a seeded day: receipts, what waits (with working cards), failures,
budget, reminders, and what happened around downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from bot.adapters.memory import InMemoryAdapter
from tests.fakes.webhooks import WebhookReceiver

YESTERDAY = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


async def test_summary_of_a_seeded_day(clock: time_machine.Traveller, chat: InMemoryAdapter,
                                       receiver: WebhookReceiver) -> None:
    app = chat.app
    clock.move_to(YESTERDAY)
    await chat.say("/note call notes from the Acme kickoff")
    card = next(s.card for s in await chat.say("/send crm Invoice 42 is paid")
                if s.kind == "card")
    await chat.press("approve", card.approval_id)
    receiver.script = [400]
    failing = next(s.card for s in await chat.say("/send crm will be refused")
                   if s.kind == "card")
    await chat.press("approve", failing.approval_id)
    waiting = next(s.card for s in await chat.say("/send crm waits for you")
                   if s.kind == "card")
    await chat.say("/remind 2026-11-22 15:00 send the quarterly numbers")
    await chat.say("/remind 2026-11-21 11:00 missed one")
    # Nothing ran between 10:00 yesterday and this morning: that reminder is 21 h late.
    clock.move_to(MORNING - timedelta(minutes=1))
    await app.deliver(await app.jobs.scheduler.tick())
    await app.jobs.schedule_daily_summary()
    clock.move_to(MORNING)
    before = len(chat.sent)
    await app.deliver(await app.director.summary_for([("memory", "chat-1")], now=MORNING))
    sent = chat.sent[before:]
    text = sent[0].text
    print(text)
    assert text.startswith("Summary for Sun 22 Nov 2026 (UTC)")
    assert "Done yesterday (4):" in text  # the note, the post and the two reminders set
    assert text.count("reminder rem") == 2
    assert "note saved as" in text and 'posted to "crm" (HTTP 200) — receipt r' in text
    assert "Waiting for you (1): the cards follow." in text
    assert "Failed yesterday (1):" in text and "HTTP 400" in text
    assert "Budget: no model configured" in text
    assert "Reminders today (1): 15:00 send the quarterly numbers" in text
    assert "After downtime: 0 job(s) ran late, 1 skipped." in text
    cards = [s.card for s in sent if s.kind == "card"]
    assert [c.approval_id for c in cards] == [waiting.approval_id] and cards[0].pending
    # The re-posted card's buttons work.
    await chat.press("approve", waiting.approval_id)
    assert receiver.deliveries_of("waits for you") == 1


async def test_the_summary_job_is_scheduled_once_and_runs_daily(
        clock: time_machine.Traveller, chat: InMemoryAdapter) -> None:
    app = chat.app
    clock.move_to(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    await app.jobs.schedule_daily_summary()
    await app.jobs.schedule_daily_summary()
    job = await app.storage.jobs.get("daily-summary")
    assert job.due_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    clock.move_to(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    replies = await app.jobs.scheduler.tick(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert replies and replies[0].text.startswith("Summary for Mon 23 Nov 2026")
    assert (await app.storage.jobs.get("daily-summary")).due_at == \
        datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
