"""The director: ``understand → plan → gate → (approve) → execute → record → reply``.

One LangGraph thread per plan, keyed by a plan id derived from the platform event id. Nodes
before ``execute_steps`` only read and write idempotent rows (an approval row keyed by the plan),
so LangGraph re-running an interrupted node from its start is harmless. ``execute_steps`` writes an
outbox row before every connector call, under an idempotency key derived from the plan id and the
step index; a step found in flight after a crash is reconciled or re-sent under the same key.

The graph runs with ``durability="exit"``: a checkpoint is written when it stops (at the approval
interrupt or the end). Losing a partial run to a crash costs nothing, because re-running it
from the last checkpoint is exactly what the outbox and the idempotent rows make safe.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import operator
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict
from zoneinfo import ZoneInfo

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from connectors.base import (
    Action,
    AuthError,
    Connector,
    ConnectorError,
    PermanentError,
    Receipt,
)
from graph.budget import BudgetExceeded, BudgetMeter
from graph.events import ApprovalCard, Inbound, Reply, Transcript, VoiceError
from graph.llm import LLMUnderstander, MalformedOutput, ModelUnavailable
from graph.policy import RISKS, Policy
from graph.scheduler import REMINDER, REMINDER_POLICY
from graph.timeparse import cut, parse_when
from graph.understanding import INTENTS, Intent, Understander, parse_command
from memory.knowledge import Memory
from memory.models import Approval, utcnow
from memory.stores import Storage

log = logging.getLogger(__name__)

HELP = """Solo OS — commands:
/note TEXT — save a note to the vault (runs at once)
/send NAME TEXT — post TEXT to webhook NAME (asks for approval first)
/approvals — show the cards waiting for you
/audit — the latest actions and decisions, with receipts
/status — what is running, waiting and failing
/remind WHEN TEXT — a reminder here at that time (/reminders lists and cancels them)
/remember FACT — keep a fact (a newer fact about the same subject replaces it)
/memory QUERY — search facts, notes, receipts and past messages
/forget ID — erase a memory item (the decision is audited)
/help — this list"""

SMALLTALK_ANSWER = ("Hi! I'm here. Tell me what to do, for example: \"note: call went well\", "
                    "\"remind me tomorrow at 9 to send the invoice\", \"what do I know about "
                    "Acme?\" or /summary. /help lists everything.")

EXAMPLE_COMMANDS = {
    "note": "/note TEXT", "send": "/send NAME TEXT", "remind": "/remind WHEN TEXT",
    "remember": "/remember FACT", "recall": "/memory QUERY", "forget": "/forget ID",
    "summary": "/summary", "status": "/status", "approvals": "/approvals", "audit": "/audit",
    "budget": "/budget", "help": "/help"}
_DRAFT = re.compile(r"\b(?:draft|compose|write (?:a|an|the) (?:note|message|email|reply))\b",
                    re.IGNORECASE)
_UNTIL = re.compile(r"\s+until\s+(\d{4}-\d{2}-\d{2})\s*$", re.IGNORECASE)


def plan_id_for(channel: str, event_id: str) -> str:
    """The plan id of the plan started by platform event ``event_id`` on ``channel``."""
    return "p" + hashlib.sha256(f"{channel}:{event_id}".encode()).hexdigest()[:20]


def approval_id_for(plan_id: str) -> str:
    """The short, stable id of a plan's approval (fits Telegram's 64-byte callback data)."""
    digest = hashlib.sha256(f"approval:{plan_id}".encode()).digest()
    return base64.b32encode(digest).decode().lower()[:8]


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
    context_tokens: int = 800


class PlanState(TypedDict, total=False):
    """The state of one plan thread (JSON-serialisable, so the checkpointer can keep it)."""

    plan_id: str
    inbound: dict[str, Any]
    intent: dict[str, Any]
    steps: list[dict[str, Any]]
    approval_id: str | None
    decision: str | None
    results: list[dict[str, Any]]
    replies: Annotated[list[dict[str, Any]], operator.add]
    """Appended to by each node (a notice from understanding, an answer, the receipts)."""


def _say(text: str) -> dict[str, Any]:
    return {"kind": "message", "text": text}


def _when(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if moment else "?"


# --- nodes -----------------------------------------------------------------------------------

async def understand_message(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Map the operator's text to an intent."""
    deps = runtime.context
    inbound = Inbound.from_dict(state["inbound"])
    chosen = (inbound.attachment or {}).get("intent")
    if chosen:  # the operator tapped one of the intents offered when unsure
        slots_of = getattr(deps.fallback or deps.understander, "slots", None)
        slots = slots_of(chosen, inbound.text) if slots_of else {}
        return {"intent": Intent(chosen, slots, 1.0).to_dict()}
    heard: Transcript | None = None
    if inbound.attachment and not inbound.text.strip():
        if inbound.attachment.get("kind") != "voice" or deps.hear is None:
            intent = Intent("unknown", {"error": f"I cannot read {inbound.attachment['kind']} "
                                                 "messages here; please type it."})
            return {"intent": intent.to_dict()}
        try:
            heard = await deps.hear(inbound)
        except VoiceError as exc:
            return {"intent": Intent("unknown", {
                "error": f"I could not use that voice note: {exc}. Nothing was done."}).to_dict()}
        await deps.storage.audit.append(
            actor=inbound.actor, channel=inbound.channel, plan_id=state["plan_id"],
            decision="voice.transcribed", dedup_key=f"{state['plan_id']}:voice",
            detail={"summary": f"voice note: {heard.text}", "confidence": heard.confidence,
                    "seconds": round(heard.seconds, 1)})
        inbound = replace(inbound, text=heard.text)
    result = await _understand_text(state, deps, inbound)
    if heard is not None:
        intent = result["intent"]
        # A voice note acts at once only when both the ears and the understanding are sure.
        intent["slots"]["voice"] = not (intent["confidence"] >= 0.9 and heard.confidence >= 0.5)
        result["replies"] = [_say(f"🎙 I heard: “{heard.text}” (transcript confidence "
                                  f"{heard.confidence:.0%}; understood as {intent['intent']}, "
                                  f"{intent['confidence']:.0%})"), *result.get("replies", [])]
    return result


