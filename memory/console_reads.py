"""Read-only queries for the operator console and ``/metrics``: pages of the ledger and of
plans (keyset paging, so the 100,000th event costs what the first does), spending by day,
and the figures health and metrics report. Nothing here writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select

from memory.db import Database
from memory.models import (
    Approval,
    AuditEvent,
    Delivery,
    InboxEvent,
    Job,
    MailMessage,
    MemoryItem,
    OutboxEntry,
    Plan,
)
from memory.sql import read_orm


@dataclass(frozen=True)
class LedgerFilter:
    """Which audit events a ledger page shows (empty: any). ``decision`` matches a prefix
    (``model`` finds every ``model.*``); ``since``/``until`` bound ``at`` as ``[since, until)``."""

    connector: str = ""
    actor: str = ""
    decision: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[Any]:
        """The SQL conditions."""
        conditions: list[Any] = []
        if self.connector:
            conditions.append(AuditEvent.connector == self.connector)
        if self.actor:
            conditions.append(AuditEvent.actor == self.actor)
        if self.decision:
            conditions.append(AuditEvent.decision.startswith(self.decision, autoescape=True))
        if self.since is not None:
            conditions.append(AuditEvent.at >= self.since)
        if self.until is not None:
            conditions.append(AuditEvent.at < self.until)
        return conditions


@dataclass(frozen=True)
class DaySpend:
    """Model spending of one of the operator's days."""

    day: date
    cost_usd: float
    calls: int


