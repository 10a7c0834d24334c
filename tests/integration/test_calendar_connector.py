"""The calendar connector against a real Radicale: one event per key whatever is retried,
times in the operator's zone, conflicts, moves, cancels, tasks, and clear errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from connectors.base import PermanentError
from connectors.calendar import CalendarConnector, uid_for
from connectors.retry import RetryPolicy
from tests.support.mailrig import MailRig

BERLIN = ZoneInfo("Europe/Berlin")
FAST = RetryPolicy(attempts=3, timeout=60, wait_initial=0.01, wait_max=0.05, wait_jitter=0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def calendar_for(rig: MailRig, user: str, client: httpx.AsyncClient, *,
                 password: str | None = None, calendar: str = "work") -> CalendarConnector:
    return CalendarConnector(url=f"http://127.0.0.1:{rig.caldav_port}/{user}/",
                             calendar=calendar, username=user,
                             password=password or rig.users[user], client=client, retry=FAST,
                             timezone=BERLIN)


async def test_an_event_is_created_once_whatever_is_repeated(
        caldav_rig: MailRig, client: httpx.AsyncClient) -> None:
    user = caldav_rig.add_user()
    calendar = calendar_for(caldav_rig, user, client)
    start = datetime(2026, 12, 1, 15, 0, tzinfo=BERLIN)
    action = calendar.create_event("Acme call", start, start + timedelta(minutes=30))
    diff = await calendar.preview(action)
    assert diff.title == 'New event "Acme call"'
    assert ("When", None, "Tue 01 Dec 15:00–15:30 (Europe/Berlin)") in diff.fields
    assert ("UTC", None, "2026-12-01 14:00–14:30 UTC") in diff.fields
    assert ("Conflicts", None, "none") in diff.fields
    first = await calendar.execute(action, idempotency_key="solo-p1-0")
    again = await calendar.execute(action, idempotency_key="solo-p1-0")
    assert first.ref == again.ref == uid_for("solo-p1-0")
    assert not first.reconciled and again.reconciled
    assert (await calendar.reconcile("solo-p1-0")).id == first.id
    assert await calendar.reconcile("solo-p1-9") is None
    assert len(caldav_rig.calendar_objects(user)) == 1
    [event] = await calendar.events_between(start - timedelta(hours=1), start + timedelta(hours=2))
    assert (event.title, event.start) == ("Acme call", start)

    clash = calendar.create_event("Dentist", start + timedelta(minutes=15),
                                  start + timedelta(minutes=45))
    conflicts = dict((n, a) for n, _, a in (await calendar.preview(clash)).fields)["Conflicts"]
    assert conflicts == "Acme call (Tue 01 Dec 15:00–15:30 (Europe/Berlin))"

    later = start + timedelta(days=1)
    move = calendar.move_event(event.uid, "Acme call", later, later + timedelta(minutes=30))
    await calendar.execute(move, idempotency_key="solo-p2-0")
    await calendar.execute(move, idempotency_key="solo-p2-0")
    [moved] = await calendar.events_between(later, later + timedelta(hours=1))
    assert moved.uid == event.uid and moved.start == later
    cancel = await calendar.compensate(first)
    assert cancel is not None and cancel.args == {"uid": event.uid, "title": "Acme call"}
    await calendar.execute(cancel, idempotency_key="solo-p3-0")
    assert (await calendar.execute(cancel, idempotency_key="solo-p3-0")).reconciled
    assert caldav_rig.calendar_objects(user) == []


async def test_tasks_are_added_once_listed_and_done(
        caldav_rig: MailRig, client: httpx.AsyncClient) -> None:
    user = caldav_rig.add_user()
    calendar = calendar_for(caldav_rig, user, client)
    for key in ("solo-t1-0", "solo-t1-0"):
        await calendar.execute(calendar.create_task("Renew the domain"), idempotency_key=key)
    await calendar.execute(calendar.create_task("File VAT"), idempotency_key="solo-t2-0")
    tasks = await calendar.open_tasks()
    assert [t.title for t in tasks] == ["File VAT", "Renew the domain"]
    await calendar.execute(calendar.complete_task(tasks[0].uid, "File VAT"),
                           idempotency_key="solo-t3-0")
    assert [t.title for t in await calendar.open_tasks()] == ["Renew the domain"]


async def test_bad_input_and_bad_settings_are_clear(
        caldav_rig: MailRig, client: httpx.AsyncClient) -> None:
    user = caldav_rig.add_user()
    calendar = calendar_for(caldav_rig, user, client)
    now = datetime.now(UTC)
    with pytest.raises(PermanentError, match="ends before it starts"):
        await calendar.preview(calendar.create_event("x", now, now - timedelta(hours=1)))
    with pytest.raises(PermanentError, match="no title"):
        await calendar.preview(calendar.create_event(" ", now, now + timedelta(hours=1)))
    assert await calendar.check() == []
    wrong = calendar_for(caldav_rig, user, client, password="nope")
    assert "login refused" in (await wrong.check())[0]
    missing = calendar_for(caldav_rig, user, client, calendar="nowhere")
    assert "no calendar" in (await missing.check())[0]
