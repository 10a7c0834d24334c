"""Stores over the durable tables. Every method is one transaction, committed before it returns.

Decisions that must happen once (an approval's verdict, a job's lease) are single conditional
UPDATEs, so two processes or two taps racing on the same row cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import case, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, Row

from memory.console_reads import ConsoleReads
from memory.db import Database
from memory.mail_store import HealthStore, MailStore
from memory.models import (
    Approval,
    AuditEvent,
    Delivery,
    InboxEvent,
    Job,
    OutboxEntry,
    Plan,
    PlanStep,
    UTCDateTime,
    utcnow,
)
from memory.playbook_store import PlaybookStore
from memory.sql import dialect_insert, discard_result, insert_ignore, read_orm

T = TypeVar("T")


def _audit_insert(conn: Connection, values: dict[str, Any]) -> Any:
    values = {"at": utcnow(), **values}
    if values.get("dedup_key"):
        return insert_ignore(conn, AuditEvent, values)
    return insert(AuditEvent).values(**values)


def _step_settles(conn: Connection, key: str, values: dict[str, Any], now: datetime) -> None:
    """Carry an outbox change over to the plan steps that share its key (the step itself and a
    retry of it), in the caller's transaction."""
    conn.execute(update(PlanStep).where(PlanStep.idempotency_key == key)
                 .values(updated_at=now, **values))


def _settle_waiting(conn: Connection, plan_id: str, status: str, now: datetime,
                    holds: dict[int, datetime]) -> None:
    """Give the steps of ``plan_id`` still waiting for a decision that decision (approved steps
    with an undo window are held until its end), in the caller's transaction."""
    waiting = (PlanStep.plan_id == plan_id, PlanStep.status == "waiting")
    for position, until in holds.items():
        if status == "approved":
            conn.execute(update(PlanStep).where(*waiting, PlanStep.position == position)
                         .values(status=status, hold_until=until, updated_at=now))
    conn.execute(update(PlanStep).where(*waiting).values(status=status, updated_at=now))


class Storage:
    """All stores over one database.

    Args:
        db: from :func:`memory.db.open_database`, already migrated.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inbox = InboxStore(db)
        self.plans = PlanStore(db)
        self.approvals = ApprovalStore(db)
        self.outbox = OutboxStore(db)
        self.audit = AuditLog(db)
        self.jobs = JobStore(db)
        self.deliveries = DeliveryStore(db)
        self.mail = MailStore(db)
        self.health = HealthStore(db)
        self.playbooks = PlaybookStore(db)
        self.reads = ConsoleReads(db)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.db.dialect

    async def aclose(self) -> None:
        """Close the database."""
        await self.db.aclose()


class _Store:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _get(self, model: type[T], key: Any) -> T | None:
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.get(model, key)))

    async def _all(self, query: Any) -> Sequence[Any]:
        return await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))


class InboxStore(_Store):
    """Platform events seen, so a re-delivered event is processed once."""

    async def accept(self, *, event_id: str, channel: str,
                     plan: dict[str, Any] | None = None) -> bool:
        """Record ``event_id``; False if it was seen before.

        When ``plan`` is given, its row is created in the same transaction, so an event is
        never recorded without the work it started (and vice versa).
        """
        now = utcnow()

        def work(conn: Connection) -> bool:
            result = conn.execute(insert_ignore(conn, InboxEvent, {
                "id": event_id, "channel": channel, "received_at": now}))
            if result.first() is None:
                return False
            if plan is not None:
                conn.execute(insert(Plan).values(inbox_id=event_id, status="running",
                                                 created_at=now, updated_at=now, **plan))
            return True

        return await self._db.run(work)

    async def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was recorded."""
        return await self._get(InboxEvent, event_id) is not None


