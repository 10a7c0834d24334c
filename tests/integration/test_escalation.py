"""The escalation ladder and quiet hours, with the clock pinned for the whole test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from tests.conftest import CLOCK_START
from tests.fakes.webhooks import WebhookReceiver

T0 = CLOCK_START


async def open_app(tmp_path: Path, receiver: WebhookReceiver, **schedule: object):
    settings = Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data"},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}},
        "policy": {"approval_ttl_minutes": 180},
        "schedule": {"escalate_after_minutes": 60, **schedule}})
    app = await SoloApp.open(settings)
    telegram, slack = InMemoryAdapter(name="telegram"), InMemoryAdapter(name="slack")
    await app.add_adapter(telegram, operators={"op"})
    await app.add_adapter(slack, operators={"op"})
    return app, telegram, slack


async def test_an_unanswered_card_climbs_the_ladder_and_expires_unexecuted(
        clock: time_machine.Traveller, tmp_path: Path, receiver: WebhookReceiver) -> None:
    app, telegram, slack = await open_app(tmp_path, receiver)

    async def escalate_at(minutes: int) -> None:
        clock.move_to(T0 + timedelta(minutes=minutes))
        await app.jobs.escalate(T0 + timedelta(minutes=minutes))

    try:
        card = next(s.card for s in await telegram.say("/send crm nobody answers",
                                                       actor="op", chat="op")
                    if s.kind == "card")
        before = len(telegram.sent)
        await escalate_at(59)
        assert len(telegram.sent) == before and not slack.sent
        await escalate_at(60)
        reminder = telegram.sent[before:]
        assert [s.kind for s in reminder] == ["message", "card"]
        assert reminder[0].text.startswith("Still waiting for your decision")
        assert reminder[1].card.approval_id == card.approval_id and not slack.sent
        await escalate_at(90)  # the same rung is not taken twice
        assert len(telegram.sent) == before + 2
        await escalate_at(120)
        assert [s.kind for s in slack.sent] == ["message", "card"]
        assert slack.sent[0].chat == "op||op"
        await escalate_at(181)
        late = await telegram.press("approve", card.approval_id, actor="op", chat="op")
        assert any("Expired" in s.text and "nothing was sent" in s.text for s in telegram.sent)
        assert any(s.kind == "card_update" and s.card.status == "expired"
                   for s in telegram.sent)
        assert "expired" in late[0].text
        assert receiver.posts == []
        decisions = [e.decision for e in await app.storage.audit.recent()]
        assert {"escalated.1", "escalated.2", "expired"} <= set(decisions)
    finally:
        await app.aclose()


async def test_quiet_hours_hold_the_summary_and_escalations_then_deliver(
        clock: time_machine.Traveller, tmp_path: Path, receiver: WebhookReceiver) -> None:
    night = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    clock.move_to(night)
    app, telegram, _ = await open_app(tmp_path, receiver, summary_time="07:00",
                                      quiet_hours="22:00-08:00")
    try:
        await app.jobs.schedule_daily_summary()
        await telegram.say("/send crm asked at night", actor="op", chat="op")
        clock.move_to(night + timedelta(hours=1))
        await app.deliver(await app.jobs.scheduler.tick(night + timedelta(hours=1)))  # 07:00 quiet
        clock.move_to(night + timedelta(hours=1, minutes=30))
        await app.jobs.escalate(night + timedelta(hours=1, minutes=30))
        assert not [s for s in telegram.sent if s.text.startswith(("Summary", "Still"))]
        job = await app.storage.jobs.get("daily-summary")
        assert job.due_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        morning = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        clock.move_to(morning)
        await app.deliver(await app.jobs.scheduler.tick(morning))
        await app.jobs.escalate(morning)
        texts = [s.text for s in telegram.sent]
        assert any(t.startswith("Summary for Mon 23 Nov 2026") for t in texts)
        assert any(t.startswith("Still waiting for your decision") for t in texts)
        assert (await app.storage.jobs.get("daily-summary")).due_at == \
            datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    finally:
        await app.aclose()
