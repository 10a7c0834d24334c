"""The connector contract: preview an action as a diff, execute it once, reconcile after a crash.

Every effect carries an idempotency key derived from durable ids by the caller. A connector never
invents keys; it passes them on to the target (header, file name, Message-ID...) so that a retry
or a re-send after a crash can be recognised.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class ConnectorError(Exception):
    """Base of the errors a connector raises."""


class TransientError(ConnectorError):
    """Worth retrying with backoff (timeouts, 5xx, 429).

    Attributes:
        retry_after: seconds the target asked us to wait, when it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """Credentials were refused; the operator has to reconnect. Not retried."""


class PermanentError(ConnectorError):
    """The target refused the action for good (4xx, invalid input). Not retried."""


class OutcomeUnknown(PermanentError):
    """An effect was in flight when the process stopped and the target cannot be asked whether
    it happened (nor is the action known to be safe to repeat): it is not repeated without the
    operator."""


@dataclass(frozen=True, slots=True)
class Action:
    """One step a plan asks a connector to perform.

    Attributes:
        kind: dotted action kind, e.g. ``"webhook.post"``; the policy's risk table is keyed by it.
        connector: the connector's name, e.g. ``"notes"`` or ``"webhook:crm"``.
        args: JSON-serialisable arguments.
    """

    kind: str
    connector: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Diff:
    """What an action will change, concise enough for a chat card.

    Attributes:
        title: one line, e.g. ``'POST to webhook "crm"'``.
        fields: ``(name, before, after)``; ``before`` is ``None`` for something new.
    """

    title: str
    fields: tuple[tuple[str, str | None, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored on the approval row."""
        return {"title": self.title, "fields": [list(f) for f in self.fields]}


def receipt_id_for(idempotency_key: str) -> str:
    """The receipt id of the effect keyed ``idempotency_key``; stable across retries, restarts."""
    return "r" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:9]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that an effect happened.

    Attributes:
        id: short stable id shown to the operator (``receipt <id>``).
        connector: connector name.
        idempotency_key: the key the effect was performed under.
        summary: one line for the operator.
        ref: the target's own reference (status code, file path, remote id).
        reconciled: True when the receipt was recovered after a crash rather than observed.
    """

    id: str
    connector: str
    idempotency_key: str
    summary: str
    ref: str = ""
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    reconciled: bool = False

    @classmethod
    def for_key(cls, *, connector: str, idempotency_key: str, summary: str, ref: str = "",
                reconciled: bool = False) -> Receipt:
        """A receipt whose id derives from the idempotency key."""
        return cls(id=receipt_id_for(idempotency_key), connector=connector,
                   idempotency_key=idempotency_key, summary=summary, ref=ref, reconciled=reconciled)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored on the outbox row."""
        return {"id": self.id, "connector": self.connector, "idempotency_key": self.idempotency_key,
                "summary": self.summary, "ref": self.ref, "at": self.at,
                "reconciled": self.reconciled}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


class Connector(ABC):
    """An external system. Implementations are constructed with their clients and settings."""

    name: str
    """Unique name, used in actions and receipts."""

    @abstractmethod
    async def preview(self, action: Action) -> Diff:
        """Describe what ``action`` would change. Must have no effect.

        Raises:
            PermanentError: the action is invalid for this connector.
        """

    @abstractmethod
    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Perform ``action`` once under ``idempotency_key`` (retrying transient failures).

        Raises:
            TransientError: still failing after the retry policy gave up.
            AuthError, PermanentError: not retried.
        """

    @abstractmethod
    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """After a crash: the receipt if the effect keyed ``idempotency_key`` (of ``action``)
        is known to have happened, else ``None`` (the caller may then re-send under the same
        key).

        Raises:
            PermanentError: it cannot be told, and sending again could double the effect; the
                operator decides.
        """

    def suggested_risk(self, action: Action) -> str | None:
        """The connector's own view of ``action``'s risk tier (e.g. from a trusted server's
        tool annotations), used when config names none; ``None``: no view."""
        return None

    async def compensate(self, receipt: Receipt) -> Action | None:
        """The action that takes back the effect ``receipt`` proves (proposed to the operator as
        a new plan, through the gate), or ``None`` where it cannot be taken back (a posted
        webhook, a sent email: those use an undo window before they run instead)."""
        return None