class PlanStore(_Store):
    """Director threads and their state (running, waiting, done)."""

    async def get(self, plan_id: str) -> Plan | None:
        """The plan, or None."""
        return await self._get(Plan, plan_id)

    async def finish(self, plan_id: str, *, status: str,
                     deliveries: list[dict[str, Any]]) -> list[int]:
        """Move a plan to ``status`` (``waiting`` or ``done``) and queue its replies, in one
        transaction; return the delivery ids in order."""
        now = utcnow()

        def work(conn: Connection) -> list[int]:
            conn.execute(update(Plan).where(Plan.id == plan_id)
                         .values(status=status, updated_at=now))
            return [conn.execute(insert(Delivery).values(
                status="pending", attempts=0, created_at=now, **values
            ).returning(Delivery.id)).scalar_one() for values in deliveries]

        return await self._db.run(work)

    async def claim(self, plan_id: str, *, owner: str, until: datetime,
                    now: datetime | None = None) -> bool:
        """Take (or renew) the lease on ``plan_id`` for ``owner`` until ``until``, unless
        another owner holds a live one. One conditional UPDATE: of two instances, one wins."""
        now = now or utcnow()
        free = or_(Plan.lease_owner.is_(None), Plan.lease_owner == owner, Plan.lease_until < now)
        statement = (update(Plan).where(Plan.id == plan_id, free)
                     .values(lease_owner=owner, lease_until=until, wanted=False)
                     .returning(Plan.id))
        return bool(await self._db.run(lambda conn: conn.execute(statement).all()))

    async def want(self, plan_id: str) -> None:
        """Ask the lease holder of ``plan_id`` to continue it once more before letting go."""
        statement = update(Plan).where(Plan.id == plan_id).values(wanted=True)
        await self._db.run(lambda conn: discard_result(conn, statement))

    async def release(self, plan_id: str, *, owner: str) -> bool:
        """Let go of ``owner``'s lease on ``plan_id``; whether someone asked for it meanwhile
        (then the caller claims it again and continues)."""
        statement = (update(Plan).where(Plan.id == plan_id, Plan.lease_owner == owner)
                     .values(lease_owner=None, lease_until=None).returning(Plan.wanted))
        rows = await self._db.run(lambda conn: conn.execute(statement).all())
        return bool(rows and rows[0][0])

    async def leases(self) -> dict[str, str]:
        """Plan → the owner of its lease, for every plan held now (live or expired)."""
        query = select(Plan.id, Plan.lease_owner).where(Plan.lease_owner.is_not(None))
        return dict(await self._db.run(lambda conn: conn.execute(query).all()))

    async def break_lease(self, plan_id: str, *, owner: str) -> bool:
        """End ``owner``'s lease on ``plan_id`` (known dead) and mark the plan wanted, unless
        the lease changed hands meanwhile."""
        statement = (update(Plan).where(Plan.id == plan_id, Plan.lease_owner == owner)
                     .values(lease_owner=None, lease_until=None, wanted=True)
                     .returning(Plan.id))
        return bool(await self._db.run(lambda conn: conn.execute(statement).all()))

    async def orphaned(self, *, now: datetime, quiet: timedelta) -> list[str]:
        """Unfinished plans nobody holds that need continuing: asked for while held, or
        running with no live lease and untouched for ``quiet`` (its instance died mid-run)."""
        unheld = or_(Plan.lease_owner.is_(None), Plan.lease_until < now)
        stuck = (Plan.status == "running") & (Plan.updated_at < now - quiet)
        query = (select(Plan.id).where(Plan.status.not_in(("done", "archived")), unheld,
                                       or_(Plan.wanted.is_(True), stuck))
                 .order_by(Plan.created_at))
        return await self._db.run(lambda conn: list(conn.execute(query).scalars()))

    async def unfinished(self) -> Sequence[Plan]:
        """Plans not finished, oldest first (the reconciler continues them)."""
        return await self._all(select(Plan).where(Plan.status.not_in(("done", "archived")))
                               .order_by(Plan.created_at))

    async def archive_done(self, *, before: datetime, limit: int = 1000) -> list[str]:
        """Mark up to ``limit`` plans finished before ``before`` as archived; return their ids
        (their checkpoints can go; the plan rows and the audit log stay)."""
        statement = (update(Plan).where(Plan.id.in_(
            select(Plan.id).where(Plan.status == "done", Plan.updated_at < before)
            .limit(limit).scalar_subquery())).values(status="archived").returning(Plan.id))
        return await self._db.run(lambda conn: list(conn.execute(statement).scalars()))

    async def count_by_status(self) -> dict[str, int]:
        """Number of plans per status."""
        return await self._db.run(lambda conn: dict(conn.execute(
            select(Plan.status, func.count()).group_by(Plan.status)).all()))

    async def find(self, prefix: str) -> Plan | None:
        """The plan whose id is or starts with ``prefix`` (at least 6 characters), or None
        when none or several match."""
        if len(prefix) < 6:
            return None
        found = await self._all(select(Plan).where(Plan.id.startswith(prefix, autoescape=True))
                                .limit(2))
        return found[0] if len(found) == 1 else None

    async def recent(self, limit: int = 10) -> Sequence[Plan]:
        """Open plans first (running, waiting), then the latest others; newest first."""
        open_first = case((Plan.status.in_(("running", "waiting")), 0), else_=1)
        return await self._all(select(Plan).order_by(open_first, Plan.created_at.desc())
                               .limit(limit))

    async def record_steps(self, plan_id: str, steps: list[dict[str, Any]]) -> None:
        """Store (or refresh) the steps of ``plan_id`` as proposed: ``position``, ``action``,
        ``depends_on``, ``risk``, ``diff``, ``status``, ``idempotency_key`` each. A step that
        decided or started already keeps its status (re-running the gate after a crash)."""
        now = utcnow()
        settled = PlanStep.status.not_in(("proposed", "waiting"))

        def work(conn: Connection) -> None:
            for step in steps:
                values = {"plan_id": plan_id, "kind": step["action"]["kind"],
                          "connector": step["action"]["connector"], "updated_at": now,
                          **{k: step[k] for k in ("position", "action", "depends_on", "risk",
                                                   "diff", "status", "idempotency_key")}}
                conn.execute(dialect_insert(conn)(PlanStep).values(**values).on_conflict_do_update(
                    index_elements=[PlanStep.plan_id, PlanStep.position],
                    set_={"status": case((settled, PlanStep.status), else_=values["status"]),
                          "diff": values["diff"], "risk": values["risk"],
                          "updated_at": now}))

        await self._db.run(work)

    async def set_step_status(self, plan_id: str, statuses: dict[int, str]) -> None:
        """Set the status of steps that have not started (by position), in one transaction."""
        now = utcnow()

        def work(conn: Connection) -> None:
            for position, status in statuses.items():
                conn.execute(update(PlanStep).where(
                    PlanStep.plan_id == plan_id, PlanStep.position == position,
                    PlanStep.status.not_in(("running", "done", "failed")),
                ).values(status=status, updated_at=now))

        await self._db.run(work)

    async def held_until(self, plan_id: str, now: datetime | None = None) -> datetime | None:
        """The latest end of an undo window still open on an approved step of ``plan_id``."""
        now = now or utcnow()
        return await self._db.run(lambda conn: conn.execute(
            select(func.max(PlanStep.hold_until)).where(
                PlanStep.plan_id == plan_id, PlanStep.status == "approved",
                PlanStep.hold_until > now)).scalar())

    async def undo(self, plan_id: str, *, actor: str, channel: str, position: int | None = None,
                   now: datetime | None = None) -> list[int]:
        """Take back approved steps still inside their undo window (all, or the one at
        ``position``), audited in the same transaction; return the positions undone. One
        conditional UPDATE: a step that has started running can no longer be undone."""
        now = now or utcnow()
        statement = update(PlanStep).where(
            PlanStep.plan_id == plan_id, PlanStep.status == "approved",
            PlanStep.hold_until > now)
        if position is not None:
            statement = statement.where(PlanStep.position == position)
        statement = statement.values(status="undone", updated_at=now).returning(
            PlanStep.position)

        def work(conn: Connection) -> list[int]:
            undone = sorted(conn.execute(statement).scalars())
            if undone:
                discard_result(conn, _audit_insert(conn, {
                    "actor": actor, "channel": channel, "plan_id": plan_id,
                    "decision": "undone", "detail": {"steps": [p + 1 for p in undone]}}))
            return undone

        return await self._db.run(work)

    async def steps(self, plan_id: str) -> Sequence[PlanStep]:
        """The steps of ``plan_id`` in order."""
        return (await self.steps_of([plan_id])).get(plan_id, [])

    async def steps_of(self, plan_ids: Sequence[str]) -> dict[str, list[PlanStep]]:
        """The steps of each of ``plan_ids`` in order, in one query (plans without steps are
        left out)."""
        found: dict[str, list[PlanStep]] = {}
        for step in await self._all(select(PlanStep).where(PlanStep.plan_id.in_(plan_ids))
                                    .order_by(PlanStep.plan_id, PlanStep.position)):
            found.setdefault(step.plan_id, []).append(step)
        return found


