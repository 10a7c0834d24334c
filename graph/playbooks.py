"""Playbooks: the operator's recurring work as versioned plan templates with a trigger.

A playbook is a TOML file in ``<data_dir>/playbooks/`` (the schema is in ``docs/playbooks.md``)::

    description = "Friday update to the newsletter"
    enabled = true
    budget_usd = 0.05                      # model spend per run; over it, a card asks
    [trigger]
    schedule = "every friday at 16:00"     # or cron = "0 16 * * 5"; neither: /run NAME only
    missed = "catch_up"                    # or "skip"; catch_up runs once within grace_hours
    grace_hours = 12
    # hook = true, secret = "…": POST /hooks/NAME runs it; mail_from = "*@acme.example"
    # and/or mail_subject = "invoice": each new matching mail runs it; event_starting = 15
    # (and event_title = "call"): each calendar event, 15 minutes before it starts
    [[steps]]
    collect = ["notes", "receipts"]        # memory items since the last run
    [[steps]]
    only_if = "collected"                  # nothing collected: the run ends here, quietly
    [[steps]]
    draft = "This week: {items}"
    model = true                           # a model writes it from that (when one is set)
    [[steps]]
    send = "newsletter"                    # or note = true, or email = "a@b.c" + subject
                                           # (or curate = [...] earlier, then forget = true)

A file is validated whole at load (:func:`load_playbooks`): a broken one is reported with its
file and reason, and never half-runs. Its version is the hash of its text; a run keeps the
version it started with.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graph.cron import Cron
from graph.events import PLAYBOOK
from graph.scheduler import next_occurrence
from graph.timeparse import parse_when
from memory.models import PlaybookRun, utcnow
from memory.stores import Storage

ACTIONS = ("note", "send", "email", "forget")
STEP_KINDS = ("collect", "curate", "only_if", "draft", *ACTIONS)
JOB_PREFIX = "playbook:"
"""The id of a playbook's scheduled job is this plus its name."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MIN_SECRET = 16
EVENT_POLICY = "catch_up_within:86400"
"""An event's run still runs up to a day late (after downtime), once."""
MAX_EVENT_TEXT = 4000


class Trigger(BaseModel):
    """When a playbook runs by itself: on a schedule, on an event (a call of its webhook, a new
    mail matching a rule), or none of these: only ``/run NAME``."""

    model_config = ConfigDict(extra="forbid")
    schedule: str = Field("", description='natural language, e.g. "every friday at 16:00"')
    cron: str = ""
    missed: Literal["catch_up", "skip"] = "catch_up"
    grace_hours: float = Field(12.0, ge=0, le=24 * 14)
    hook: bool = Field(False, description="POST /hooks/NAME (with the secret) runs it")
    secret: str = Field("", description="the webhook's bearer token, 16 characters or more")
    mail_from: str = Field("", description='a new mail from a matching sender runs it, e.g. '
                                           '"*@acme.example"')
    mail_subject: str = Field("", description="a new mail whose subject contains this runs it")
    event_starting: int | None = Field(None, ge=0, le=24 * 60, description=(
        "a calendar event starting in this many minutes runs it"))
    event_title: str = Field("", description="only events whose title contains this")

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if self.schedule and self.cron:
            raise ValueError("give schedule or cron, not both")
        if self.cron:
            Cron.parse(self.cron)
        if self.hook and len(self.secret) < MIN_SECRET:
            raise ValueError(f"a hook needs a secret of at least {MIN_SECRET} characters")
        if self.secret and not self.hook:
            raise ValueError("secret belongs to hook = true")
        if self.event_title and self.event_starting is None:
            raise ValueError("event_title belongs to event_starting")
        return self

    def matches_mail(self, sender: str, subject: str) -> bool:
        """Whether a new mail from ``sender`` about ``subject`` runs the playbook."""
        if not (self.mail_from or self.mail_subject):
            return False
        return (not self.mail_from or fnmatch.fnmatch(sender.lower(), self.mail_from.lower())) \
            and (not self.mail_subject or self.mail_subject.lower() in subject.lower())


class Step(BaseModel):
    """One step: exactly one of ``collect``, ``curate``, ``only_if``, ``draft``, ``note``,
    ``send``, ``email``, ``forget``."""

    model_config = ConfigDict(extra="forbid")
    collect: list[Literal["notes", "receipts", "facts", "mail", "plans", "calendar"]] | None = \
        None
    curate: list[Literal["expired", "superseded", "duplicates"]] | None = Field(
        None, description="facts worth dropping, for a forget step")
    only_if: Literal["collected"] | None = None
    draft: str | None = Field(None, max_length=4000)
    model: bool = Field(False, description="a draft written by the model from the filled "
                                           "template (without a model: the filled template)")
    note: bool | None = None
    send: str | None = None
    email: str | None = None
    forget: bool | None = Field(None, description="drop what curate found (a card first)")
    subject: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(STEP_KINDS)} (this one "
                             f"has {', '.join(given) or 'none'})")
        if self.subject and not self.email:
            raise ValueError("subject belongs to an email step")
        if self.model and self.draft is None:
            raise ValueError("model belongs to a draft step")
        return self

    @property
    def kind(self) -> str:
        """Which of :data:`STEP_KINDS` this step is."""
        return next(k for k in STEP_KINDS if getattr(self, k) not in (None, False))