async def _understand_text(state: PlanState, deps: DirectorDeps,
                           inbound: Inbound) -> dict[str, Any]:
    if not isinstance(deps.understander, LLMUnderstander) or parse_command(inbound.text):
        intent = await deps.understander.understand(inbound.text)
        notices = []
        if _DRAFT.search(inbound.text) and intent.name in ("note", "send"):
            notices.append(_say("(Drafting needs a model: set [llm] model. I used your words "
                                "as they are.)"))
        return {"intent": intent.to_dict(), "replies": notices}
    memory = await deps.memory.context(inbound.text, budget=deps.context_tokens) \
        if deps.memory else ""
    context = {"plan_id": state["plan_id"], "actor": inbound.actor, "channel": inbound.channel,
               "memory": memory}
    notices: list[dict[str, Any]] = []
    try:
        try:
            intent = await deps.understander.understand(inbound.text, context)
        except BudgetExceeded as exc:
            approval = await _budget_approval(state, deps, inbound, exc)
            if approval.status == "pending":
                interrupt({"approval_id": approval.id})
                approval = await deps.storage.approvals.get(approval.id)
            await deps.storage.approvals.complete(approval.id, receipt_id=None)
            notices.append({"kind": "card_update", "approval_id": approval.id})
            if approval.status != "approved":
                raise ModelUnavailable(f"the budget cap was kept ({approval.status})") from exc
            intent = await deps.understander.understand(
                inbound.text, {**context, "over_budget_approved": True})
    except ModelUnavailable as exc:
        intent = await deps.fallback.understand(inbound.text)
        notices.append(_say(f"(The model was not used: {exc}. I used the offline "
                            "understanding instead.)"))
    except MalformedOutput as exc:
        intent = Intent("unknown", {"error": f"The model's answer could not be read as a plan "
                                             f"({exc}); nothing was done. Try again, or use a "
                                             "/command."})
    if memory and intent.slots.get("steps"):
        # Material from outside was in the prompt: whatever the plan does waits for approval.
        intent.slots["external"] = True
    return {"intent": intent.to_dict(), "replies": notices}


async def _budget_approval(state: PlanState, deps: DirectorDeps, inbound: Inbound,
                           exc: BudgetExceeded) -> Approval:
    now = utcnow()
    return await deps.storage.approvals.ensure(
        id=approval_id_for(f"{state['plan_id']}:budget"), plan_id=state["plan_id"],
        channel=inbound.channel, chat=inbound.chat, kind="budget.exceed", risk="medium",
        reason=f"A model call for \"{inbound.text[:200]}\" would go over the {exc.cap_name} "
               "budget cap. Approve to allow this one call; reject to use the offline "
               "understanding.",
        diff={"steps": [{"title": "Model call over budget", "fields": [
            ["cap", None, f"{exc.cap_name} ${exc.cap:.2f}"],
            ["spent", None, f"${exc.spent:.4f}"],
            ["this call (estimate)", None, f"${exc.estimate:.4f}"]]}]},
        created_at=now, expires_at=now + deps.policy.approval_ttl)