class ApprovalStore(_Store):
    """Approval rows: one per risky step, decided once."""

    async def ensure(self, **values: Any) -> Approval:
        """Create the approval ``values["id"]`` unless it exists; return the stored row.

        Ids derive from the plan and step, so re-running the node that asks is harmless.
        """
        values.setdefault("status", "pending")
        values.setdefault("created_at", utcnow())
        values.setdefault("card_refs", {})

        def work(conn: Connection) -> Approval:
            discard_result(conn, insert_ignore(conn, Approval, values))
            return read_orm(conn, lambda s: s.get(Approval, values["id"]))

        return await self._db.run(work)

    async def get(self, approval_id: str) -> Approval | None:
        """The approval, or None."""
        return await self._get(Approval, approval_id)

    async def press_context(self, approval_id: str, event_id: str
                            ) -> tuple[bool, Approval | None, list[PlanStep]]:
        """What a button press needs, in one read: whether its event ``event_id`` was seen,
        the approval, and its plan's steps in order."""
        def work(conn: Connection) -> tuple[bool, Approval | None, list[PlanStep]]:
            def read(session: Any) -> tuple[bool, Approval | None, list[PlanStep]]:
                seen = session.get(InboxEvent, event_id) is not None
                approval = session.get(Approval, approval_id) if approval_id else None
                steps = list(session.scalars(select(PlanStep).where(
                    PlanStep.plan_id == approval.plan_id).order_by(PlanStep.position))) \
                    if approval is not None else []
                return seen, approval, steps
            return read_orm(conn, read)

        return await self._db.run(work)

    async def decide(self, approval_id: str, *, status: str, actor: str,
                     now: datetime | None = None, audit: dict[str, Any] | None = None,
                     holds: dict[int, datetime] | None = None,
                     event: tuple[str, str] | None = None) -> bool:
        """Set a pending, unexpired approval to ``status`` and every step still waiting on it
        to the same verdict (approved steps held until ``holds[position]`` where given); True
        only for the one caller that won (whose ``audit`` event is appended in the same
        transaction). ``event``: the press's ``(event id, channel)``, recorded in the inbox in
        the same transaction, won or lost (one transaction on the path a platform waits on)."""
        now = now or utcnow()
        statement = (update(Approval)
                     .where(Approval.id == approval_id, Approval.status == "pending",
                            Approval.expires_at > now)
                     .values(status=status, decided_by=actor, decided_at=now, editing=None)
                     .returning(Approval.plan_id))

        def work(conn: Connection) -> bool:
            if event is not None:
                discard_result(conn, insert_ignore(conn, InboxEvent, {
                    "id": event[0], "channel": event[1], "received_at": now}))
            plan_id = conn.execute(statement).scalar()
            if plan_id is None:
                return False
            _settle_waiting(conn, plan_id, status, now, holds or {})
            if audit is not None:
                discard_result(conn, _audit_insert(conn, audit))
            return True

        return await self._db.run(work)

    async def decide_step(self, approval_id: str, *, position: int, status: str, actor: str,
                          now: datetime | None = None, audit: dict[str, Any] | None = None,
                          hold_until: datetime | None = None) -> tuple[bool, bool]:
        """Decide one waiting step of a pending, unexpired approval. When it was the last step
        waiting, the approval itself is decided too: approved if any of its steps was.

        The approval row is locked first, so two presses on different steps of one card are
        serialised and exactly one of them sees that no step is left waiting.

        Returns:
            Whether this press won, and whether the approval is now decided.
        """
        now = now or utcnow()

        def work(conn: Connection) -> tuple[bool, bool]:
            plan_id = conn.execute(select(Approval.plan_id).where(
                Approval.id == approval_id, Approval.status == "pending",
                Approval.expires_at > now).with_for_update()).scalar()
            if plan_id is None:
                return False, False
            won = conn.execute(update(PlanStep).where(
                PlanStep.plan_id == plan_id, PlanStep.position == position,
                PlanStep.status == "waiting",
            ).values(status=status, hold_until=hold_until if status == "approved" else None,
                     updated_at=now).returning(PlanStep.position)).first() is not None
            if not won:
                return False, False
            if audit is not None:
                discard_result(conn, _audit_insert(conn, audit))
            statuses = list(conn.execute(select(PlanStep.status).where(
                PlanStep.plan_id == plan_id)).scalars())
            if "waiting" in statuses:
                return True, False
            verdict = "approved" if "approved" in statuses else "rejected"
            conn.execute(update(Approval).where(Approval.id == approval_id).values(
                status=verdict, decided_by=actor, decided_at=now, editing=None))
            return True, True

        return await self._db.run(work)

    async def start_edit(self, approval_id: str, *, editing: dict[str, Any]) -> bool:
        """Mark a pending approval as being edited (``editing``: actor, channel, step); False
        if it is no longer pending."""
        statement = (update(Approval).where(Approval.id == approval_id,
                                            Approval.status == "pending")
                     .values(editing=editing).returning(Approval.id))
        return await self._db.run(lambda conn: conn.execute(statement).first() is not None)

    async def being_edited(self, *, channel: str, actor: str) -> Approval | None:
        """The pending approval ``actor`` on ``channel`` is writing an edit for, if any."""
        for approval in await self._all(select(Approval).where(
                Approval.status == "pending", Approval.editing.is_not(None))
                .order_by(Approval.created_at.desc())):
            if approval.editing and approval.editing.get("channel") == channel \
                    and approval.editing.get("actor") == actor:
                return approval
        return None

    async def supersede(self, approval_id: str, *, position: int, action: dict[str, Any],
                        actor: str, now: datetime | None = None,
                        audit: dict[str, Any] | None = None) -> bool:
        """Apply an edit: the pending approval becomes superseded, the step at ``position``
        gets its new ``action``, and every step of the plan that has not run is proposed again
        (a new approval covers the new version). One transaction; False if it lost the race
        with a decision or expiry."""
        now = now or utcnow()
        statement = (update(Approval)
                     .where(Approval.id == approval_id, Approval.status == "pending",
                            Approval.expires_at > now)
                     .values(status="superseded", decided_by=actor, decided_at=now,
                             editing=None, completed_at=now)
                     .returning(Approval.plan_id))

        def work(conn: Connection) -> bool:
            plan_id = conn.execute(statement).scalar()
            if plan_id is None:
                return False
            conn.execute(update(PlanStep).where(
                PlanStep.plan_id == plan_id, PlanStep.position == position,
            ).values(action=action, updated_at=now))
            conn.execute(update(PlanStep).where(
                PlanStep.plan_id == plan_id,
                PlanStep.status.in_(("waiting", "approved", "rejected")),
            ).values(status="proposed", hold_until=None, updated_at=now))
            if audit is not None:
                discard_result(conn, _audit_insert(conn, audit))
            return True

        return await self._db.run(work)

    async def expire_due(self, now: datetime | None = None) -> list[str]:
        """Mark pending approvals past their expiry as expired; return their ids."""
        now = now or utcnow()
        statement = (update(Approval)
                     .where(Approval.status == "pending", Approval.expires_at <= now)
                     .values(status="expired", decided_by="system:expiry", decided_at=now,
                             editing=None)
                     .returning(Approval.id, Approval.plan_id))

        def work(conn: Connection) -> list[str]:
            expired = conn.execute(statement).all()
            for _, plan_id in expired:
                _settle_waiting(conn, plan_id, "expired", now, {})
            return [approval_id for approval_id, _ in expired]

        return await self._db.run(work)

    async def attach_card(self, approval_id: str, channel: str, ref: Any) -> bool:
        """Remember where a card for this approval was posted, to edit every copy after the
        decision (``card_refs`` is ``{channel: [ref, ...]}``; a card may be posted again).
        Returns True if ``ref`` was new."""
        def work(conn: Connection) -> bool:
            refs = conn.execute(select(Approval.card_refs).where(Approval.id == approval_id)
                                .with_for_update()).scalar()
            if refs is None or ref in refs.get(channel, []):
                return False
            conn.execute(update(Approval).where(Approval.id == approval_id).values(
                card_refs={**refs, channel: [*refs.get(channel, []), ref]}))
            return True

        return await self._db.run(work)

    async def complete(self, approval_id: str, *, receipt_id: str | None) -> None:
        """Mark the decided approval's plan step as finished."""
        statement = (update(Approval).where(Approval.id == approval_id)
                     .values(completed_at=utcnow(), receipt_id=receipt_id))
        await self._db.run(lambda conn: discard_result(conn, statement))

    async def escalate(self, approval_id: str, *, from_level: int) -> bool:
        """Move a pending approval one rung up the ladder; True for the one caller that did."""
        statement = (update(Approval).where(Approval.id == approval_id,
                                            Approval.status == "pending",
                                            Approval.escalation_level == from_level)
                     .values(escalation_level=from_level + 1).returning(Approval.id))
        return await self._db.run(lambda conn: conn.execute(statement).first() is not None)

    async def pending(self) -> Sequence[Approval]:
        """Approvals waiting for a decision, oldest first."""
        return await self._all(select(Approval).where(Approval.status == "pending")
                               .order_by(Approval.created_at))

    async def for_plan(self, plan_id: str) -> Sequence[Approval]:
        """Every approval of ``plan_id`` (its steps' and any budget card), oldest first."""
        return await self._all(select(Approval).where(Approval.plan_id == plan_id)
                               .order_by(Approval.created_at))


