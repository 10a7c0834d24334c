"""Stores over the durable tables. All methods are async and commit before they return.

Decisions that must happen once (an approval's verdict, a job's lease) are single conditional
UPDATEs, so two processes or two taps racing on the same row cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from memory.models import (
    Approval,
    AuditEvent,
    Delivery,
    InboxEvent,
    Job,
    OutboxEntry,
    Plan,
    utcnow,
)

TERMINAL_APPROVAL = ("approved", "rejected", "expired", "superseded")


def _insert_ignore(session: AsyncSession, model: type, values: dict[str, Any]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING <primary key>`` in the session's dialect.

    The result has a row only when the insert happened (rowcount is not reliable across drivers).
    """
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = model.__mapper__.primary_key[0]
    return insert(model).values(**values).on_conflict_do_nothing().returning(key)


class Storage:
    """All stores over one engine.

    Args:
        engine: an engine from :func:`memory.db.create_engine`, already migrated.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)
        self.inbox = InboxStore(self)
        self.plans = PlanStore(self)
        self.approvals = ApprovalStore(self)
        self.outbox = OutboxStore(self)
        self.audit = AuditLog(self)
        self.jobs = JobStore(self)
        self.deliveries = DeliveryStore(self)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    async def aclose(self) -> None:
        """Dispose of the engine's connections."""
        await self.engine.dispose()


class _Store:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def _session(self) -> AsyncSession:
        return self._storage.session()


class InboxStore(_Store):
    """Platform events seen, so a re-delivered event is processed once."""

    async def accept(self, *, event_id: str, channel: str,
                     plan: dict[str, Any] | None = None) -> bool:
        """Record ``event_id``; False if it was seen before.

        When ``plan`` is given, its row is created in the same transaction, so an event is
        never recorded without the work it started (and vice versa).
        """
        now = utcnow()
        async with self._session() as session, session.begin():
            result = await session.execute(
                _insert_ignore(session, InboxEvent, {"id": event_id, "channel": channel,
                                                     "received_at": now})
            )
            if result.first() is None:
                return False
            if plan is not None:
                session.add(Plan(inbox_id=event_id, status="running", created_at=now,
                                 updated_at=now, **plan))
            return True

    async def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was recorded."""
        async with self._session() as session:
            return await session.get(InboxEvent, event_id) is not None


class PlanStore(_Store):
    """Director threads and their state (running, waiting, done)."""

    async def create(self, *, id: str, channel: str, actor: str, inbound: dict[str, Any]) -> None:
        """Create a plan not tied to an inbox event (e.g. started by the scheduler). Idempotent."""
        now = utcnow()
        async with self._session() as session, session.begin():
            await session.execute(_insert_ignore(session, Plan, {
                "id": id, "inbox_id": None, "channel": channel, "actor": actor,
                "inbound": inbound, "status": "running", "created_at": now, "updated_at": now}))

    async def get(self, plan_id: str) -> Plan | None:
        """The plan, or None."""
        async with self._session() as session:
            return await session.get(Plan, plan_id)

    async def set_status(self, plan_id: str, status: str) -> None:
        """Move a plan to ``status``."""
        async with self._session() as session, session.begin():
            await session.execute(update(Plan).where(Plan.id == plan_id)
                                  .values(status=status, updated_at=utcnow()))

    async def unfinished(self) -> Sequence[Plan]:
        """Plans not done, oldest first (the reconciler continues them)."""
        async with self._session() as session:
            rows = await session.scalars(select(Plan).where(Plan.status != "done")
                                         .order_by(Plan.created_at))
            return rows.all()

    async def count_by_status(self) -> dict[str, int]:
        """Number of plans per status."""
        async with self._session() as session:
            rows = await session.execute(select(Plan.status, func.count()).group_by(Plan.status))
            return {status: n for status, n in rows.all()}


class ApprovalStore(_Store):
    """Approval rows: one per risky step, decided once."""

    async def ensure(self, **values: Any) -> Approval:
        """Create the approval ``values["id"]`` unless it exists; return the stored row.

        Ids derive from the plan and step, so re-running the node that asks is harmless.
        """
        values.setdefault("status", "pending")
        values.setdefault("created_at", utcnow())
        values.setdefault("card_refs", {})
        async with self._session() as session, session.begin():
            await session.execute(_insert_ignore(session, Approval, values))
            return await session.get(Approval, values["id"])

    async def get(self, approval_id: str) -> Approval | None:
        """The approval, or None."""
        async with self._session() as session:
            return await session.get(Approval, approval_id)

    async def decide(self, approval_id: str, *, status: str, actor: str,
                     now: datetime | None = None) -> bool:
        """Set a pending, unexpired approval to ``status``; True only for the one caller that
        won."""
        now = now or utcnow()
        async with self._session() as session, session.begin():
            result = await session.execute(
                update(Approval)
                .where(Approval.id == approval_id, Approval.status == "pending",
                       Approval.expires_at > now)
                .values(status=status, decided_by=actor, decided_at=now)
            )
            return result.rowcount == 1

    async def expire_due(self, now: datetime | None = None) -> list[str]:
        """Mark pending approvals past their expiry as expired; return their ids."""
        now = now or utcnow()
        async with self._session() as session, session.begin():
            ids = (await session.scalars(select(Approval.id).where(
                Approval.status == "pending", Approval.expires_at <= now))).all()
            if ids:
                await session.execute(
                    update(Approval).where(Approval.id.in_(ids), Approval.status == "pending")
                    .values(status="expired", decided_by="system:expiry", decided_at=now))
            return list(ids)

    async def attach_card(self, approval_id: str, channel: str, ref: Any) -> bool:
        """Remember where a card for this approval was posted, to edit every copy after the
        decision (``card_refs`` is ``{channel: [ref, ...]}``; a card may be posted again).
        Returns True if ``ref`` was new."""
        async with self._session() as session, session.begin():
            row = await session.get(Approval, approval_id, with_for_update=True)
            if row is None:
                return False
            refs = list(row.card_refs.get(channel, []))
            if ref in refs:
                return False
            row.card_refs = {**row.card_refs, channel: [*refs, ref]}
            return True

    async def complete(self, approval_id: str, *, receipt_id: str | None) -> None:
        """Mark the decided approval's plan step as finished."""
        async with self._session() as session, session.begin():
            await session.execute(update(Approval).where(Approval.id == approval_id)
                                  .values(completed_at=utcnow(), receipt_id=receipt_id))

    async def pending(self) -> Sequence[Approval]:
        """Approvals waiting for a decision, oldest first."""
        async with self._session() as session:
            rows = await session.scalars(select(Approval).where(Approval.status == "pending")
                                         .order_by(Approval.created_at))
            return rows.all()


