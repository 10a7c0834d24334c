"""Plans the operator can see and repair: ``/plans``, ``/plan ID``, ``/retry ID [done|drop]``,
``/cancel ID``, ``/undo RECEIPT``.

Reading is plain. Repairing goes through the same spine as everything else: ``/cancel`` decides
the plan's pending approval as rejected (one conditional UPDATE, so it cannot race a tap) and
asks the director to continue that plan; ``/retry`` becomes steps of its own plan that carry the
failed step's action and idempotency key, so the target sees the same key again (``done``: the
operator checked and it happened, so the step is marked done with a receipt saying so;
``drop``: it is left undone for good; both are one conditional update each and audited);
``/undo`` becomes a step with the connector's compensating action, gated like any other.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from connectors.base import Receipt
from graph.events import Inbound
from graph.state import DirectorDeps, Planned, PlanState, say
from graph.timefmt import when_text
from graph.understanding import Intent
from memory.models import Plan

RETRYABLE = "failed"
SETTLED = {"done": "done", "drop": "dropped"}
"""``/retry ID WORD`` → the status the failed steps get."""


async def answer_plans(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """``/plans``, ``/plan ID``, ``/cancel ID``, ``/retry ID`` and ``/undo RECEIPT``."""
    command = intent.slots.get("command", "plans")
    if command == "plans":
        return {"replies": [say(await _list(deps, asking=state["plan_id"]))]}
    if command == "undo":
        return await undo_steps(intent, deps)
    how = ""
    if command == "retry":
        wanted, _, how = intent.slots.get("id", "").strip().partition(" ")
        intent = Intent(intent.name, {**intent.slots, "id": wanted})
    plan, problem = await find_plan(intent, deps)
    if plan is None:
        return {"replies": [say(problem)]}
    if command == "retry" and how.strip():
        return {"replies": [say(await settle_steps(plan, how.strip().lower(), state, deps))]}
    if command == "retry":
        return await retry_steps(plan, deps)
    if command == "cancel":
        return {"replies": await _cancel(plan, state, deps)}
    return {"replies": [say(await _show(plan, deps))]}


async def find_plan(intent: Intent, deps: DirectorDeps) -> tuple[Plan | None, str]:
    """The plan named by the ``id`` slot, or None and what to tell the operator."""
    command = intent.slots.get("command", "plan")
    wanted = intent.slots.get("id", "").strip()
    if not wanted:
        return None, f"Usage: /{command} ID  (ids are shown by /plans)"
    plan = await deps.storage.plans.find(wanted)
    if plan is None:
        return None, f"There is no plan {wanted!r} (or the id matches several); see /plans."
    return plan, ""


async def retry_steps(plan: Plan, deps: DirectorDeps) -> Planned:
    """The steps of a ``/retry ID`` plan: every failed step of plan ID, with its original action
    and key. A step whose plan was approved stays approved: it runs exactly what was shown."""
    failed = [s for s in await deps.storage.plans.steps(plan.id) if s.status == RETRYABLE]
    if not failed:
        return {"replies": [say(
            f"Plan {plan.id[:8]} has no failed step to retry; /plan {plan.id[:8]} shows it.")]}
    approved = await _was_approved(plan, deps)
    return {"steps": [{"action": step.action, "key": step.idempotency_key, "depends_on": [],
                       "preapproved": step.risk == "low" or approved,
                       "retry_of": {"plan_id": plan.id, "position": step.position}}
                      for step in failed]}


async def settle_steps(plan: Plan, how: str, state: PlanState, deps: DirectorDeps) -> str:
    """``/retry ID done`` or ``/retry ID drop``: the operator's word on the failed steps of plan
    ID (typically an outcome a crash left unknown); what to tell them."""
    if how not in SETTLED:
        return f"Usage: /retry {plan.id[:8]} [done|drop]  (done: it did happen; drop: leave it)"
    failed = [s for s in await deps.storage.plans.steps(plan.id) if s.status == RETRYABLE]
    inbound = Inbound.from_dict(state["inbound"])
    settled = []
    for step in failed:
        title = step.diff.get("title", step.kind)
        receipt = Receipt.for_key(
            connector=step.connector, idempotency_key=step.idempotency_key,
            summary=f"{title}: marked done by {inbound.actor} (its outcome was unknown)",
            reconciled=True).to_dict() if how == "done" else None
        if await deps.storage.outbox.settle_failed(
                step.idempotency_key, status=SETTLED[how], receipt=receipt, audit={
                    "actor": inbound.actor, "channel": inbound.channel, "plan_id": plan.id,
                    "intent": "plans", "connector": step.connector,
                    "idempotency_key": step.idempotency_key, "decision": f"step.{SETTLED[how]}",
                    "receipt_id": receipt["id"] if receipt else None,
                    "dedup_key": f"{step.idempotency_key}:settled",
                    "detail": {"summary": f"{title}: {SETTLED[how]} by {inbound.actor}"}}):
            settled.append(f"{title}" + (f" — receipt {receipt['id']}" if receipt else ""))
    if not settled:
        return f"Plan {plan.id[:8]} has no failed step to settle; /plan {plan.id[:8]} shows it."
    verb = "Marked done" if how == "done" else "Dropped (nothing more will be tried)"
    return f"{verb}: " + "; ".join(settled)


async def undo_steps(intent: Intent, deps: DirectorDeps) -> Planned:
    """The step of an ``/undo RECEIPT`` plan: the compensating action the receipt's connector
    offers (proposed through the gate like any other step), or why there is none."""
    wanted = intent.slots.get("id", "").strip()
    if not wanted:
        return {"replies": [say("Usage: /undo RECEIPT  (receipts are shown by "
                                             "/audit and in every reply)")]}
    row = await deps.storage.outbox.by_receipt(wanted.removeprefix("receipt").strip())
    if row is None:
        return {"replies": [say(f"There is no receipt {wanted!r}; /audit lists "
                                             "receipts.")]}
    receipt = Receipt.from_dict(row.receipt)
    connector = deps.connectors.get(row.connector)
    action = await connector.compensate(receipt) if connector is not None else None
    if action is None:
        return {"replies": [say(
            f"Receipt {receipt.id} ({receipt.summary}) cannot be taken back: {row.connector} "
            "has no undo. For next time, [policy] undo_seconds holds such steps for a while "
            "after approval, with an Undo button.")]}
    return {"steps": [{"action": asdict(action), "depends_on": []}]}


async def _was_approved(plan: Plan, deps: DirectorDeps) -> bool:
    approvals = [a for a in await deps.storage.approvals.for_plan(plan.id)
                 if a.kind != "budget.exceed"]
    return bool(approvals) and all(a.status == "approved" for a in approvals)


async def _list(deps: DirectorDeps, *, asking: str) -> str:
    plans = [p for p in await deps.storage.plans.recent(11) if p.id != asking][:10]
    if not plans:
        return "No plans yet."
    lines = ["Plans (open first; /plan ID for details):"]
    steps_of = await deps.storage.plans.steps_of([p.id for p in plans])
    for plan in plans:
        steps = steps_of.get(plan.id, [])
        done = sum(s.status == "done" for s in steps)
        progress = f" · {done}/{len(steps)} steps done" if steps else ""
        text = Inbound.from_dict(plan.inbound).text or "(button or voice)"
        lines.append(f"{plan.id[:8]} · {plan.status} · "
                     f"{when_text(plan.created_at, deps.timezone)}{progress} · {text[:60]}")
    return "\n".join(lines)


async def _show(plan: Plan, deps: DirectorDeps) -> str:
    tz = deps.timezone
    inbound = Inbound.from_dict(plan.inbound)
    lines = [f"Plan {plan.id[:8]} · {plan.status} · from {_origin(inbound)} by "
             f"{inbound.actor} on {inbound.channel} at {when_text(plan.created_at, tz)}",
             f'Request: "{inbound.text[:300]}"']
    steps = await deps.storage.plans.steps(plan.id)
    if not steps:
        lines.append("No steps: it was answered directly.")
    for step in steps:
        line = f"{step.position + 1}. {step.diff.get('title', step.kind)} · {step.risk} risk · " \
               f"{step.status}"
        if step.depends_on:
            line += " · after step " + ", ".join(str(d + 1) for d in step.depends_on)
        if step.receipt:
            line += f" · receipt {step.receipt['id']}"
        if step.error:
            line += f" · {step.error}"
        lines.append(line)
    for approval in await deps.storage.approvals.for_plan(plan.id):
        lines.append(f"Approval {approval.id}: {approval.status}"
                     + (f" by {approval.decided_by}" if approval.decided_by else "")
                     + f" (expires {when_text(approval.expires_at, tz)})")
    cost, calls = await deps.storage.audit.model_cost(plan_id=plan.id)
    lines.append(f"Model cost: ${cost:.4f} ({calls} calls)." if calls else "Model cost: none.")
    if deps.checkpointer is not None:
        saved = await deps.checkpointer.aget_tuple({"configurable": {"thread_id": plan.id}})
        if saved is not None:
            lines.append(f"Last checkpoint: {saved.checkpoint['ts'][:19].replace('T', ' ')} "
                         f"UTC ({saved.config['configurable']['checkpoint_id']}).")
    if any(s.status == RETRYABLE for s in steps):
        lines.append(f"/retry {plan.id[:8]} runs the failed steps again under their keys; "
                     f"/retry {plan.id[:8]} done if they did happen, drop to leave them.")
    if plan.status in ("running", "waiting"):
        lines.append(f"/cancel {plan.id[:8]} cancels what has not run.")
    return "\n".join(lines)


def _origin(inbound: Inbound) -> str:
    if (inbound.attachment or {}).get("kind") == "voice":
        return "a voice note"
    if (inbound.attachment or {}).get("intent"):
        return "a button"
    return "a message"


async def _cancel(plan: Plan, state: PlanState, deps: DirectorDeps) -> list[dict[str, Any]]:
    inbound = Inbound.from_dict(state["inbound"])
    pending = [a for a in await deps.storage.approvals.for_plan(plan.id)
               if a.status == "pending"]
    cancelled = []
    for approval in pending:
        if await deps.storage.approvals.decide(
                approval.id, status="rejected", actor=inbound.actor,
                audit={"actor": inbound.actor, "channel": inbound.channel, "plan_id": plan.id,
                       "decision": "cancelled", "dedup_key": f"{approval.id}:decision",
                       "detail": {"approval_id": approval.id,
                                  "by_plan": state["plan_id"]}}):
            cancelled.append(approval.id)
    # Approved steps still inside their undo window have not run either: take them back.
    cancelled += await deps.storage.plans.undo(plan.id, actor=inbound.actor,
                                               channel=inbound.channel)
    if not cancelled:
        return [say(f"Plan {plan.id[:8]} has nothing waiting to cancel (it is {plan.status}).")]
    return [say(f"Cancelled plan {plan.id[:8]}: nothing more of it will run."),
            {"kind": "continue", "plan_id": plan.id}]