class OutboxStore(_Store):
    """External effects, each keyed by its idempotency key."""

    async def begin(self, *, key: str, plan_id: str, connector: str,
                    action: dict[str, Any]) -> tuple[Row, int]:
        """Write (or find) the row for ``key`` and count one more attempt, before the call.

        One upsert: a new key is inserted in flight; an unfinished one counts one more attempt;
        a finished one (done, failed) is returned unchanged.

        Returns:
            The row, and how many attempts were recorded before this one (0 on first try;
            more means an earlier attempt may have reached the target).
        """
        now = utcnow()
        unfinished = OutboxEntry.status == "in_flight"

        def work(conn: Connection) -> tuple[Row, int]:
            statement = dialect_insert(conn)(OutboxEntry).values(
                key=key, plan_id=plan_id, connector=connector, action=action,
                status="in_flight", attempts=1, created_at=now, updated_at=now,
            ).on_conflict_do_update(
                index_elements=[OutboxEntry.key],
                set_={"attempts": case((unfinished, OutboxEntry.attempts + 1),
                                       else_=OutboxEntry.attempts),
                      "updated_at": case((unfinished, literal(now, UTCDateTime())),
                                         else_=OutboxEntry.updated_at)},
            ).returning(*OutboxEntry.__table__.c)
            row = conn.execute(statement).one()
            if row.status == "in_flight":
                _step_settles(conn, key, {"status": "running"}, now)
            return row, row.attempts - 1 if row.status == "in_flight" else row.attempts

        return await self._db.run(work)

    async def finish(self, key: str, *, receipt: dict[str, Any],
                     audit: dict[str, Any] | None = None) -> None:
        """Mark ``key`` done with its receipt (and append ``audit`` in the same transaction)."""
        await self._settle(key, {"status": "done", "receipt": receipt},
                           {"status": "done", "receipt": receipt, "error": None}, audit)

    async def fail(self, key: str, *, error: str, audit: dict[str, Any] | None = None) -> None:
        """Mark ``key`` failed for good (and append ``audit`` in the same transaction)."""
        await self._settle(key, {"status": "failed", "last_error": error},
                           {"status": "failed", "error": error}, audit)

    async def reopen(self, key: str) -> bool:
        """Make a failed ``key`` eligible for one more attempt under the same key (the operator
        fixed the cause and asked to retry). False unless it had failed."""
        def work(conn: Connection) -> bool:
            reopened = conn.execute(update(OutboxEntry).where(
                OutboxEntry.key == key, OutboxEntry.status == "failed",
            ).values(status="in_flight", updated_at=utcnow()).returning(OutboxEntry.key)).all()
            return bool(reopened)

        return await self._db.run(work)

    async def settle_failed(self, key: str, *, status: str, receipt: dict[str, Any] | None,
                            audit: dict[str, Any]) -> bool:
        """The operator's word on a failed ``key``: ``done`` (it did happen; ``receipt`` says
        so) or ``dropped`` (leave it undone for good). One conditional UPDATE: False when the key
        is no longer failed (a retry reopened it, or another decision came first)."""
        now = utcnow()

        def work(conn: Connection) -> bool:
            settled = conn.execute(update(OutboxEntry).where(
                OutboxEntry.key == key, OutboxEntry.status == "failed",
            ).values(status=status, receipt=receipt, updated_at=now)
                .returning(OutboxEntry.key)).all()
            if not settled:
                return False
            _step_settles(conn, key, {"status": status, "receipt": receipt}, now)
            discard_result(conn, _audit_insert(conn, audit))
            return True

        return await self._db.run(work)

    async def _settle(self, key: str, values: dict[str, Any], step: dict[str, Any],
                      audit: dict[str, Any] | None) -> None:
        now = utcnow()

        def work(conn: Connection) -> None:
            conn.execute(update(OutboxEntry).where(OutboxEntry.key == key)
                         .values(updated_at=now, **values))
            _step_settles(conn, key, step, now)
            if audit is not None:
                discard_result(conn, _audit_insert(conn, audit))

        await self._db.run(work)

    async def get(self, key: str) -> OutboxEntry | None:
        """The row for ``key``, or None."""
        return await self._get(OutboxEntry, key)

    async def by_receipt(self, receipt_id: str) -> OutboxEntry | None:
        """The done row whose receipt is ``receipt_id``, or None."""
        found = await self._all(select(OutboxEntry).where(
            OutboxEntry.status == "done",
            OutboxEntry.receipt["id"].as_string() == receipt_id).limit(1))
        return found[0] if found else None

    async def count_by_status(self) -> dict[str, int]:
        """Number of rows per status."""
        return await self._db.run(lambda conn: dict(conn.execute(
            select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all()))


class AuditLog(_Store):
    """The append-only audit log."""

    async def append(self, **values: Any) -> None:
        """Append one event. With ``dedup_key``, appending the same event twice writes it once."""
        await self._db.run(lambda conn: discard_result(conn, _audit_insert(conn, values)))

    async def recent(self, limit: int = 20) -> Sequence[AuditEvent]:
        """The newest events, newest first."""
        return await self._all(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))

    async def between(self, since: datetime, until: datetime) -> Sequence[AuditEvent]:
        """Events in ``[since, until)``, oldest first."""
        return await self._all(select(AuditEvent).where(AuditEvent.at >= since,
                                                        AuditEvent.at < until)
                               .order_by(AuditEvent.id))

    async def model_cost(self, *, since: datetime | None = None,
                         plan_id: str | None = None) -> tuple[float, int]:
        """Cost in USD and number of model calls recorded (since ``since``, for ``plan_id``)."""
        query = select(func.coalesce(func.sum(AuditEvent.cost_usd), 0.0), func.count()).where(
            AuditEvent.model.is_not(None))
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if plan_id is not None:
            query = query.where(AuditEvent.plan_id == plan_id)
        cost, calls = await self._db.run(lambda conn: conn.execute(query).one())
        return float(cost), int(calls)

    async def count(self) -> int:
        """Number of events."""
        return await self._db.run(lambda conn: conn.execute(
            select(func.count()).select_from(AuditEvent)).scalar_one())


