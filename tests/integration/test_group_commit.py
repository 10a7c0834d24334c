"""Group commit on SQLite: urgent units of work queued together share one transaction (one
commit), each in its own savepoint — a failing one rolls back only itself — and every caller
gets its own result only after the shared commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select

from memory.db import open_database, urgent
from memory.models import InboxEvent, utcnow


async def test_concurrent_urgent_work_commits_together_and_a_failure_stays_its_own(
        tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    await db.migrate()
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))

    def add(event_id: str):
        def work(conn):
            conn.execute(insert(InboxEvent).values(id=event_id, channel="t",
                                                   received_at=utcnow()))
            if event_id == "e-13":
                raise ValueError("this one fails")
            return event_id
        return work

    async def admit(event_id: str) -> str:
        with urgent():
            return await db.run(add(event_id))

    outcomes = await asyncio.gather(*(admit(f"e-{i}") for i in range(40)),
                                    return_exceptions=True)
    [failure] = [o for o in outcomes if isinstance(o, Exception)]
    assert failure.args == ("this one fails",)
    assert [o for o in outcomes if not isinstance(o, Exception)] == \
        [f"e-{i}" for i in range(40) if i != 13]
    stored = await db.run(lambda conn: set(conn.execute(select(InboxEvent.id)).scalars()))
    assert stored == {f"e-{i}" for i in range(40) if i != 13}
    assert len(commits) < 40  # batched: fewer commits than units of work (one per batch)
    # A unit that breaks a constraint rolls back alone, too.
    with pytest.raises(Exception, match="UNIQUE"):
        await admit("e-0")
    assert len(await db.run(lambda conn: conn.execute(select(InboxEvent.id)).all())) == 39
    await db.aclose()
