"""Mail read from the operator's mailbox, and the health of connectors that poll a server."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from memory.db import Database
from memory.models import ConnectorHealth, MailMessage, utcnow
from memory.sql import discard_result, insert_ignore, read_orm


class MailStore:
    """Mail by position (``folder, uidvalidity, uid``): stored once, found by short id."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def cursor(self, folder: str = "INBOX") -> tuple[int | None, int]:
        """Where reading ``folder`` resumes: the UIDVALIDITY of the newest stored message and
        the highest UID stored under it (``(None, 0)`` before the first poll)."""
        def work(conn: Connection) -> tuple[int | None, int]:
            newest = conn.execute(
                select(MailMessage.uidvalidity).where(MailMessage.folder == folder)
                .order_by(MailMessage.id.desc()).limit(1)).scalar()
            if newest is None:
                return None, 0
            highest = conn.execute(
                select(func.max(MailMessage.uid)).where(
                    MailMessage.folder == folder, MailMessage.uidvalidity == newest)).scalar()
            return int(newest), int(highest or 0)
        return await self._db.run(work)

    async def add(self, values: dict[str, Any]) -> int | None:
        """Store one message; its id, or ``None`` when that position was stored before."""
        def work(conn: Connection) -> int | None:
            result = conn.execute(insert_ignore(conn, MailMessage,
                                                 {"fetched_at": utcnow(), **values}))
            row = result.first()
            result.close()
            return None if row is None else int(row[0])
        return await self._db.run(work)

    async def get(self, mail_id: int) -> MailMessage | None:
        """One message by short id."""
        return await self._db.run(lambda conn: read_orm(
            conn, lambda s: s.get(MailMessage, mail_id)))

    async def latest(self, limit: int = 10, *,
                     triage: Sequence[str] = ("needs_reply", "fyi")) -> Sequence[MailMessage]:
        """The newest messages in the given triage classes, newest first."""
        query = select(MailMessage).where(MailMessage.triage.in_(list(triage))) \
            .order_by(MailMessage.id.desc()).limit(limit)
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def from_sender(self, name: str, limit: int = 3) -> Sequence[MailMessage]:
        """The newest messages whose sender's name or address contains ``name``."""
        pattern = f"%{name.lower()}%"
        query = select(MailMessage).where(
            func.lower(MailMessage.from_name).like(pattern)
            | func.lower(MailMessage.from_addr).like(pattern)
        ).order_by(MailMessage.id.desc()).limit(limit)
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def mark_notified(self, mail_id: int) -> bool:
        """Mark a message's notice as sent; False if it was already (one notice per mail)."""
        def work(conn: Connection) -> bool:
            result = conn.execute(update(MailMessage).where(
                MailMessage.id == mail_id, MailMessage.notified.is_(False)).values(notified=True))
            return result.rowcount == 1
        return await self._db.run(work)

    async def waiting_reply(self, since: datetime) -> Sequence[MailMessage]:
        """Messages triaged ``needs_reply`` fetched since ``since``, oldest first."""
        query = select(MailMessage).where(MailMessage.triage == "needs_reply",
                                          MailMessage.fetched_at >= since) \
            .order_by(MailMessage.id)
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))


class HealthStore:
    """Per connector: ok, down (with backoff) or refusing our credentials."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, connector: str) -> ConnectorHealth | None:
        """The connector's last known health (``None``: never failed)."""
        return await self._db.run(lambda conn: read_orm(
            conn, lambda s: s.get(ConnectorHealth, connector)))

    async def all(self) -> Sequence[ConnectorHealth]:
        """Every connector that ever failed, by name."""
        query = select(ConnectorHealth).order_by(ConnectorHealth.connector)
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def record(self, connector: str, *, state: str, detail: str = "",
                     retry_at: datetime | None = None) -> bool:
        """Record the outcome of a call; True when the operator should be told now (the state
        changed to ``auth`` or ``down``, or back to ``ok`` after a failure they were told of)."""
        def work(conn: Connection) -> bool:
            now = utcnow()
            old = read_orm(conn, lambda s: s.get(ConnectorHealth, connector))
            if old is None:
                if state == "ok":
                    return False
                discard_result(conn, insert_ignore(conn, ConnectorHealth, {
                    "connector": connector, "state": state, "detail": detail, "failures": 1,
                    "since": now, "retry_at": retry_at, "told": True}))
                return True
            changed = old.state != state
            conn.execute(update(ConnectorHealth).where(
                ConnectorHealth.connector == connector).values(
                state=state, detail=detail if state != "ok" else "",
                failures=0 if state == "ok" else old.failures + 1,
                since=now if changed else old.since, retry_at=retry_at,
                told=True))
            return changed and (state != "ok" or old.told)
        return await self._db.run(work)