class JobStore(_Store):
    """Scheduled jobs, claimed under a time-limited lease."""

    async def put(self, *, id: str, kind: str, payload: dict[str, Any], due_at: datetime,
                  missed_policy: str = "catch_up_within:3600", replace: bool = False) -> None:
        """Schedule a job (idempotent by ``id``; ``replace``: an existing one is rescheduled
        with these values, whatever its state)."""
        values = {"id": id, "kind": kind, "payload": payload, "due_at": due_at,
                  "missed_policy": missed_policy, "status": "scheduled", "created_at": utcnow()}

        def work(conn: Connection) -> None:
            if not replace:
                discard_result(conn, insert_ignore(conn, Job, values))
                return
            insert = dialect_insert(conn)(Job).values(**values)
            conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_={
                "kind": kind, "payload": payload, "due_at": due_at,
                "missed_policy": missed_policy, "status": "scheduled", "lease_owner": None,
                "lease_until": None, "last_error": None}))
        await self._db.run(work)

    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta,
                        limit: int = 10) -> list[Job]:
        """Lease up to ``limit`` due jobs to ``owner``; a job is leased to one owner at a time."""
        free = (Job.lease_until.is_(None)) | (Job.lease_until < now)
        candidates = (select(Job.id).where(Job.status == "scheduled", Job.due_at <= now, free)
                      .order_by(Job.due_at).limit(limit))

        def work(conn: Connection) -> list[Job]:
            ids = conn.execute(update(Job).where(
                Job.id.in_(candidates.scalar_subquery()), Job.status == "scheduled", free)
                .values(lease_owner=owner, lease_until=now + lease)
                .returning(Job.id)).scalars().all()
            return read_orm(conn, lambda s: list(s.scalars(
                select(Job).where(Job.id.in_(ids)).order_by(Job.due_at))))

        return await self._db.run(work)

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
        statement = (update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                     .values(**values).returning(Job.id))
        return await self._db.run(lambda conn: conn.execute(statement).first() is not None)

    async def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        return await self._get(Job, job_id)

    async def scheduled(self, kind: str) -> Sequence[Job]:
        """Scheduled jobs of ``kind``, soonest first."""
        return await self._all(select(Job).where(Job.kind == kind, Job.status == "scheduled")
                               .order_by(Job.due_at))

    async def cancel(self, job_id: str) -> bool:
        """Cancel a scheduled job; False if there is none by that id."""
        statement = (update(Job).where(Job.id == job_id, Job.status == "scheduled")
                     .values(status="cancelled").returning(Job.id))
        return await self._db.run(lambda conn: conn.execute(statement).first() is not None)


