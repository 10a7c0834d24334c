"""The playbook run ledger and each playbook's state (paused, versions seen)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from memory.db import Database
from memory.models import PlaybookRun, PlaybookState, PlaybookVersion, utcnow
from memory.sql import dialect_insert, inserted, read_orm


class PlaybookStore:
    """Runs (one row per occurrence: claimed once, across processes) and versions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, *, run_id: str, playbook: str, version: str, occurrence: datetime,
                    manual: bool) -> bool:
        """Record the run ``run_id`` as ``running``; False when it was claimed before (by this
        or another process): that occurrence is not run again."""
        values = {"id": run_id, "playbook": playbook, "version": version,
                  "occurrence": occurrence, "manual": manual, "status": "running",
                  "plan_id": None, "detail": "", "started_at": utcnow()}

        return await self._db.run(lambda conn: inserted(conn, PlaybookRun, values))

    async def settle(self, run_id: str, *, status: str, detail: str = "",
                     plan_id: str | None = None) -> None:
        """Record how a run went: ``started`` (its plan carries on: ``plan_id``), ``idle``
        (nothing to do; ``detail`` says why), ``failed``."""
        values: dict[str, Any] = {"status": status, "detail": detail[:1000]}
        if plan_id is not None:
            values["plan_id"] = plan_id
        await self._db.run(lambda conn: conn.execute(
            update(PlaybookRun).where(PlaybookRun.id == run_id).values(**values)))

    async def runs(self, playbook: str, limit: int = 10) -> Sequence[PlaybookRun]:
        """The latest runs of ``playbook``, newest first."""
        query = select(PlaybookRun).where(PlaybookRun.playbook == playbook) \
            .order_by(PlaybookRun.started_at.desc()).limit(limit)
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def between(self, since: datetime, until: datetime) -> Sequence[PlaybookRun]:
        """Runs started in ``[since, until)``, oldest first (for the daily summary)."""
        query = select(PlaybookRun).where(PlaybookRun.started_at >= since,
                                          PlaybookRun.started_at < until) \
            .order_by(PlaybookRun.started_at)
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def get(self, run_id: str) -> PlaybookRun | None:
        """One run by id."""
        query = select(PlaybookRun).where(PlaybookRun.id == run_id)
        return await self._db.run(
            lambda conn: read_orm(conn, lambda s: s.scalars(query).first()))

    async def last_run_at(self, playbook: str, *,
                          before: datetime | None = None) -> datetime | None:
        """When the latest run of ``playbook`` (started before ``before``) started:
        ``collect`` reads what is new since."""
        query = select(PlaybookRun.started_at).where(PlaybookRun.playbook == playbook) \
            .order_by(PlaybookRun.started_at.desc()).limit(1)
        if before is not None:
            query = query.where(PlaybookRun.started_at < before)
        return await self._db.run(lambda conn: conn.execute(query).scalar())

    async def see_version(self, playbook: str, version: str) -> bool:
        """Note that ``playbook`` is at ``version``; True when that version is new."""
        values = {"id": f"{playbook}@{version}", "playbook": playbook, "version": version,
                  "seen_at": utcnow()}

        return await self._db.run(lambda conn: inserted(conn, PlaybookVersion, values))

    async def versions(self, playbook: str) -> Sequence[PlaybookVersion]:
        """Every version of ``playbook`` seen, newest first."""
        query = select(PlaybookVersion).where(PlaybookVersion.playbook == playbook) \
            .order_by(PlaybookVersion.seen_at.desc())
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def set_paused(self, playbook: str, paused: bool) -> None:
        """Pause or resume ``playbook`` (kept across restarts and file edits)."""
        def work(conn: Connection) -> None:
            insert = dialect_insert(conn)(PlaybookState).values(
                playbook=playbook, paused=paused, updated_at=utcnow())
            conn.execute(insert.on_conflict_do_update(
                index_elements=["playbook"],
                set_={"paused": paused, "updated_at": insert.excluded.updated_at}))
        await self._db.run(work)

    async def paused(self) -> set[str]:
        """The playbooks the operator paused."""
        query = select(PlaybookState.playbook).where(PlaybookState.paused.is_(True))
        return set(await self._db.run(lambda conn: conn.execute(query).scalars().all()))