class PlaybookSpec(BaseModel):
    """The file's content."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    enabled: bool = False
    budget_usd: float = Field(0.05, ge=0, le=100,
                              description="model spend per run, USD (0: only the global caps)")
    trigger: Trigger = Field(default_factory=Trigger)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_effect_last(self) -> PlaybookSpec:
        effects = [i for i, s in enumerate(self.steps) if s.kind in ACTIONS]
        if len(effects) > 1 or (effects and effects[0] != len(self.steps) - 1):
            raise ValueError("a playbook has at most one action step (note, send, email or "
                             "forget), and it comes last")
        if any(s.kind == "forget" for s in self.steps) != any(s.kind == "curate"
                                                              for s in self.steps):
            raise ValueError("forget drops what a curate step found: give both, or neither")
        return self


@dataclass(frozen=True, slots=True)
class Playbook:
    """A loaded playbook: its name (the file's stem), spec and version (text hash)."""

    name: str
    spec: PlaybookSpec
    version: str

    def repeat(self, zone: ZoneInfo, now: datetime) -> str | None:
        """The scheduler's repeat for the trigger: ``cron:EXPR`` (a natural-language schedule
        is turned into one), or None for ``/run`` only."""
        trigger = self.spec.trigger
        if trigger.cron:
            return f"cron:{trigger.cron}"
        if trigger.schedule:
            return f"cron:{schedule_as_cron(trigger.schedule, zone, now)}"
        return None


def schedule_as_cron(text: str, zone: ZoneInfo, now: datetime) -> str:
    """A natural-language schedule as cron ("every friday at 16:00" → ``0 16 * * 5``).

    Raises:
        ValueError: it does not say a repeating time.
    """
    found = parse_when(text, now=now.astimezone(zone))
    if found is None or not found.repeat:
        raise ValueError(f"schedule {text!r} does not say a repeating time (e.g. \"every "
                         "friday at 16:00\", \"every day at 8\"); or use cron")
    at = found.at.astimezone(zone)
    weekday = (at.isoweekday() % 7) if found.repeat == "weekly" else "*"
    return f"{at.minute} {at.hour} * * {weekday}"


async def schedule(storage: Storage, playbook: Playbook, zone: ZoneInfo,
                   now: datetime) -> datetime | None:
    """(Re)write the playbook's job for its next occurrence; that time (None: not scheduled)."""
    repeat = playbook.repeat(zone, now)
    if repeat is None:
        return None
    due = next_occurrence(now, repeat, after=now, timezone=zone)
    trigger = playbook.spec.trigger
    policy = "skip_late" if trigger.missed == "skip" else \
        f"catch_up_within:{int(trigger.grace_hours * 3600)}"
    await storage.jobs.put(id=f"{JOB_PREFIX}{playbook.name}", kind=PLAYBOOK, due_at=due,
                           payload={"name": playbook.name, "repeat": repeat},
                           missed_policy=policy, replace=True)
    return due


async def put_event_run(storage: Storage, name: str, *, event: str, key: str, text: str,
                        due_at: datetime | None = None) -> str:
    """A run of playbook ``name`` for an event (``hook``, ``mail``, ``calendar``): a job due
    ``due_at`` (now by default) whose id derives from the event's key, so an event seen twice
    runs once; the run's id."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    await storage.jobs.put(id=f"event:{name}:{event}:{digest}", kind=PLAYBOOK,
                           due_at=due_at or utcnow(),
                           payload={"name": name, "event": event, "key": digest,
                                    "text": text[:MAX_EVENT_TEXT]},
                           missed_policy=EVENT_POLICY)
    return f"{name}@{event}/{digest}"


def load_playbooks(directory: Path) -> tuple[list[Playbook], list[str]]:
    """Every ``*.toml`` in ``directory``: the valid playbooks, and one error line per broken
    file (``name.toml: reason``)."""
    playbooks, errors = [], []
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        name = path.stem.lower()
        try:
            if not _NAME.match(name):
                raise ValueError("the file name must be lowercase letters, digits, - or _")
            spec = PlaybookSpec.model_validate(tomllib.loads(text))
            if spec.trigger.schedule:
                schedule_as_cron(spec.trigger.schedule, ZoneInfo("UTC"),
                                 datetime(2026, 1, 5, 12, tzinfo=ZoneInfo("UTC")))
        except (tomllib.TOMLDecodeError, ValidationError, ValueError) as exc:
            errors.append(f"{path.name}: {_reason(exc)}")
            continue
        version = hashlib.sha256(text.encode()).hexdigest()[:12]
        playbooks.append(Playbook(name=name, spec=spec, version=version))
    return playbooks, errors


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
                         for e in exc.errors())[:500]
    return str(exc)[:500]


def fill(template: str, values: dict[str, Any]) -> str:
    """``template`` with ``{items}``, ``{count}``, ``{since}``, ``{date}`` filled (unknown
    braces are left as written: a template is the operator's text, not code)."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", str(value))
    return out


async def run_outcome(storage: Storage, run: PlaybookRun) -> str:
    """A run's state: its own (idle, failed, done) or, once its plan started, the plan's."""
    status, detail, plan_id = run.status, run.detail, run.plan_id
    if status == "started" and plan_id:
        plan = await storage.plans.get(plan_id)
        steps = await storage.plans.steps(plan_id)
        receipts = [s.receipt["id"] for s in steps if s.receipt]
        status = plan.status if plan else "started"
        detail = f"plan {plan_id[:8]}" + (f", receipt {', '.join(receipts)}" if receipts else "")
    return f"{status}" + (f" ({detail})" if detail else "")
