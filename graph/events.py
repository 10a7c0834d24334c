"""What flows in and out of the director: normalised inbound events and replies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

PROPOSAL = "proposal"
"""What an outside agent proposed through ``solo mcp``: the kind of its job, and of the
attachment of the message it becomes (every step it leads to waits for the operator)."""
PLAYBOOK = "playbook"
"""A playbook run: the kind of its scheduled job, and of the attachment of the message its
action becomes (``external``: the text carries what it collected)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A platform event normalised by an adapter.

    Attributes:
        channel: adapter name (``console``, ``telegram``, ``slack``).
        chat: where replies go on that channel (chat id, channel id + thread).
        actor: the platform's user id.
        event_id: the platform's own event id (durable; the inbox deduplicates on it).
        text: the message text (empty for a button press).
        verb, approval_id: a button press (``approve``/``reject`` on an approval).
        attachment: JSON description of a file that came with the message, e.g.
            ``{"kind": "voice", "file_id": ..., "mime": ..., "duration": ...}``.
    """

    channel: str
    chat: str
    actor: str
    event_id: str
    text: str = ""
    verb: str | None = None
    approval_id: str | None = None
    attachment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored with the plan so a crashed plan can be re-run."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inbound:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ApprovalCard:
    """Everything an adapter needs to render an approval card (one card per plan).

    Attributes:
        approval_id: the id the buttons carry.
        steps: one per step of the plan: ``number`` (from 1), ``title``, ``fields``
            (``[[name, before, after], ...]``), ``risk``, ``decide`` (whether it waits for this
            card), ``status`` and ``held_until`` (inside an undo window, else None).
        status: pending, approved, rejected, expired or superseded.
        outcome: one line on what was decided (who, when, receipt), else empty.
        buttons: rows of ``(label, data)``; a press comes back as an inbound event with
            ``verb`` and ``approval_id`` split from ``data`` at its first ``:``.
        cost: the plan's model cost so far, in words.
    """

    approval_id: str
    reason: str
    risk: str
    steps: list[dict[str, Any]]
    expires_at: datetime
    status: str = "pending"
    outcome: str = ""
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)
    cost: str = "no model cost"

    @property
    def pending(self) -> bool:
        """Whether the card still takes a decision."""
        return self.status == "pending"

    @property
    def diffs(self) -> list[dict[str, Any]]:
        """Each step's diff: ``{"title": ..., "fields": ...}``."""
        return [{"title": s["title"], "fields": s["fields"]} for s in self.steps]


@dataclass(frozen=True, slots=True)
class Reply:
    """Something to show the operator: the one reply type, from the director to the adapters.

    Attributes:
        kind: ``message`` (text), ``card`` (post an approval card), ``card_update`` (show a
            posted card's new state), ``notice`` (a short answer to a button press; ephemeral
            where the platform allows) or ``choice`` (a question with buttons).
        channel, chat: the destination.
        approval_id: for cards: the approval, rendered when the card is shown (so it shows the
            approval's state at that moment).
        choices: for ``choice``: ``(label, data)``; a press comes back as an inbound event with
            ``verb="choose"`` and ``approval_id=data``.
    """

    kind: str
    channel: str
    chat: str
    text: str = ""
    approval_id: str | None = None
    delivery_id: int | None = None
    """Set when the reply is already queued in the ``deliveries`` table."""
    choices: list[tuple[str, str]] = field(default_factory=list)

    def delivery_payload(self) -> dict[str, Any]:
        """The reply's content as the delivery queue stores it and :func:`bot.dispatch.show`
        reads it."""
        if self.kind in ("card", "card_update"):
            return {"approval_id": self.approval_id}
        if self.kind == "choice":
            return {"text": self.text, "choices": [list(c) for c in self.choices]}
        return {"text": self.text}


class VoiceError(Exception):
    """A voice note cannot be used; the message says why, for the operator."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was heard in a voice note.

    Attributes:
        text: the words.
        confidence: 0..1 (the mean token probability the recogniser reports).
        seconds: the audio's duration.
    """

    text: str
    confidence: float
    seconds: float
