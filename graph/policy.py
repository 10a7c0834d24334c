"""The policy: how risky each action is, and how long an approval may wait."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from connectors.base import Action

RISKS = ("low", "medium", "high")
BUILTIN_RISK = {"note.create": "low", "memory.remember": "low", "memory.forget": "low",
                "reminder.create": "low", "reminder.cancel": "low", "task.create": "low",
                "task.done": "low", "calendar.create": "medium", "calendar.move": "medium",
                "calendar.cancel": "medium", "email.send": "high"}
"""Tiers that hold unless config says otherwise (what the operator asked of Solo OS itself, and
notes); anything unlisted is ``default_risk``."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Risk tiers and approval expiry.

    Attributes:
        risk: risk per connector name (``webhook:crm``) or action kind (``note.create``); the
            connector name wins, then the kind, then :data:`BUILTIN_RISK`, then
            ``default_risk``.
        default_risk: for anything the table does not name; high, so new connectors start safe.
        approval_ttl: how long a card stays answerable.
        undo_seconds: per action kind or connector name, how long an approved step is held
            with an Undo button before it runs (unlisted or 0: it runs at once).
    """

    risk: dict[str, str] = field(default_factory=dict)
    default_risk: str = "high"
    approval_ttl: timedelta = timedelta(hours=24)
    undo_seconds: dict[str, int] = field(default_factory=dict)

    def risk_for(self, action: Action, suggested: str | None = None) -> str:
        """The risk tier of ``action``; ``suggested`` is the connector's own view (an MCP
        tool's configured or trusted tier), used after config and before the built-in tiers."""
        return self.risk.get(action.connector) or self.risk.get(action.kind) or suggested or \
            BUILTIN_RISK.get(action.kind) or self.default_risk

    def undo_window(self, action: dict[str, Any]) -> timedelta:
        """How long ``action`` (an action's JSON form) is held after its approval."""
        seconds = self.undo_seconds.get(action["connector"]) or \
            self.undo_seconds.get(action["kind"]) or 0
        return timedelta(seconds=seconds)

    @staticmethod
    def needs_approval(risk: str) -> bool:
        """Low risk runs at once; medium and high wait for the operator."""
        return risk != "low"
