"""One contract, every backend: the stores behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from memory.db import open_database
from memory.models import utcnow
from memory.stores import Storage


@pytest.fixture
async def storage(database_url: str):
    db = open_database(database_url)
    await db.migrate()
    store = Storage(db)
    yield store
    await store.aclose()


def _approval(id: str, *, ttl: timedelta = timedelta(hours=1)) -> dict:
    now = utcnow()
    return dict(id=id, plan_id=f"p-{id}", channel="memory", chat="c", kind="webhook.post",
                risk="high", reason="r", diff={"steps": []}, created_at=now, expires_at=now + ttl)


async def test_migrate_twice_is_harmless(database_url: str) -> None:
    db = open_database(database_url)
    await db.migrate()
    await db.migrate()
    version = await db.run(
        lambda conn: conn.execute(text("select version_num from alembic_version")).scalar())
    await db.aclose()
    assert version == "0009"


async def test_inbox_accepts_an_event_once_and_creates_its_plan_with_it(storage: Storage) -> None:
    plan = {"id": "p1", "channel": "memory", "actor": "op", "inbound": {"text": "hi"}}
    assert await storage.inbox.accept(event_id="memory:1", channel="memory", plan=plan)
    assert not await storage.inbox.accept(event_id="memory:1", channel="memory", plan=plan)
    assert await storage.inbox.seen("memory:1")
    stored = await storage.plans.get("p1")
    assert stored.status == "running" and stored.inbound == {"text": "hi"}
    assert [p.id for p in await storage.plans.unfinished()] == ["p1"]


async def test_concurrent_accepts_of_one_event_let_exactly_one_through(storage: Storage) -> None:
    results = await asyncio.gather(*[
        storage.inbox.accept(event_id="memory:race", channel="memory") for _ in range(8)])
    assert sorted(results) == [False] * 7 + [True]


async def test_approval_is_decided_once_even_under_a_race(storage: Storage) -> None:
    await storage.approvals.ensure(**_approval("a1"))
    again = await storage.approvals.ensure(**{**_approval("a1"), "reason": "changed"})
    assert again.reason == "r"  # ensure never overwrites
    wins = await asyncio.gather(*[
        storage.approvals.decide("a1", status="approved", actor=f"tap{i}") for i in range(6)])
    assert wins.count(True) == 1
    row = await storage.approvals.get("a1")
    assert row.status == "approved" and row.decided_by.startswith("tap")
    assert not await storage.approvals.decide("a1", status="rejected", actor="late")


async def test_expired_approval_cannot_be_decided_and_is_swept(storage: Storage) -> None:
    await storage.approvals.ensure(**_approval("old", ttl=timedelta(seconds=-1)))
    await storage.approvals.ensure(**_approval("new"))
    assert not await storage.approvals.decide("old", status="approved", actor="op")
    assert await storage.approvals.expire_due() == ["old"]
    assert (await storage.approvals.get("old")).status == "expired"
    assert [a.id for a in await storage.approvals.pending()] == ["new"]


async def test_card_refs_accumulate_per_channel(storage: Storage) -> None:
    await storage.approvals.ensure(**_approval("c1"))
    await storage.approvals.attach_card("c1", "telegram", {"message_id": 5})
    await storage.approvals.attach_card("c1", "slack", "ts-1")
    await storage.approvals.attach_card("c1", "telegram", {"message_id": 9})
    await storage.approvals.attach_card("c1", "telegram", {"message_id": 9})
    assert (await storage.approvals.get("c1")).card_refs == {
        "telegram": [{"message_id": 5}, {"message_id": 9}], "slack": ["ts-1"]}


async def test_outbox_counts_attempts_and_keeps_the_first_receipt(storage: Storage) -> None:
    row, earlier = await storage.outbox.begin(key="k1", plan_id="p", connector="c", action={})
    assert (row.status, earlier) == ("in_flight", 0)
    row, earlier = await storage.outbox.begin(key="k1", plan_id="p", connector="c", action={})
    assert (row.status, row.attempts, earlier) == ("in_flight", 2, 1)
    await storage.outbox.finish("k1", receipt={"id": "r1"},
                                audit={"actor": "op", "decision": "executed",
                                       "dedup_key": "k1:outcome"})
    row, earlier = await storage.outbox.begin(key="k1", plan_id="p", connector="c", action={})
    assert (row.status, row.receipt, row.attempts) == ("done", {"id": "r1"}, 2)
    await storage.outbox.begin(key="k2", plan_id="p", connector="c", action={})
    await storage.outbox.fail("k2", error="HTTP 400")
    assert (await storage.outbox.get("k2")).last_error == "HTTP 400"
    assert await storage.outbox.count_by_status() == {"done": 1, "failed": 1}


async def test_audit_log_is_append_only_and_dedups_by_key(storage: Storage) -> None:
    await storage.audit.append(actor="op", decision="approved", dedup_key="a1:decision")
    await storage.audit.append(actor="op", decision="approved", dedup_key="a1:decision")
    await storage.audit.append(actor="op", decision="refused", cost_usd=0.25)
    assert await storage.audit.count() == 2
    assert [e.decision for e in await storage.audit.recent()] == ["refused", "approved"]
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            await storage.db.run(lambda conn, s=statement: conn.execute(text(s)))
    assert await storage.audit.count() == 2


async def test_a_due_job_is_leased_to_one_owner_at_a_time(storage: Storage) -> None:
    now = utcnow()
    await storage.jobs.put(id="j1", kind="summary", payload={}, due_at=now - timedelta(seconds=1))
    await storage.jobs.put(id="j2", kind="summary", payload={}, due_at=now + timedelta(days=30))
    claims = await asyncio.gather(*[
        storage.jobs.claim_due(owner=f"w{i}", now=now, lease=timedelta(minutes=1))
        for i in range(4)])
    assert sorted(len(c) for c in claims) == [0, 0, 0, 1]
    winner = next(c for c in claims if c)[0]
    assert winner.id == "j1"
    assert not await storage.jobs.finish("j1", owner="someone-else")
    later = now + timedelta(days=1)
    assert await storage.jobs.finish("j1", owner=winner.lease_owner, next_due=later)
    job = await storage.jobs.get("j1")
    assert (job.due_at, job.lease_owner, job.status) == (later, None, "scheduled")
    # An expired lease can be taken over (the first owner crashed).
    await storage.jobs.claim_due(owner="a", now=later, lease=timedelta(minutes=1))
    taken = await storage.jobs.claim_due(owner="b", now=later + timedelta(minutes=2),
                                         lease=timedelta(minutes=1))
    assert [j.lease_owner for j in taken] == ["b"]