class OutboxStore(_Store):
    """External effects, each keyed by its idempotency key."""

    async def begin(self, *, key: str, plan_id: str, connector: str,
                    action: dict[str, Any]) -> tuple[OutboxEntry, int]:
        """Write (or find) the row for ``key`` and count one more attempt, before the call.

        Returns:
            The row, and how many attempts were recorded before this one (0 on first try;
            more means an earlier attempt may have reached the target).
        """
        now = utcnow()
        async with self._session() as session, session.begin():
            await session.execute(_insert_ignore(session, OutboxEntry, {
                "key": key, "plan_id": plan_id, "connector": connector, "action": action,
                "status": "pending", "attempts": 0, "created_at": now, "updated_at": now}))
            row = await session.get(OutboxEntry, key, with_for_update=True)
            previous = row.attempts
            if row.status in ("pending", "in_flight"):
                row.status = "in_flight"
                row.attempts = previous + 1
                row.updated_at = now
            return row, previous

    async def finish(self, key: str, *, receipt: dict[str, Any],
                     audit: dict[str, Any] | None = None) -> None:
        """Mark ``key`` done with its receipt (and append ``audit`` in the same transaction)."""
        async with self._session() as session, session.begin():
            await session.execute(update(OutboxEntry).where(OutboxEntry.key == key)
                                  .values(status="done", receipt=receipt, updated_at=utcnow()))
            if audit is not None:
                await session.execute(_audit_insert(session, audit))

    async def fail(self, key: str, *, error: str, audit: dict[str, Any] | None = None) -> None:
        """Mark ``key`` failed for good (and append ``audit`` in the same transaction)."""
        async with self._session() as session, session.begin():
            await session.execute(update(OutboxEntry).where(OutboxEntry.key == key)
                                  .values(status="failed", last_error=error, updated_at=utcnow()))
            if audit is not None:
                await session.execute(_audit_insert(session, audit))

    async def get(self, key: str) -> OutboxEntry | None:
        """The row for ``key``, or None."""
        async with self._session() as session:
            return await session.get(OutboxEntry, key)

    async def count_by_status(self) -> dict[str, int]:
        """Number of rows per status."""
        async with self._session() as session:
            rows = await session.execute(select(OutboxEntry.status, func.count())
                                         .group_by(OutboxEntry.status))
            return {status: n for status, n in rows.all()}