class ConsoleReads:
    """See the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _all(self, query: Any) -> Sequence[Any]:
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))

    async def _rows(self, query: Any) -> list[Any]:
        return await self._db.run(lambda conn: list(conn.execute(query).all()))

    async def ledger(self, where: LedgerFilter, *, before_id: int | None = None,
                     limit: int = 50) -> Sequence[AuditEvent]:
        """Audit events matching ``where``, newest first, older than ``before_id``."""
        query = select(AuditEvent).where(*where.where())
        if before_id is not None:
            query = query.where(AuditEvent.id < before_id)
        return await self._all(query.order_by(AuditEvent.id.desc()).limit(limit))

    async def plans(self, *, status: str = "", before: tuple[datetime, str] | None = None,
                    limit: int = 50) -> Sequence[Plan]:
        """Plans newest first (optionally of one ``status``), after the ``(created_at, id)``
        of the last one on the previous page."""
        query = select(Plan)
        if status:
            query = query.where(Plan.status == status)
        if before is not None:
            at, plan_id = before
            query = query.where(or_(Plan.created_at < at,
                                    and_(Plan.created_at == at, Plan.id < plan_id)))
        return await self._all(query.order_by(Plan.created_at.desc(), Plan.id.desc())
                               .limit(limit))

    async def receipts(self, plan_id: str) -> Sequence[OutboxEntry]:
        """The external effects a plan started (its outbox rows), oldest first."""
        return await self._all(select(OutboxEntry).where(OutboxEntry.plan_id == plan_id)
                               .order_by(OutboxEntry.created_at))

    async def recently_decided(self, limit: int = 20) -> Sequence[Approval]:
        """Approvals decided last, newest first (their cards may still offer Undo)."""
        return await self._all(select(Approval).where(Approval.decided_at.is_not(None))
                               .order_by(Approval.decided_at.desc()).limit(limit))

    async def memory_items(self, *, kind: str = "", status: str = "active",
                           limit: int = 50) -> Sequence[MemoryItem]:
        """Facts and notes (or one ``kind``) newest first."""
        kinds = (kind,) if kind else ("fact", "note")
        query = select(MemoryItem).where(MemoryItem.kind.in_(kinds))
        if status:
            query = query.where(MemoryItem.status == status)
        return await self._all(query.order_by(MemoryItem.created_at.desc()).limit(limit))

    async def supersession_chain(self, item_id: str, *, longest: int = 50) -> list[MemoryItem]:
        """``item_id`` with what it replaced and what replaced it, oldest first."""
        def work(conn: Any) -> list[MemoryItem]:
            def get(key: str) -> MemoryItem | None:
                return read_orm(conn, lambda s: s.get(MemoryItem, key))

            item = get(item_id)
            if item is None:
                return []
            chain = [item]
            older = item
            while len(chain) < longest:
                older = read_orm(conn, lambda s, o=older: s.scalars(select(MemoryItem).where(
                    MemoryItem.superseded_by == o.id).limit(1)).first())
                if older is None or older in chain:
                    break
                chain.insert(0, older)
            newer = item
            while newer.superseded_by and len(chain) < longest:
                newer = get(newer.superseded_by)
                if newer is None or newer in chain:
                    break
                chain.append(newer)
            return chain
        return await self._db.run(work)

    async def spend_by_day(self, *, since: datetime, timezone: ZoneInfo) -> list[DaySpend]:
        """Model spending per day of the operator's calendar from ``since``, oldest first
        (days without calls included)."""
        rows = await self._rows(select(AuditEvent.at, AuditEvent.cost_usd).where(
            AuditEvent.model.is_not(None), AuditEvent.at >= since))
        days: dict[date, list[float]] = {}
        for at, cost in rows:
            days.setdefault(at.astimezone(timezone).date(), []).append(cost or 0.0)
        first = since.astimezone(timezone).date()
        last = max([*days, first])
        return [DaySpend(day, sum(days.get(day, [])), len(days.get(day, [])))
                for day in (date.fromordinal(n) for n in range(first.toordinal(),
                                                               last.toordinal() + 1))]

    async def model_totals(self) -> dict[str, float]:
        """Every model call recorded: ``calls``, ``cost_usd``, ``input_tokens``,
        ``output_tokens`` (tokens are summed here: the detail column is JSON on both engines)."""
        rows = await self._rows(select(AuditEvent.cost_usd, AuditEvent.detail).where(
            AuditEvent.model.is_not(None)))
        totals = {"calls": float(len(rows)), "cost_usd": 0.0, "input_tokens": 0.0,
                  "output_tokens": 0.0}
        for cost, detail in rows:
            totals["cost_usd"] += cost or 0.0
            for key in ("input_tokens", "output_tokens"):
                value = (detail or {}).get(key)
                totals[key] += value if isinstance(value, int | float) else 0
        return totals

    async def last_event_by_channel(self) -> dict[str, datetime]:
        """When each chat channel last delivered an event (the inbox: any instance's)."""
        return dict(await self._rows(select(InboxEvent.channel, func.max(
            InboxEvent.received_at)).group_by(InboxEvent.channel)))

    async def events_by_channel(self) -> dict[str, int]:
        """Events admitted so far per channel."""
        return dict(await self._rows(select(InboxEvent.channel, func.count())
                                     .group_by(InboxEvent.channel)))

    async def last_mail_read(self) -> datetime | None:
        """When the newest stored mail was read from the server (None: none yet)."""
        rows = await self._rows(select(func.max(MailMessage.fetched_at)))
        return rows[0][0] if rows else None

    async def last_call_by_connector(self) -> dict[str, datetime]:
        """When each connector was last called (its newest outbox change)."""
        return dict(await self._rows(select(OutboxEntry.connector, func.max(
            OutboxEntry.updated_at)).group_by(OutboxEntry.connector)))

    async def connector_calls(self) -> dict[tuple[str, str], int]:
        """Outbox rows per ``(connector, status)``: the calls made and how they ended."""
        rows = await self._rows(select(OutboxEntry.connector, OutboxEntry.status,
                                       func.count()).group_by(OutboxEntry.connector,
                                                              OutboxEntry.status))
        return {(connector, status): count for connector, status, count in rows}

    async def deliveries_by_status(self) -> dict[tuple[str, str], int]:
        """Queued replies per ``(channel, status)`` (``pending``, ``failed``, ...)."""
        rows = await self._rows(select(Delivery.channel, Delivery.status, func.count())
                                .where(Delivery.status != "sent")
                                .group_by(Delivery.channel, Delivery.status))
        return {(channel, status): count for channel, status, count in rows}

    async def failed_deliveries(self, limit: int = 10) -> Sequence[Delivery]:
        """The newest replies that could not be delivered."""
        return await self._all(select(Delivery).where(Delivery.status == "failed")
                               .order_by(Delivery.id.desc()).limit(limit))

    async def due_jobs(self, now: datetime) -> tuple[int, datetime | None]:
        """How many jobs are due and not running, and the oldest due time among them (the
        scheduler's lag is ``now`` minus it)."""
        count, oldest = (await self._rows(select(func.count(), func.min(Job.due_at)).where(
            Job.status == "scheduled", Job.due_at <= now)))[0]
        return int(count), oldest

    async def approval_waits(self, *, since: datetime) -> list[float]:
        """Seconds each approval decided since ``since`` waited for its decision."""
        rows = await self._rows(select(Approval.created_at, Approval.decided_at).where(
            Approval.decided_at >= since, Approval.status.in_(("approved", "rejected"))))
        return [(decided - created).total_seconds() for created, decided in rows]
