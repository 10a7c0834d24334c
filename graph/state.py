"""The state of a plan thread, its ids, and what the nodes get to work with.

Ids derive from durable ids only (a platform event id, a plan id), never from randomness, so a
re-run after a crash finds the same rows and the same idempotency keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict
from zoneinfo import ZoneInfo

from langgraph.checkpoint.base import BaseCheckpointSaver

from connectors.base import Connector
from graph.budget import BudgetMeter
from graph.events import Inbound, Transcript
from graph.policy import Policy
from graph.understanding import Understander
from memory.knowledge import Memory
from memory.stores import Storage


def plan_id_for(channel: str, event_id: str) -> str:
    """The plan id of the plan started by platform event ``event_id`` on ``channel``."""
    return "p" + hashlib.sha256(f"{channel}:{event_id}".encode()).hexdigest()[:20]


def approval_id_for(plan_id: str, revision: int = 0) -> str:
    """The short, stable id of the approval of version ``revision`` of a plan (each edit makes
    a new version); it fits Telegram's 64-byte callback data."""
    seed = f"approval:{plan_id}" + (f":{revision}" if revision else "")
    digest = hashlib.sha256(seed.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:8]


def action_hash(action: dict[str, Any]) -> str:
    """A hash of the exact action (kind, connector, arguments): what an approval binds."""
    canonical = json.dumps(action, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_for(plan_id: str, step: int) -> str:
    """The idempotency key of step ``step`` of ``plan_id``: stable across retries and restarts."""
    return f"solo-{plan_id}-{step}"


@dataclass
class DirectorDeps:
    """What the nodes need, passed as LangGraph's run-time context.

    Attributes:
        connectors: by connector name (``notes``, ``webhook:crm``).
        webhooks: webhook name → connector name.
    """

    storage: Storage
    connectors: dict[str, Connector]
    webhooks: dict[str, str]
    policy: Policy
    understander: Understander
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    notes: str | None = "notes"
    memory: Memory | None = None
    notes_dir: Path | None = None
    hear: Callable[[Inbound], Awaitable[Transcript]] | None = None
    """Transcribes an inbound voice note (download through its adapter, then speech to text)."""
    fallback: Understander | None = None
    """Used when the model cannot be (provider down, budget kept)."""
    meter: BudgetMeter | None = None
    checkpointer: BaseCheckpointSaver | None = None
    """Read by ``/plan`` to show a plan's last checkpoint (set by the director)."""
    context_tokens: int = 800
    playbooks_dir: Path | None = None
    """Where the playbook files are (``<data_dir>/playbooks``)."""
    local_first: float | None = None
    """With a model: the offline understander's confidence at which its answer is taken without
    asking the model (None: the model first, the offline understander as fallback)."""


class PlanState(TypedDict, total=False):
    """The state of one plan thread (JSON-serialisable, so the checkpointer can keep it)."""

    plan_id: str
    inbound: dict[str, Any]
    intent: dict[str, Any]
    steps: list[dict[str, Any]]
    approval_id: str | None
    revision: int
    """How many times the operator edited the plan before deciding (0: never)."""
    decision: str | None
    verdicts: dict[str, str]
    """The decision on each step that needed one, by position (per-step decisions, undo)."""
    bound: dict[str, str]
    """The action hash each approved step was shown with, by position."""
    results: list[dict[str, Any]]
    replies: Annotated[list[dict[str, Any]], operator.add]
    """Appended to by each node (a notice from understanding, an answer, the receipts)."""


def say(text: str) -> dict[str, Any]:
    """A plain-text reply item of a node."""
    return {"kind": "message", "text": text}


Planned = dict[str, list[dict[str, Any]]]
"""What planning a request gives: ``steps`` to gate and run, and/or ``replies`` to say."""


def own_step(kind: str, **args: Any) -> Planned:
    """A plan of one step on Solo OS's own state (``graph.own_state``)."""
    return {"steps": [{"action": {"kind": kind, "connector": "solo", "args": args}}]}