class DeliveryStore(_Store):
    """Replies waiting to be accepted by a chat platform (at-least-once, in order per chat)."""

    async def add(self, *, channel: str, chat: str, kind: str, payload: dict[str, Any]) -> int:
        """Queue one reply; return its id."""
        statement = insert(Delivery).values(
            channel=channel, chat=chat, kind=kind, payload=payload, status="pending",
            attempts=0, created_at=utcnow()).returning(Delivery.id)
        return await self._db.run(lambda conn: conn.execute(statement).scalar_one())

    async def pending(self, channel: str) -> Sequence[Delivery]:
        """Pending replies of ``channel`` in the order they were queued."""
        return await self._all(select(Delivery).where(
            Delivery.channel == channel, Delivery.status == "pending").order_by(Delivery.id))

    async def claim(self, delivery_id: int, *, owner: str, until: datetime) -> bool:
        """Take (or renew) the right to send a pending reply until ``until``, unless another
        instance holds it (one conditional UPDATE)."""
        now = utcnow()
        statement = (update(Delivery).where(
            Delivery.id == delivery_id, Delivery.status == "pending",
            or_(Delivery.lease_owner.is_(None), Delivery.lease_owner == owner,
                Delivery.lease_until < now))
            .values(lease_owner=owner, lease_until=until).returning(Delivery.id))
        return bool(await self._db.run(lambda conn: conn.execute(statement).all()))

    async def break_leases(self, owners: Sequence[str]) -> int:
        """End the leases of ``owners`` (known dead) on pending replies; how many."""
        if not owners:
            return 0
        statement = (update(Delivery).where(Delivery.status == "pending",
                                            Delivery.lease_owner.in_(list(owners)))
                     .values(lease_owner=None, lease_until=None).returning(Delivery.id))
        return len(await self._db.run(lambda conn: conn.execute(statement).all()))

    async def lease_owners(self) -> set[str]:
        """Owners holding leases on pending replies."""
        query = select(Delivery.lease_owner).where(Delivery.status == "pending",
                                                   Delivery.lease_owner.is_not(None)).distinct()
        return set(await self._db.run(lambda conn: list(conn.execute(query).scalars())))

    async def unclaimed(self, channel: str, *, older_than: datetime) -> Sequence[Delivery]:
        """Pending replies of ``channel`` queued before ``older_than`` that no instance holds
        (their sender died), in order."""
        return await self._all(select(Delivery).where(
            Delivery.channel == channel, Delivery.status == "pending",
            Delivery.created_at < older_than,
            or_(Delivery.lease_owner.is_(None), Delivery.lease_until < utcnow()))
            .order_by(Delivery.id))

    async def settle(self, delivery_id: int, *, status: str, error: str | None = None) -> None:
        """Mark a reply ``sent`` or ``failed``."""
        statement = (update(Delivery).where(Delivery.id == delivery_id)
                     .values(status=status, last_error=error, attempts=Delivery.attempts + 1))
        await self._db.run(lambda conn: discard_result(conn, statement))

    async def count_pending(self) -> int:
        """Replies not yet accepted, all channels."""
        return await self._db.run(lambda conn: conn.execute(
            select(func.count()).select_from(Delivery)
            .where(Delivery.status == "pending")).scalar_one())