async def make_plan(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Turn the intent into connector steps, or answer a question directly."""
    deps = runtime.context
    intent = Intent.from_dict(state["intent"])
    slots = intent.slots
    if "error" in slots:
        return {"steps": [], "replies": [_say(slots["error"])]}
    if slots.get("steps"):
        return _plan_from_model(slots, deps)
    planned = await _plan_action(intent, state, deps)
    if slots.get("voice"):
        for step in planned.get("steps", []):
            step["external"] = True  # an unsure voice note waits for a tap, however small
    return planned


async def _plan_action(intent: Intent, state: PlanState, deps: DirectorDeps) -> dict[str, Any]:
    slots = intent.slots
    if intent.name == "note":
        if deps.notes is None or deps.notes not in deps.connectors:
            return {"steps": [], "replies": [_say("The notes vault is not configured.")]}
        action = Action(kind="note.create", connector=deps.notes, args={"text": slots["text"]})
        return {"steps": [{"action": asdict(action)}]}
    if intent.name == "send":
        if not slots.get("webhook") or not slots.get("text"):
            known = ", ".join(sorted(deps.webhooks)) or "none configured"
            return {"steps": [], "replies": [_say(
                "Which webhook, and what should it say? Write it as /send NAME TEXT "
                f"(known webhooks: {known}).")]}
        connector = deps.webhooks.get(slots["webhook"])
        if connector is None:
            known = ", ".join(sorted(deps.webhooks)) or "none configured"
            return {"steps": [], "replies": [_say(
                f'No webhook named "{slots["webhook"]}". Known webhooks: {known}. '
                "Add one with [connectors.webhooks.NAME] url = \"...\" in the config.")]}
        action = Action(kind="webhook.post", connector=connector, args={"text": slots["text"]})
        return {"steps": [{"action": asdict(action)}]}
    if intent.name in ("remember", "recall", "forget"):
        return {"steps": [], "replies": await _memory_answer(intent, state, deps)}
    if intent.name == "remind" and "error" not in slots:
        return {"steps": [], "replies": await _reminder_answer(intent, state, deps)}
    return {"steps": [], "replies": await _answer(intent, deps)}


def _plan_from_model(slots: dict[str, Any], deps: DirectorDeps) -> dict[str, Any]:
    """Steps proposed by the model, mapped onto configured connectors (or refused)."""
    steps = []
    for step in slots["steps"]:
        if step["action"] == "note.create" and deps.notes in deps.connectors:
            action = Action(kind="note.create", connector=deps.notes, args={"text": step["text"]})
        elif step["action"] == "webhook.post" and (step.get("webhook") or "").lower() in \
                deps.webhooks:
            action = Action(kind="webhook.post", connector=deps.webhooks[step["webhook"].lower()],
                            args={"text": step["text"]})
        else:
            return {"steps": [], "replies": [_say(
                f"The plan asks for {step['action']} on {step.get('webhook') or 'notes'}, "
                "which is not configured; nothing was done.")]}
        steps.append({"action": asdict(action), "external": bool(slots.get("external"))})
    return {"steps": steps}


async def _reminder_answer(intent: Intent, state: PlanState,
                           deps: DirectorDeps) -> list[dict[str, Any]]:
    """/remind WHEN TEXT (and free-text reminders), /reminders [cancel ID]. A reminder is a
    job keyed by the plan, so a re-run after a crash schedules it once."""
    slots, tz = intent.slots, deps.timezone
    jobs = deps.storage.jobs
    if slots.get("command") == "reminders":
        words = slots.get("text", "").split()
        if words[:1] == ["cancel"] and len(words) == 2:
            cancelled = await jobs.cancel(words[1])
            return [_say(f"Cancelled reminder {words[1]}." if cancelled else
                         f"There is no scheduled reminder {words[1]!r}.")]
        scheduled = await jobs.scheduled(REMINDER)
        if not scheduled:
            return [_say("No reminders are scheduled.")]
        return [_say("\n".join(["Scheduled reminders (cancel with /reminders cancel ID):"] + [
            f"{job.id} · {_when(job.due_at, tz)}"
            + (f" · every {job.payload['repeat'].removesuffix('ly')}"
               if job.payload.get("repeat") else "") + f" · {job.payload['text']}"
            for job in scheduled]))]
    now = utcnow().astimezone(tz)
    text, when, repeat = slots.get("text", ""), slots.get("when"), slots.get("repeat")
    if when:
        due = datetime.fromisoformat(when)
    else:  # /remind WHEN TEXT: find the time in the words
        found = parse_when(text, now=now)
        if found is None:
            return [_say("When should I remind you? For example: /remind tomorrow 9am call "
                         "Alice, /remind in 2 hours check the oven, /remind every Monday at 9 "
                         "plan the week.")]
        due, repeat, text = found.at, found.repeat, cut(text, found.spans)
    text = re.sub(r"^(?:me\s+)?(?:to|about)\s+", "", text.strip(), flags=re.IGNORECASE)
    if not text:
        return [_say("What should I remind you of? Usage: /remind WHEN TEXT")]
    if due <= now:
        return [_say(f"{_when(due, tz)} has already passed; give a time in the future.")]
    inbound = Inbound.from_dict(state["inbound"])
    job_id = "rem" + hashlib.sha256(state["plan_id"].encode()).hexdigest()[:6]
    await jobs.put(id=job_id, kind=REMINDER, due_at=due, missed_policy=REMINDER_POLICY,
                   payload={"channel": inbound.channel, "chat": inbound.chat, "text": text,
                            "repeat": repeat})
    every = f", then every {repeat.removesuffix('ly')}" if repeat else ""
    return [_say(f"Reminder {job_id} set for {_when(due, tz)}{every}: {text}")]


async def _memory_answer(intent: Intent, state: PlanState,
                         deps: DirectorDeps) -> list[dict[str, Any]]:
    """/remember, /memory and /forget. Writes are idempotent by plan id (a re-run after a crash
    stores the same fact under the same id)."""
    memory, slots = deps.memory, intent.slots
    if memory is None:
        return [_say("Memory is not configured.")]
    inbound = Inbound.from_dict(state["inbound"])
    if intent.name == "remember":
        fact = slots.get("text", "").strip()
        if not fact:
            return [_say("Usage: /remember FACT  (optionally ending in: until YYYY-MM-DD)")]
        expires = None
        if match := _UNTIL.search(fact):
            try:
                expires = datetime.fromisoformat(match[1]).replace(tzinfo=deps.timezone)
            except ValueError:
                return [_say(f"{match[1]} is not a date; write it as YYYY-MM-DD.")]
            fact = fact[:match.start()].strip()
        fact_id = "f" + hashlib.sha256(state["plan_id"].encode()).hexdigest()[:7]
        replaced = await memory.remember(fact, id=fact_id, expires_at=expires,
                                         source=f"{inbound.channel}:{inbound.event_id}")
        lines = [f"Remembered ({fact_id})" + (f", until {_when(expires, deps.timezone)}"
                                               if expires else "") + "."]
        lines += [f'This replaces what I had: "{old.text}" ({old.id}, kept as superseded).'
                  for old in replaced]
        return [_say("\n".join(lines))]
    if intent.name == "recall":
        query = slots.get("query", "").strip()
        if not query:
            return [_say("Usage: /memory QUERY")]
        await memory.catch_up(notes_dir=deps.notes_dir)
        hits = await memory.search(query, k=5, exclude=[f"turn:{state['plan_id']}"])
        if not hits:
            return [_say(f'Nothing in memory matches "{query}".')]
        lines = [f'Best matches for "{query}":']
        for hit in hits:
            when = _when(hit.item.created_at, deps.timezone)
            lines.append(f"[{hit.item.kind} {hit.item.id}] {hit.item.text[:300]} ({when})")
        return [_say("\n".join(lines))]
    item_id = slots.get("id", "").strip()
    if not item_id:
        return [_say("Usage: /forget ID  (ids are shown by /memory)")]
    item = await memory.forget(item_id)
    if item is None:
        return [_say(f"There is no memory item {item_id!r} (or it is already forgotten).")]
    await deps.storage.audit.append(
        actor=inbound.actor, channel=inbound.channel, plan_id=state["plan_id"],
        intent="forget", decision="forgotten", dedup_key=f"forget:{state['plan_id']}",
        detail={"item": item_id, "kind": item.kind})
    return [_say(f"Forgotten: {item_id}. Its text is erased; the decision is in /audit.")]


async def _answer(intent: Intent, deps: DirectorDeps) -> list[dict[str, Any]]:
    storage, tz = deps.storage, deps.timezone
    if intent.name == "help":
        return [_say(HELP)]
    if intent.name == "smalltalk":
        return [_say(SMALLTALK_ANSWER)]
    if intent.name == "status":
        pending = await storage.approvals.pending()
        outbox = await storage.outbox.count_by_status()
        plans = await storage.plans.count_by_status()
        def counts(by_status: dict[str, int], empty: str) -> str:
            return ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or empty

        lines = [
            f"Storage: {storage.backend}. Connectors: {', '.join(sorted(deps.connectors))}.",
            f"Approvals waiting: {len(pending)}.",
            f"Actions: {counts(outbox, 'none yet')}.",
            f"Plans: {counts(plans, 'none')}.",
        ]
        if outbox.get("failed"):
            lines.append("Some actions failed; /audit shows which and why.")
        return [_say("\n".join(lines))]
    if intent.name == "approvals":
        pending = await storage.approvals.pending()
        if not pending:
            return [_say("No approvals are waiting.")]
        return [_say(f"{len(pending)} waiting for you:")] + [
            {"kind": "card", "approval_id": row.id} for row in pending]
    if intent.name == "audit":
        events = await storage.audit.recent(15)
        if not events:
            return [_say("The audit log is empty.")]
        lines = ["Latest first:"]
        for event in events:
            parts = [_when(event.at, tz), event.decision, f"by {event.actor}"]
            if event.connector:
                parts.append(f"via {event.connector}")
            if event.receipt_id:
                parts.append(f"receipt {event.receipt_id}")
            if event.detail and event.detail.get("summary"):
                parts.append(f"— {event.detail['summary']}")
            lines.append(" ".join(parts))
        return [_say("\n".join(lines))]
    if intent.name == "summary":
        return await daily_summary(deps)
    if intent.name == "budget":
        if deps.meter is None:
            return [_say("No model is configured: the offline understanding costs nothing.")]
        return [_say(await deps.meter.report())]
    choices = intent.slots.get("choices")
    if choices:
        return [{"kind": "choice", "text": (
            f"I'm not sure what you mean: {choices[0]} or {choices[1]}? Tap one, or say it "
            f"with a command to be sure, e.g. {EXAMPLE_COMMANDS.get(choices[0], '/help')}."),
            "choices": choices}]
    return [_say("I did not understand that. For example:\n"
                 "/note pricing call went well\n/send crm Invoice 42 is paid\nSee /help for all.")]


async def daily_summary(deps: DirectorDeps, *,
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """The daily summary as reply items: one skimmable message, then every pending card
    (with working buttons)."""
    tz = deps.timezone
    now = (now or utcnow()).astimezone(tz)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    events = await deps.storage.audit.between(yesterday, now + timedelta(seconds=1))
    done = [e for e in events if e.decision == "executed" and e.at < today]
    failed = [e for e in events if e.decision == "failed" and e.at < today]
    # Downtime shows up as jobs run late or skipped, often this morning: count until now.
    late = [e for e in events if e.decision == "job.ran"
            and (e.detail or {}).get("late_seconds", 0) > 90]
    skipped = [e for e in events if e.decision == "job.skipped"]
    pending = await deps.storage.approvals.pending()
    reminders = [j for j in await deps.storage.jobs.scheduled(REMINDER)
                 if j.due_at.astimezone(tz).date() == now.date()]
    lines = [f"Summary for {now:%a %d %b %Y} ({tz.key})"]
    lines.append(f"Done yesterday ({len(done)}):" if done else "Done yesterday: nothing.")
    lines += [f"• {(e.detail or {}).get('summary', e.connector)} — receipt {e.receipt_id}"
              for e in done]
    lines.append(f"Waiting for you ({len(pending)}): the cards follow." if pending
                 else "Waiting for you: nothing.")
    if failed:
        lines.append(f"Failed yesterday ({len(failed)}):")
        lines += [f"• {(e.detail or {}).get('error', f'{e.connector} failed')}"
                  for e in failed]
    lines.append(await deps.meter.report() if deps.meter is not None
                 else "Budget: no model configured, nothing spent.")
    lines.append(f"Reminders today ({len(reminders)}): " + "; ".join(
        f"{j.due_at.astimezone(tz):%H:%M} {j.payload['text']}" for j in reminders)
        if reminders else "Reminders today: none.")
    if late or skipped:
        lines.append(f"After downtime: {len(late)} job(s) ran late, {len(skipped)} "
                     "skipped.")
    return [_say("\n".join(lines))] + [{"kind": "card", "approval_id": a.id}
                                       for a in pending]


async def gate_steps(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Preview every step, apply the policy, and open an approval for risky plans."""
    deps = runtime.context
    inbound = Inbound.from_dict(state["inbound"])
    steps: list[dict[str, Any]] = []
    for step in state["steps"]:
        action = Action(**step["action"])
        connector = deps.connectors.get(action.connector)
        if connector is None:
            return {"steps": [], "replies": [_say(f"{action.connector} is not configured.")]}
        try:
            diff = await connector.preview(action)
        except ConnectorError as exc:
            return {"steps": [], "replies": [_say(f"Cannot do that: {exc}")]}
        risk = deps.policy.risk_for(action)
        if step.get("external") and risk == "low":
            risk = "medium"  # derived while outside text was in the prompt
        steps.append({**step, "risk": risk, "diff": diff.to_dict()})
    risky = [s for s in steps if deps.policy.needs_approval(s["risk"])]
    if not risky:
        return {"steps": steps, "approval_id": None}
    now = utcnow()
    approval = await deps.storage.approvals.ensure(
        id=approval_id_for(state["plan_id"]), plan_id=state["plan_id"],
        channel=inbound.channel, chat=inbound.chat, kind=risky[0]["action"]["kind"],
        risk=max((s["risk"] for s in risky), key=RISKS.index),
        reason=f'{inbound.actor} asked: "{inbound.text[:300]}"',
        diff={"steps": [s["diff"] for s in steps]},
        created_at=now, expires_at=now + deps.policy.approval_ttl,
    )
    return {"steps": steps, "approval_id": approval.id}


async def await_approval(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Wait for the operator. The approval row is the source of truth for the decision."""
    approval = await runtime.context.storage.approvals.get(state["approval_id"])
    if approval.status == "pending":
        interrupt({"approval_id": approval.id})
        approval = await runtime.context.storage.approvals.get(state["approval_id"])
    return {"decision": approval.status}


async def execute_steps(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Perform the steps, each exactly once, through the outbox."""
    deps = runtime.context
    if state.get("approval_id") and state.get("decision") != "approved":
        return {"results": [{"status": "skipped"} for _ in state["steps"]]}
    results: list[dict[str, Any]] = []
    for index, step in enumerate(state["steps"]):
        if results and results[-1]["status"] != "done":
            results.append({"status": "skipped"})
            continue
        results.append(await _run_step(state, deps, index, Action(**step["action"])))
    return {"results": results}


async def _run_step(state: PlanState, deps: DirectorDeps, index: int,
                    action: Action) -> dict[str, Any]:
    plan_id = state["plan_id"]
    key = idempotency_key_for(plan_id, index)
    connector = deps.connectors[action.connector]
    outbox = deps.storage.outbox
    row, earlier_attempts = await outbox.begin(key=key, plan_id=plan_id,
                                               connector=action.connector, action=asdict(action))
    if row.status == "done":
        return {"status": "done", "receipt": row.receipt}
    if row.status == "failed":
        return {"status": "failed", "error": row.last_error}
    audit = {"actor": state["inbound"]["actor"], "channel": state["inbound"]["channel"],
             "plan_id": plan_id, "intent": state["intent"]["intent"], "connector": action.connector,
             "idempotency_key": key}
    receipt: Receipt | None = None
    if earlier_attempts:
        # An earlier attempt may have reached the target before a crash: ask it first.
        receipt = await connector.reconcile(key)
    try:
        if receipt is None:
            receipt = await connector.execute(action, idempotency_key=key)
    except ConnectorError as exc:
        error = _describe_failure(exc, action)
        await outbox.fail(key, error=error, audit={
            **audit, "decision": "failed", "dedup_key": f"{key}:outcome",
            "detail": {"error": error}})
        return {"status": "failed", "error": error}
    await outbox.finish(key, receipt=receipt.to_dict(), audit={
        **audit, "decision": "executed", "receipt_id": receipt.id,
        "dedup_key": f"{key}:outcome", "detail": {"summary": receipt.summary}})
    return {"status": "done", "receipt": receipt.to_dict()}


def _describe_failure(exc: ConnectorError, action: Action) -> str:
    if isinstance(exc, AuthError):
        return f"{exc}. Reconnect {action.connector} (check its credentials in the config)."
    if isinstance(exc, PermanentError):
        return f"{exc}. Not retried."
    return (f"{exc}. Gave up after retrying; the target may or may not have received it, "
            "and nothing more will be sent automatically.")


async def record_outcome(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Close the approval with its receipt. Idempotent: it may run again after a crash."""
    approval_id = state.get("approval_id")
    if approval_id:
        receipts = [r["receipt"]["id"] for r in state.get("results", []) if r.get("receipt")]
        await runtime.context.storage.approvals.complete(
            approval_id, receipt_id=receipts[0] if receipts else None)
    return {}


async def compose_reply(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Say what happened: a receipt per done step, the error per failed one."""
    replies: list[dict[str, Any]] = []
    decision = state.get("decision")
    lines = []
    for step, result in zip(state.get("steps", []), state.get("results", []), strict=False):
        title = step["diff"]["title"]
        if result["status"] == "done":
            receipt = Receipt.from_dict(result["receipt"])
            lines.append(f"Done: {receipt.summary} — receipt {receipt.id}")
        elif result["status"] == "failed":
            lines.append(f"Failed: {title}: {result['error']}")
        elif decision in ("rejected", "expired", "superseded"):
            lines.append(f"{decision.capitalize()}: {title} — nothing was sent.")
        else:
            lines.append(f"Skipped: {title} (an earlier step failed).")
    if lines:
        replies.append(_say("\n".join(lines)))
    if state.get("approval_id"):
        replies.append({"kind": "card_update", "approval_id": state["approval_id"]})
    return {"replies": replies}


# --- routers ---------------------------------------------------------------------------------

def route_after_plan(state: PlanState) -> Literal["gate_steps", "compose_reply"]:
    """Plans with steps go through the gate; answers go straight to the reply."""
    return "gate_steps" if state.get("steps") else "compose_reply"


def route_after_gate(state: PlanState) -> Literal["await_approval", "execute_steps",
                                                  "compose_reply"]:
    """Risky plans wait for approval; safe ones run; refused previews just reply."""
    if not state.get("steps"):
        return "compose_reply"
    return "await_approval" if state.get("approval_id") else "execute_steps"


def build_graph(*, checkpointer: BaseCheckpointSaver | None) -> Any:
    """The compiled director graph. Dependencies arrive per run as ``context=DirectorDeps``."""
    builder = StateGraph(PlanState, context_schema=DirectorDeps)
    builder.add_node(understand_message)
    builder.add_node(make_plan)
    builder.add_node(gate_steps)
    builder.add_node(await_approval)
    builder.add_node(execute_steps)
    builder.add_node(record_outcome)
    builder.add_node(compose_reply)
    builder.add_edge(START, "understand_message")
    builder.add_edge("understand_message", "make_plan")
    builder.add_conditional_edges("make_plan", route_after_plan)
    builder.add_conditional_edges("gate_steps", route_after_gate)
    builder.add_edge("await_approval", "execute_steps")
    builder.add_edge("execute_steps", "record_outcome")
    builder.add_edge("record_outcome", "compose_reply")
    builder.add_edge("compose_reply", END)
    return builder.compile(checkpointer=checkpointer)


# --- the director ----------------------------------------------------------------------------

class Director:
    """Runs plans to completion across crashes and restarts.

    Args:
        deps: what the nodes use.
        checkpointer: a LangGraph saver (SQLite or PostgreSQL); required for approvals.
    """

    def __init__(self, *, deps: DirectorDeps, checkpointer: BaseCheckpointSaver) -> None:
        self.deps = deps
        self.storage = deps.storage
        self.graph = build_graph(checkpointer=checkpointer)
        # Serialises work on one plan inside this process (a double tap racing a reconcile);
        # a lock lives as long as someone holds or waits on it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Plans accepted by this process and not yet run: their state is known to be empty.
        self._fresh: dict[str, Inbound] = {}
        self.durable_channels: set[str] = set()
        """Channels whose replies are queued in the ``deliveries`` table (set by the app)."""

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Start the plan for a new message; a re-delivered event returns no replies."""
        plan_id = await self.accept(inbound)
        return await self.continue_plan(plan_id) if plan_id else []

    async def accept(self, inbound: Inbound) -> str | None:
        """Record a new message and its plan in one transaction (fast; adapters await it before
        acknowledging the platform). Returns the plan id, or None for a re-delivered event."""
        plan_id = plan_id_for(inbound.channel, inbound.event_id)
        accepted = await self.storage.inbox.accept(
            event_id=f"{inbound.channel}:{inbound.event_id}", channel=inbound.channel,
            plan={"id": plan_id, "channel": inbound.channel, "actor": inbound.actor,
                  "inbound": inbound.to_dict()})
        if not accepted:
            log.info("duplicate event %s:%s dropped", inbound.channel, inbound.event_id)
            return None
        self._fresh[plan_id] = inbound
        return plan_id

    async def accept_choice(self, inbound: Inbound) -> str | None:
        """A tap on one of the intents offered when unsure: a new plan for the original message
        with that intent. None for a repeated tap or a choice that no longer exists.

        The new plan's event id is the choice itself, so a double tap (two platform events)
        still starts one plan."""
        plan_id, _, chosen = (inbound.approval_id or "").partition(":")
        plan = await self.storage.plans.get(plan_id)
        if plan is None or chosen not in INTENTS:
            return None
        original = Inbound.from_dict(plan.inbound)
        return await self.accept(replace(inbound, event_id=f"choice:{plan_id}:{chosen}",
                                         text=original.text, verb=None, approval_id=None,
                                         attachment={"intent": chosen}))

    async def decide(self, inbound: Inbound) -> list[Reply]:
        """Apply a button press (``inbound.verb`` on ``inbound.approval_id``) and carry it out."""
        plan_ids, replies = await self.apply_decision(inbound)
        for plan_id in plan_ids:
            replies += await self.continue_plan(plan_id)
        return replies

    async def apply_decision(self, inbound: Inbound) -> tuple[list[str], list[Reply]]:
        """Record a button press (fast): the verdict first, then the event, so a press that a
        crash interrupts is simply processed again when the platform re-delivers it.

        Returns:
            The plans to continue (the decided one, and any whose approval just expired), and
            immediate notices (a stale or unknown card).
        """
        def notice(text: str) -> list[Reply]:
            return [Reply("notice", inbound.channel, inbound.chat, text=text)]

        event_key = f"{inbound.channel}:{inbound.event_id}"
        if await self.storage.inbox.seen(event_key):
            return [], []
        plans: list[str] = []
        replies: list[Reply] = []
        status = {"approve": "approved", "reject": "rejected"}.get(inbound.verb or "")
        approval = await self.storage.approvals.get(inbound.approval_id or "")
        if status is None:
            replies = notice(f"Unknown button {inbound.verb!r}.")
        elif not inbound.approval_id:
            replies = notice("There is no card to answer; /approvals shows what is waiting.")
        elif approval is None:
            replies = notice(f"There is no approval {inbound.approval_id!r}.")
        else:
            unknown_copy = False
            if (inbound.attachment or {}).get("kind") == "card":
                # The pressed copy may be one we never learned the id of (a crash right after
                # posting it): remember it so that the outcome is shown there too.
                unknown_copy = await self.storage.approvals.attach_card(
                    approval.id, inbound.channel, inbound.attachment["ref"])
            if await self.storage.approvals.decide(
                    approval.id, status=status, actor=inbound.actor,
                    audit={"actor": inbound.actor, "channel": inbound.channel,
                           "plan_id": approval.plan_id, "decision": status,
                           "dedup_key": f"{approval.id}:decision",
                           "detail": {"approval_id": approval.id}}):
                plans.append(approval.plan_id)
            else:
                if approval.status == "pending":  # lost only because it expired just now
                    plans += await self._expire()
                approval = await self.storage.approvals.get(approval.id)
                replies = notice(self._stale_text(approval))
                if approval.completed_at is None:
                    # Decided but not carried out (a crash in between): the old button
                    # finishes the job.
                    plans.append(approval.plan_id)
                elif unknown_copy:
                    replies.append(Reply("card_update", approval.channel, approval.chat,
                                         card=self.card_for(approval),
                                         card_refs=approval.card_refs))
        await self.storage.inbox.accept(event_id=event_key, channel=inbound.channel)
        return list(dict.fromkeys(plans)), replies

    def _stale_text(self, approval: Approval) -> str:
        when = _when(approval.decided_at, self.deps.timezone)
        if approval.status == "expired":
            return f"This card expired ({when}); nothing was sent. Ask again to get a new card."
        text = f"Already {approval.status} by {approval.decided_by} at {when}"
        if approval.receipt_id:
            text += f" — receipt {approval.receipt_id}"
        return text + "."

    async def continue_plan(self, plan_id: str) -> list[Reply]:
        """Run ``plan_id`` as far as it can go now; safe to call any time, any number of times."""
        lock = self._locks.get(plan_id)
        if lock is None:
            lock = self._locks[plan_id] = asyncio.Lock()
        async with lock:
            return await self._continue(plan_id)

    async def _continue(self, plan_id: str) -> list[Reply]:
        config = {"configurable": {"thread_id": plan_id}}
        inbound = self._fresh.pop(plan_id, None)
        if inbound is not None:  # just accepted: no checkpoint to look at yet
            payload: Any = {"plan_id": plan_id, "inbound": inbound.to_dict()}
        else:
            plan = await self.storage.plans.get(plan_id)
            if plan is None or plan.status in ("done", "archived"):
                return []
            inbound = Inbound.from_dict(plan.inbound)
            snapshot = await self.graph.aget_state(config)
            if not snapshot.values:
                payload = {"plan_id": plan_id, "inbound": plan.inbound}
            elif snapshot.interrupts:
                approval = await self.storage.approvals.get(
                    snapshot.interrupts[0].value["approval_id"])
                if approval.status == "pending":
                    return []
                payload = Command(resume=approval.status)
            elif snapshot.next:
                payload = None
            else:
                await self.storage.plans.finish(plan_id, status="done", deliveries=[])
                return []
        result = await self.graph.ainvoke(payload, config, context=self.deps, durability="exit")
        if result.get("__interrupt__"):
            approval = await self.storage.approvals.get(
                result["__interrupt__"][0].value["approval_id"])
            replies = [Reply("card", inbound.channel, inbound.chat, card=self.card_for(approval),
                             card_refs=approval.card_refs)]
            return await self._finish(plan_id, "waiting", replies)
        replies = [await self._reply(inbound, item) for item in result.get("replies", [])]
        return await self._finish(plan_id, "done", replies)

    async def _finish(self, plan_id: str, status: str, replies: list[Reply]) -> list[Reply]:
        """Set the plan's status and queue its replies for durable channels in one transaction,
        so a crash can neither lose the replies of a finished plan nor finish it twice."""
        durable = [r for r in replies if r.channel in self.durable_channels]
        ids = await self.storage.plans.finish(plan_id, status=status, deliveries=[
            {"channel": r.channel, "chat": r.chat, "kind": r.kind,
             "payload": r.delivery_payload()} for r in durable])
        queued = dict(zip(map(id, durable), ids, strict=True))
        return [replace(r, delivery_id=queued[id(r)]) if id(r) in queued else r
                for r in replies]

    async def _reply(self, inbound: Inbound, item: dict[str, Any]) -> Reply:
        if item["kind"] == "message":
            return Reply("message", inbound.channel, inbound.chat, text=item["text"])
        if item["kind"] == "choice":
            plan_id = plan_id_for(inbound.channel, inbound.event_id)
            return Reply("choice", inbound.channel, inbound.chat, text=item["text"],
                         choices=[(name, f"{plan_id}:{name}") for name in item["choices"]])
        approval = await self.storage.approvals.get(item["approval_id"])
        return Reply(item["kind"], approval.channel, approval.chat, card=self.card_for(approval),
                     card_refs=approval.card_refs)

    def card_for(self, approval: Approval) -> ApprovalCard:
        """The card of ``approval`` as it stands now."""
        tz = self.deps.timezone
        outcome = ""
        if approval.status == "expired":
            outcome = f"Expired at {_when(approval.decided_at, tz)} — nothing was sent"
        elif approval.status != "pending":
            outcome = (f"{approval.status.capitalize()} by {approval.decided_by} at "
                       f"{_when(approval.decided_at, tz)}")
            if approval.receipt_id:
                outcome += f" — receipt {approval.receipt_id}"
            elif approval.status == "approved" and approval.completed_at is not None:
                outcome += " — failed, see /audit"
            elif approval.status == "rejected":
                outcome += " — nothing was sent"
        return ApprovalCard(approval_id=approval.id, reason=approval.reason, risk=approval.risk,
                            diffs=approval.diff.get("steps", []), expires_at=approval.expires_at,
                            status=approval.status, outcome=outcome)

    async def pending_cards(self) -> list[Reply]:
        """Cards for every pending approval, addressed to where each was asked."""
        await self.expire_due()
        return [Reply("card", a.channel, a.chat, card=self.card_for(a), card_refs=a.card_refs)
                for a in await self.storage.approvals.pending()]

    async def attach_card(self, approval_id: str, channel: str, ref: Any) -> None:
        """Remember where a card was posted, so its outcome can be shown there later."""
        await self.storage.approvals.attach_card(approval_id, channel, ref)

    async def expire_due(self) -> list[Reply]:
        """Expire approvals past their time and finish their plans (nothing is executed)."""
        replies: list[Reply] = []
        for plan_id in await self._expire():
            replies += await self.continue_plan(plan_id)
        return replies

    async def _expire(self) -> list[str]:
        plans = []
        for approval_id in await self.storage.approvals.expire_due():
            approval = await self.storage.approvals.get(approval_id)
            await self.storage.audit.append(
                actor="system", channel=approval.channel, plan_id=approval.plan_id,
                decision="expired", dedup_key=f"{approval.id}:decision",
                detail={"approval_id": approval.id})
            plans.append(approval.plan_id)
        return plans

    async def reconcile(self) -> list[Reply]:
        """Finish what a crash interrupted: expire stale approvals, continue unfinished plans.

        Outbox rows left in flight are resolved inside their plans (reconcile, else re-send under
        the same key). Returns the replies those plans produce, addressed to their chats.
        """
        replies = await self.expire_due()
        for plan in await self.storage.plans.unfinished():
            try:
                replies += await self.continue_plan(plan.id)
            except Exception:
                log.exception("could not continue plan %s; it stays unfinished", plan.id)
        return replies

    async def escalate(self, *, targets: dict[str, list[str]], after: timedelta,
                       now: datetime | None = None) -> list[Reply]:
        """Climb the ladder for unanswered cards: a reminder with the card in its own chat
        after ``after``, the card on the other channels after twice that, and at expiry the
        safe default (expire, never approve) with a notice. Each rung is taken once."""
        now = now or utcnow()
        tz = self.deps.timezone
        replies: list[Reply] = []
        for approval in await self.storage.approvals.pending():
            age = now - approval.created_at
            level = approval.escalation_level
            if level == 0 and age >= after:
                places = [(approval.channel, approval.chat)]
            elif level == 1 and age >= 2 * after:
                places = [(channel, chat) for channel, chats in targets.items()
                          if channel != approval.channel for chat in chats]
            else:
                continue
            if not await self.storage.approvals.escalate(approval.id, from_level=level):
                continue
            await self.storage.audit.append(
                actor="system", channel=approval.channel, plan_id=approval.plan_id,
                decision=f"escalated.{level + 1}", dedup_key=f"{approval.id}:escalated:{level}",
                detail={"approval_id": approval.id, "to": [c for c, _ in places]})
            card = self.card_for(approval)
            for channel, chat in places:
                replies.append(Reply("message", channel, chat, text=(
                    f"Still waiting for your decision (asked {_when(approval.created_at, tz)}); "
                    f"without one it expires {_when(approval.expires_at, tz)} and nothing is "
                    "sent.")))
                replies.append(Reply("card", channel, chat, card=card,
                                     card_refs=approval.card_refs))
        return replies + await self.expire_due()

    async def summary_for(self, targets: list[tuple[str, str]], *,
                          now: datetime | None = None) -> list[Reply]:
        """The daily summary addressed to each ``(channel, chat)`` in ``targets``."""
        items = await daily_summary(self.deps, now=now)
        replies = []
        for channel, chat in targets:
            for item in items:
                if item["kind"] == "message":
                    replies.append(Reply("message", channel, chat, text=item["text"]))
                else:
                    approval = await self.storage.approvals.get(item["approval_id"])
                    replies.append(Reply("card", channel, chat, card=self.card_for(approval),
                                         card_refs=approval.card_refs))
        return replies

    async def prune(self, *, older_than: timedelta) -> int:
        """Delete the checkpoints of plans finished more than ``older_than`` ago (the audit log
        is never pruned). Returns how many threads were pruned."""
        archived = await self.storage.plans.archive_done(before=utcnow() - older_than)
        for plan_id in archived:
            await self.graph.checkpointer.adelete_thread(plan_id)
        return len(archived)

    async def refuse(self, inbound: Inbound) -> None:
        """Audit a message or press from someone who is not an operator."""
        await self.storage.audit.append(
            actor=inbound.actor, channel=inbound.channel, decision="refused",
            dedup_key=f"refused:{inbound.channel}:{inbound.event_id}",
            detail={"text": inbound.text[:200], "verb": inbound.verb,
                    "approval_id": inbound.approval_id})


__all__ = ["Director", "DirectorDeps", "build_graph", "plan_id_for"]
