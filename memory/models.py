"""SQLAlchemy models of the durable state. The schema is created by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zones, so it stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware datetimes only; stored as UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}  # noqa: RUF012


class InboxEvent(Base):
    """A platform event seen once (Telegram ``update_id``, Slack ``event_id``...)."""

    __tablename__ = "inbox"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]


class Plan(Base):
    """One director thread: created with its inbox row, finished when its reply is built."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    inbox_id: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    inbound: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    wanted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Someone asked to continue it while another instance held its lease."""

    __table_args__ = (Index("ix_plans_status", "status"),)


class PlanStep(Base):
    """One step of a plan as the operator and the code read it (the LangGraph checkpoint stays
    the execution state).

    ``status``: proposed, waiting (for approval), approved, rejected, expired, running, done,
    failed, skipped (a step it depends on did not run) or undone (taken back inside its undo
    window). ``hold_until``: an approved step with an undo window does not run before it.
    """

    __tablename__ = "plan_steps"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    connector: Mapped[str] = mapped_column(String(100))
    action: Mapped[dict[str, Any]]
    depends_on: Mapped[list[int]] = mapped_column(JSON, default=list)
    risk: Mapped[str] = mapped_column(String(8))
    diff: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    hold_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_plan_steps_key", "idempotency_key"),)


class Approval(Base):
    """The operator's decision on the risky steps of one version of a plan.

    ``status``: pending, approved (at least one step approved), rejected, expired or superseded
    (an edit replaced it with a new approval). ``bound``: the hash of the exact action each step
    needing approval had when the card was shown (position → hash); only that runs.
    ``editing``: who is writing an edit, and of which step (cleared when it arrives).
    """

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    chat: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    risk: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    diff: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    card_refs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    receipt_id: Mapped[str | None] = mapped_column(String(32))
    completed_at: Mapped[datetime | None]
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bound: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    editing: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_approvals_status", "status"), Index("ix_approvals_plan", "plan_id"))


class OutboxEntry(Base):
    """An external effect: written before the call, marked done with its receipt after."""

    __tablename__ = "outbox"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    connector: Mapped[str] = mapped_column(String(100))
    action: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_outbox_status", "status"),)


class AuditEvent(Base):
    """Append-only record of what happened and who decided (a database trigger refuses edits)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str | None] = mapped_column(String(250), unique=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(32))
    plan_id: Mapped[str | None] = mapped_column(String(64))
    intent: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(64))
    connector: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    receipt_id: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_version: Mapped[str | None] = mapped_column(String(32))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_plan", "plan_id"))


class Job(Base):
    """A scheduled job, claimed under a lease so that two instances never run it twice."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    due_at: Mapped[datetime]
    missed_policy: Mapped[str] = mapped_column(String(32), default="catch_up_within:3600")
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_jobs_due", "status", "due_at"),)


class Delivery(Base):
    """A reply queued for a chat platform; kept until the platform accepted it."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    chat: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_deliveries_pending", "status", "channel", "id"),)


class MemoryItem(Base):
    """Something Solo OS remembers: a fact, a note, a receipt, an audit event, a conversation
    turn or a summary of turns. ``source`` is its provenance (event, file, audit id)."""

    __tablename__ = "memory_items"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    superseded_by: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_memory_kind_status", "kind", "status"),
                      Index("ix_memory_subject", "subject"))


class MemoryVector(Base):
    """An item's embedding, for the embedded exact index (float32 bytes)."""

    __tablename__ = "memory_vectors"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class MemoryMeta(Base):
    """Small counters and watermarks of the memory layer."""

    __tablename__ = "memory_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MailMessage(Base):
    """A message read from the operator's mailbox. ``(folder, uidvalidity, uid)`` is its durable
    position (nothing is stored twice); ``id`` is the short id the operator sees (``#12``). The
    body is data from outside: it is shown and indexed, never obeyed."""

    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(500))
    from_name: Mapped[str] = mapped_column(String(300))
    from_addr: Mapped[str] = mapped_column(String(300))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(1000))
    sent_at: Mapped[datetime | None]
    body: Mapped[str] = mapped_column(Text)
    references: Mapped[list[str]] = mapped_column(JSON)
    triage: Mapped[str] = mapped_column(String(16))
    """``needs_reply``, ``fyi`` or ``ignore``."""
    triage_by: Mapped[str] = mapped_column(String(16))
    """``rule`` (the operator's), ``local`` (the offline classifier) or ``model``."""
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("folder", "uidvalidity", "uid", name="uq_mail_position"),
                      Index("ix_mail_message_id", "message_id"))


class ConnectorHealth(Base):
    """Whether a connector's server answers: ``ok``, ``down`` (retried with backoff until
    ``retry_at``) or ``auth`` (credentials refused: the operator reconnects). ``told``: the
    operator was told of this state once already."""

    __tablename__ = "connector_health"

    connector: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime]
    retry_at: Mapped[datetime | None]
    told: Mapped[bool] = mapped_column(Boolean)


class PlaybookRun(Base):
    """One occurrence of a playbook (the run ledger): claimed once, across processes.

    ``status``: ``running`` (claimed), ``idle`` (nothing to do: ``detail`` says why),
    ``started`` (its action's plan, ``plan_id``, carries on: the plan's status is the run's),
    ``done`` (no action: the draft was said in chat) or ``failed``.
    """

    __tablename__ = "playbook_runs"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    playbook: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    occurrence: Mapped[datetime]
    manual: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    plan_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]

    __table_args__ = (Index("ix_playbook_runs_playbook", "playbook", "started_at"),)


class PlaybookVersion(Base):
    """A version of a playbook's file seen at load (``id`` = ``name@version``)."""

    __tablename__ = "playbook_versions"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    playbook: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    seen_at: Mapped[datetime]


class PlaybookState(Base):
    """What the operator set for a playbook beyond its file: paused or not."""

    __tablename__ = "playbook_state"

    playbook: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]
