"""The ``understand_message`` node: the operator's text (or voice note) to an intent.

Nothing here has an effect outside Solo OS's own rows: a model call is metered, a budget card is
an approval row keyed by the plan, so re-running the node after a crash is harmless.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.budget import BudgetExceeded
from graph.drafting import draft_from_brief
from graph.events import PLAYBOOK, PROPOSAL, Inbound, Transcript, VoiceError
from graph.llm import LLMUnderstander, MalformedOutput, ModelUnavailable
from graph.playbook_chat import DEFINES
from graph.spoken_numbers import numbers_as_digits
from graph.state import DirectorDeps, PlanState, approval_id_for, say
from graph.understanding import EFFECTFUL, Intent, parse_command
from memory.models import Approval, utcnow

DECIDING = frozenset({"cancel", "retry", "run", "pause", "resume"})
"""Commands that decide on the operator's behalf: never taken from an outside agent."""

_DRAFT = re.compile(r"\b(?:draft|compose|write (?:a|an|the) (?:note|message|email|reply))\b",
                    re.IGNORECASE)


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
        # "at two thirty", "invoice forty two": the parsers read digits
        inbound = replace(inbound, text=numbers_as_digits(heard.text))
    if (inbound.attachment or {}).get("kind") == PLAYBOOK:
        return await _playbook_run(state, deps, inbound)
    result = await _understand_text(state, deps, inbound)
    if (inbound.attachment or {}).get("kind") == PROPOSAL:
        return _as_proposal(result, inbound)
    if heard is not None:
        intent = result["intent"]
        # A voice note acts at once only when both the ears and the understanding are sure.
        intent["slots"]["voice"] = not (intent["confidence"] >= 0.9 and heard.confidence >= 0.5)
        forwarded = bool(inbound.attachment.get("forwarded"))
        if forwarded:  # someone else's recording: outside text, so everything waits for a tap
            intent["slots"]["external"] = True
        result["replies"] = [say(f"🎙 I heard{' (forwarded)' if forwarded else ''}: "
                                  f"“{heard.text}” (transcript confidence "
                                  f"{heard.confidence:.0%}; understood as {intent['intent']}, "
                                  f"{intent['confidence']:.0%})"), *result.get("replies", [])]
    return result


async def _playbook_run(state: PlanState, deps: DirectorDeps,
                        inbound: Inbound) -> dict[str, Any]:
    """A playbook run's action (``graph/playbook_runner.py``), its text drafted by the model
    first when the playbook says so. Its text may carry what the run collected or what the
    model wrote: outside text, so its step waits for a tap."""
    attachment = inbound.attachment or {}
    name = inbound.actor.removeprefix("playbook:")
    replies = [say(f"▶ Playbook {name} (run {attachment.get('run')})")]
    draft = attachment.get("draft")
    if draft:
        text, notices = await _playbook_draft(state, deps, inbound, draft)
        replies += notices
        if not draft["prefix"]:  # no action step: the text is the result, said in chat
            return {"intent": Intent("playbook", {"command": "report", "id": name,
                                                  "text": text}).to_dict(),
                    "replies": replies}
        inbound = replace(inbound, text=draft["prefix"] + text)
    result = await _understand_text(state, deps, inbound)
    if attachment.get("external"):
        result["intent"]["slots"]["external"] = True
    return {**result, "replies": [*replies, *result.get("replies", [])]}


