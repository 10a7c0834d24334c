"""The ``make_plan`` node: an intent becomes connector steps, or a direct answer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langgraph.runtime import Runtime

from connectors.base import Action
from connectors.mcp import McpConnector
from graph.handlers import answer
from graph.state import DirectorDeps, PlanState, say
from graph.understanding import Intent


async def make_plan(state: PlanState, runtime: Runtime[DirectorDeps]) -> dict[str, Any]:
    """Turn the intent into connector steps, or answer a question directly."""
    deps = runtime.context
    intent = Intent.from_dict(state["intent"])
    slots = intent.slots
    if "error" in slots:
        return {"steps": [], "replies": [say(slots["error"])]}
    planned = _plan_from_model(slots, deps) if slots.get("steps") else \
        await _plan_action(intent, state, deps)
    if slots.get("voice") or slots.get("external"):
        for step in planned.get("steps", []):
            # An unsure voice note, a forwarded one, or a model's answer with outside text in
            # its prompt: the step waits for a tap, however small (whoever planned it).
            step["external"] = True
    return planned


async def _plan_action(intent: Intent, state: PlanState, deps: DirectorDeps) -> dict[str, Any]:
    slots = intent.slots
    if intent.name == "note":
        if deps.notes is None or deps.notes not in deps.connectors:
            return {"steps": [], "replies": [say("The notes vault is not configured.")]}
        action = Action(kind="note.create", connector=deps.notes, args={"text": slots["text"]})
        return {"steps": [{"action": asdict(action)}]}
    if intent.name == "send":
        if not slots.get("webhook") or not slots.get("text"):
            known = ", ".join(sorted(deps.webhooks)) or "none configured"
            return {"steps": [], "replies": [say(
                "Which webhook, and what should it say? Write it as /send NAME TEXT "
                f"(known webhooks: {known}).")]}
        connector = deps.webhooks.get(slots["webhook"])
        if connector is None:
            known = ", ".join(sorted(deps.webhooks)) or "none configured"
            return {"steps": [], "replies": [say(
                f'No webhook named "{slots["webhook"]}". Known webhooks: {known}. '
                "Add one with [connectors.webhooks.NAME] url = \"...\" in the config.")]}
        action = Action(kind="webhook.post", connector=connector, args={"text": slots["text"]})
        return {"steps": [{"action": asdict(action)}]}
    return {"steps": [], "replies": [], **await answer(intent, state, deps)}


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
        elif step["action"] == "mcp.call" and isinstance(
                tools := deps.connectors.get(f"mcp:{_server_of(step)}"), McpConnector):
            # The tool is checked against the allowlist at the gate (the connector's preview),
            # like a /call: a model cannot reach a tool the operator excluded.
            action = tools.action(str(step["tool"]).partition(".")[2],
                                  dict(step.get("arguments") or {}))
        else:
            return {"steps": [], "replies": [say(
                f"The plan asks for {step['action']} on "
                f"{step.get('tool') or step.get('webhook') or 'notes'}, "
                "which is not configured; nothing was done.")]}
        planned: dict[str, Any] = {"action": asdict(action)}
        needs = step.get("depends_on")
        if needs is not None:
            if any(not 0 <= n < len(steps) for n in needs):
                return {"steps": [], "replies": [say(
                    f"The plan's step {len(steps) + 1} depends on a step that does not come "
                    "before it; nothing was done.")]}
            planned["depends_on"] = sorted(set(needs))
        steps.append(planned)
    return {"steps": steps}


def _server_of(step: dict[str, Any]) -> str:
    return str(step.get("tool") or "").partition(".")[0].lower()
