"""The ``execute_steps`` node: the only place with external effects.

Each step writes its outbox row (keyed by plan and step) before the connector call; a step
found in flight after a crash is reconciled with the connector, else re-sent under the same key.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langgraph.runtime import Runtime

from connectors.base import (
    Action,
    AuthError,
    ConnectorError,
    OutcomeUnknown,
    PermanentError,
    Receipt,
)
from graph.state import DirectorDeps, PlanState, action_hash, idempotency_key_for


async def execute_steps(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Perform the steps, each exactly once, through the outbox.

    A step that needed the approval runs only if it was approved; a step runs only when every
    step it depends on is done. Independent steps still run when another is rejected or fails.
    """
    deps = runtime.context
    decision = state.get("decision") or "approved"
    verdicts = state.get("verdicts") or {}
    bound = state.get("bound") or {}
    results: list[dict[str, Any]] = []
    halted: dict[int, str] = {}
    for index, step in enumerate(state["steps"]):
        blocked = [d for d in step.get("depends_on", []) if results[d]["status"] != "done"]
        # A plan gated by an older version has no per-step flag: then its approval covers all.
        needs_approval = step.get("needs_approval", bool(state.get("approval_id")))
        verdict = verdicts.get(str(index), decision)
        if needs_approval and verdict != "approved":
            results.append({"status": verdict})
        elif needs_approval and str(index) in bound and \
                bound[str(index)] != action_hash(step["action"]):
            # Never expected: the approval bound other arguments than these. Refuse rather
            # than run something the operator did not see.
            results.append({"status": "failed", "error": "the step differs from what was "
                            "approved; not run. Ask again to get a new card."})
        elif blocked:
            results.append({"status": "skipped", "because": blocked[0]})
        else:
            if step.get("retry_of"):
                await deps.storage.outbox.reopen(step["key"])
            results.append(await _run_step(state, deps, index, step))
            continue
        halted[index] = results[-1]["status"]
    if halted:
        await deps.storage.plans.set_step_status(state["plan_id"], halted)
    return {"results": results}


async def _run_step(state: PlanState, deps: DirectorDeps, index: int,
                    step: dict[str, Any]) -> dict[str, Any]:
    plan_id = state["plan_id"]
    action = Action(**step["action"])
    key = step.get("key") or idempotency_key_for(plan_id, index)
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
    try:
        if earlier_attempts:
            # An earlier attempt may have reached the target before a crash: ask it first.
            receipt = await connector.reconcile(key, action)
        if receipt is None:
            receipt = await connector.execute(action, idempotency_key=key)
    except ConnectorError as exc:
        error = _describe_failure(exc, action, plan_id)
        await outbox.fail(key, error=error, audit={
            **audit, "decision": "failed", "dedup_key": f"{key}:outcome",
            "detail": {"error": error}})
        return {"status": "failed", "error": error, "unknown": isinstance(exc, OutcomeUnknown)}
    await outbox.finish(key, receipt=receipt.to_dict(), audit={
        **audit, "decision": "executed", "receipt_id": receipt.id,
        "dedup_key": f"{key}:outcome", "detail": {"summary": receipt.summary}})
    return {"status": "done", "receipt": receipt.to_dict()}


def _describe_failure(exc: ConnectorError, action: Action, plan_id: str) -> str:
    if isinstance(exc, OutcomeUnknown):
        return (f"{exc}. Nothing more is sent on its own: /retry {plan_id} calls it again "
                f"under the same key, /retry {plan_id} done marks it done, /retry {plan_id} "
                "drop leaves it.")
    if isinstance(exc, AuthError):
        return f"{exc}. Reconnect {action.connector} (check its credentials in the config)."
    if isinstance(exc, PermanentError):
        return f"{exc}. Not retried."
    return (f"{exc}. Gave up after retrying; the target may or may not have received it, "
            "and nothing more will be sent automatically.")