async def _playbook_draft(state: PlanState, deps: DirectorDeps, inbound: Inbound,
                          draft: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The model's text for the run, priced against the run's budget; over a cap, the run
    waits on an approve-to-exceed card. Without the model (none, down, or the cap kept), the
    template filled with what was collected."""
    llm = deps.understander
    if not isinstance(llm, LLMUnderstander):
        return draft["material"], []
    notices: list[dict[str, Any]] = []
    over_cap_approved = False
    while True:
        try:
            text = await draft_from_brief(
                llm, brief=draft["brief"], material=draft["material"],
                plan_id=state["plan_id"], actor=inbound.actor, channel=inbound.channel,
                cap_usd=draft["budget_usd"], over_cap_approved=over_cap_approved)
            return text, notices
        except BudgetExceeded as exc:
            approval = await _over_budget_decision(
                state, deps, inbound, exc,
                reason=f"Drafting for {inbound.actor} would go over the {exc.cap_name} "
                       "budget cap. Approve to allow this one call; reject to use the "
                       "template as it is (the run goes on either way).")
            notices.append({"kind": "card_update", "approval_id": approval.id})
            if approval.status != "approved":
                return draft["material"], [*notices, say(
                    "(The budget cap was kept: the template as it is, no model call.)")]
            over_cap_approved = True
        except ModelUnavailable as exc:
            return draft["material"], [*notices, say(
                f"(The model was not used: {exc}. The template as it is.)")]


def _as_proposal(result: dict[str, Any], inbound: Inbound) -> dict[str, Any]:
    """An outside agent's proposal (``solo mcp``): every step it leads to waits for the
    operator, and what would decide at once (cancel, retry, running or pausing a playbook) is
    refused; defining a playbook stays a proposal (a card with the file)."""
    intent = result["intent"]
    reason = (inbound.attachment or {}).get("reason")
    heading = say(f"🤖 {inbound.actor} proposes: “{inbound.text}”" +
                  (f" (because: {reason})" if reason else ""))
    command = intent["slots"].get("command")
    if intent["intent"] == "playbook" and not command and \
            not DEFINES.match(inbound.text):
        command = "run"  # plain words about a playbook act on it directly: not from outside
    if command in DECIDING:
        refused = Intent("unknown", {"error": f"An outside agent cannot /{command}; only you "
                                              "can. Nothing was done."})
        return {"intent": refused.to_dict(), "replies": [heading]}
    intent["slots"]["external"] = True
    return {**result, "replies": [heading, *result.get("replies", [])]}


async def _understand_text(state: PlanState, deps: DirectorDeps,
                           inbound: Inbound) -> dict[str, Any]:
    if not isinstance(deps.understander, LLMUnderstander) or parse_command(inbound.text):
        intent = await deps.understander.understand(inbound.text)
        notices = []
        if _DRAFT.search(inbound.text) and intent.name in ("note", "send"):
            notices.append(say("(Drafting needs a model: set [llm] model. I used your words "
                                "as they are.)"))
        return {"intent": intent.to_dict(), "replies": notices}
    if deps.local_first is not None and deps.fallback is not None:
        # Progressive refinement: the fast offline classifier answers what it is sure of; only
        # what it is unsure of costs a (metered) model call.
        local = await deps.fallback.understand(inbound.text)
        if local.name != "unknown" and local.confidence >= deps.local_first and \
                "choices" not in local.slots:
            return {"intent": local.to_dict(), "replies": []}
    memory = await deps.memory.context(inbound.text, budget=deps.context_tokens) \
        if deps.memory else ""
    context = {"plan_id": state["plan_id"], "actor": inbound.actor, "channel": inbound.channel,
               "memory": memory}
    notices: list[dict[str, Any]] = []
    try:
        try:
            intent = await deps.understander.understand(inbound.text, context)
        except BudgetExceeded as exc:
            approval = await _over_budget_decision(
                state, deps, inbound, exc,
                reason=f"A model call for \"{inbound.text[:200]}\" would go over the "
                       f"{exc.cap_name} budget cap. Approve to allow this one call; reject "
                       "to use the offline understanding.")
            notices.append({"kind": "card_update", "approval_id": approval.id})
            if approval.status != "approved":
                raise ModelUnavailable(f"the budget cap was kept ({approval.status})") from exc
            intent = await deps.understander.understand(
                inbound.text, {**context, "over_budget_approved": True})
    except ModelUnavailable as exc:
        intent = await deps.fallback.understand(inbound.text)
        notices.append(say(f"(The model was not used: {exc}. I used the offline "
                            "understanding instead.)"))
    except MalformedOutput as exc:
        intent = Intent("unknown", {"error": f"The model's answer could not be read as a plan "
                                             f"({exc}); nothing was done. Try again, or use a "
                                             "/command."})
    if memory and (intent.slots.get("steps") or intent.name in EFFECTFUL):
        # Material from outside (facts, notes, mail) was in the prompt: whatever the plan does
        # waits for approval, however low its risk.
        intent.slots["external"] = True
    return {"intent": intent.to_dict(), "replies": notices}


async def _over_budget_decision(state: PlanState, deps: DirectorDeps, inbound: Inbound,
                                exc: BudgetExceeded, *, reason: str) -> Approval:
    """The operator's decision on this plan's approve-to-exceed card: the plan waits here (an
    interrupt) until it is decided. One card per plan: re-running the node finds it."""
    approval = await _budget_approval(state, deps, inbound, exc, reason=reason)
    if approval.status == "pending":
        interrupt({"approval_id": approval.id})
        approval = await deps.storage.approvals.get(approval.id)
    await deps.storage.approvals.complete(approval.id, receipt_id=None)
    return approval


async def _budget_approval(state: PlanState, deps: DirectorDeps, inbound: Inbound,
                           exc: BudgetExceeded, *, reason: str) -> Approval:
    now = utcnow()
    return await deps.storage.approvals.ensure(
        id=approval_id_for(f"{state['plan_id']}:budget"), plan_id=state["plan_id"],
        channel=inbound.channel, chat=inbound.chat, kind="budget.exceed", risk="medium",
        reason=reason,
        diff={"steps": [{"title": "Model call over budget", "fields": [
            ["cap", None, f"{exc.cap_name} ${exc.cap:.2f}"],
            ["spent", None, f"${exc.spent:.4f}"],
            ["this call (estimate)", None, f"${exc.estimate:.4f}"]]}]},
        created_at=now, expires_at=now + deps.policy.approval_ttl)