def _audit_insert(session: AsyncSession, values: dict[str, Any]) -> Any:
    values = {"at": utcnow(), **values}
    if values.get("dedup_key"):
        return _insert_ignore(session, AuditEvent, values)
    return insert(AuditEvent).values(**values)


class AuditLog(_Store):
    """The append-only audit log."""

    async def append(self, **values: Any) -> None:
        """Append one event. With ``dedup_key``, appending the same event twice writes it once."""
        async with self._session() as session, session.begin():
            await session.execute(_audit_insert(session, values))

    async def recent(self, limit: int = 20) -> Sequence[AuditEvent]:
        """The newest events, newest first."""
        async with self._session() as session:
            rows = await session.scalars(select(AuditEvent)
                                         .order_by(AuditEvent.id.desc()).limit(limit))
            return rows.all()

    async def count(self) -> int:
        """Number of events."""
        async with self._session() as session:
            return (await session.scalar(select(func.count()).select_from(AuditEvent))) or 0


class JobStore(_Store):
    """Scheduled jobs, claimed under a time-limited lease."""

    async def put(self, *, id: str, kind: str, payload: dict[str, Any], due_at: datetime,
                  missed_policy: str = "catch_up_within:3600") -> None:
        """Schedule a job (idempotent by ``id``)."""
        async with self._session() as session, session.begin():
            await session.execute(_insert_ignore(session, Job, {
                "id": id, "kind": kind, "payload": payload, "due_at": due_at,
                "missed_policy": missed_policy, "status": "scheduled", "created_at": utcnow()}))

    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta,
                        limit: int = 10) -> list[Job]:
        """Lease up to ``limit`` due jobs to ``owner``; a job is leased to one owner at a time."""
        claimed: list[Job] = []
        async with self._session() as session:
            candidates = (await session.scalars(
                select(Job.id).where(Job.status == "scheduled", Job.due_at <= now)
                .order_by(Job.due_at).limit(limit))).all()
        for job_id in candidates:
            async with self._session() as session, session.begin():
                result = await session.execute(
                    update(Job).where(
                        Job.id == job_id, Job.status == "scheduled",
                        (Job.lease_until.is_(None)) | (Job.lease_until < now))
                    .values(lease_owner=owner, lease_until=now + lease))
                if result.rowcount == 1:
                    claimed.append(await session.get(Job, job_id))
        return claimed

    async def finish(self, job_id: str, *, owner: str, next_due: datetime | None = None,
                     error: str | None = None) -> bool:
        """Release a leased job: reschedule at ``next_due`` or mark it done. False if the lease
        was lost to another owner."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None,
                                  "last_run_at": utcnow(), "last_error": error}
        if next_due is None:
            values["status"] = "done"
        else:
            values["due_at"] = next_due
        async with self._session() as session, session.begin():
            result = await session.execute(update(Job).where(Job.id == job_id,
                                                             Job.lease_owner == owner)
                                           .values(**values))
            return result.rowcount == 1

    async def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        async with self._session() as session:
            return await session.get(Job, job_id)


class DeliveryStore(_Store):
    """Replies waiting to be accepted by a chat platform (at-least-once, in order per chat)."""

    async def add(self, *, channel: str, chat: str, kind: str, payload: dict[str, Any]) -> int:
        """Queue one reply; return its id."""
        async with self._session() as session, session.begin():
            row = Delivery(channel=channel, chat=chat, kind=kind, payload=payload,
                           status="pending", attempts=0, created_at=utcnow())
            session.add(row)
            await session.flush()
            return row.id

    async def pending(self, channel: str) -> Sequence[Delivery]:
        """Pending replies of ``channel`` in the order they were queued."""
        async with self._session() as session:
            rows = await session.scalars(select(Delivery).where(
                Delivery.channel == channel, Delivery.status == "pending").order_by(Delivery.id))
            return rows.all()

    async def get(self, delivery_id: int) -> Delivery | None:
        """One queued reply."""
        async with self._session() as session:
            return await session.get(Delivery, delivery_id)

    async def settle(self, delivery_id: int, *, status: str, error: str | None = None) -> None:
        """Mark a reply ``sent`` or ``failed``."""
        async with self._session() as session, session.begin():
            await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                status=status, last_error=error, attempts=Delivery.attempts + 1))

    async def count_pending(self) -> int:
        """Replies not yet accepted, all channels."""
        async with self._session() as session:
            return (await session.scalar(select(func.count()).select_from(Delivery)
                                         .where(Delivery.status == "pending"))) or 0
