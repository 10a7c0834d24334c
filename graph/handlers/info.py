"""Answers that only read: help, small talk, status, approvals, audit, budget, summary, and
what to say when a message was not understood.
"""

from __future__ import annotations

from typing import Any

from graph.commands import example_for, help_text
from graph.state import DirectorDeps, say
from graph.summary import daily_summary, health_text, tool_servers_down
from graph.timefmt import when_text
from graph.understanding import Intent

SMALLTALK_ANSWER = ("Hi! I'm here. Tell me what to do, for example: \"note: call went well\", "
                    "\"remind me tomorrow at 9 to send the invoice\", \"what do I know about "
                    "Acme?\" or /summary. /help lists everything.")


_MAIL = ("{what} needs the email connector, which is not configured: add [connectors.email] "
         "(imap_host, smtp_host, username, password, address) to the config.")
_CALENDAR = ("{what} needs the calendar connector, which is not configured: add "
             "[connectors.calendar] (url, username, password) to the config.")
NOT_CONFIGURED = {
    "email": _MAIL.format(what="Sending email"), "reply": _MAIL.format(what="Replying to mail"),
    "inbox": _MAIL.format(what="Reading your inbox"),
    "agenda": _CALENDAR.format(what="Your agenda"), "event": _CALENDAR.format(what="Booking"),
    "task": _CALENDAR.format(what="Tasks"),
}
"""What the understander recognises before the capability is there (or configured)."""


async def answer_question(intent: Intent, deps: DirectorDeps) -> list[dict[str, Any]]:
    """The answer to a question that only reads state (or to a message not understood)."""
    storage, tz = deps.storage, deps.timezone
    if intent.name == "help":
        return [say(help_text())]
    if intent.name == "smalltalk":
        return [say(SMALLTALK_ANSWER)]
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
        for health in await storage.health.all():
            if health.state != "ok":
                lines.append(f"{health.connector}: {health_text(health.state)} since "
                             f"{when_text(health.since, tz)} ({health.detail})")
        lines += tool_servers_down(deps)
        return [say("\n".join(lines))]
    if intent.name == "approvals":
        pending = await storage.approvals.pending()
        if not pending:
            return [say("No approvals are waiting.")]
        return [say(f"{len(pending)} waiting for you:")] + [
            {"kind": "card", "approval_id": row.id} for row in pending]
    if intent.name == "audit":
        events = await storage.audit.recent(15)
        if not events:
            return [say("The audit log is empty.")]
        lines = ["Latest first:"]
        for event in events:
            parts = [when_text(event.at, tz), event.decision, f"by {event.actor}"]
            if event.connector:
                parts.append(f"via {event.connector}")
            if event.receipt_id:
                parts.append(f"receipt {event.receipt_id}")
            if event.detail and event.detail.get("summary"):
                parts.append(f"— {event.detail['summary']}")
            lines.append(" ".join(parts))
        return [say("\n".join(lines))]
    if intent.name == "summary":
        return await daily_summary(deps)
    if intent.name == "budget":
        if deps.meter is None:
            return [say("No model is configured: the offline understanding costs nothing.")]
        return [say(await deps.meter.report())]
    if intent.name in NOT_CONFIGURED:
        return [say(NOT_CONFIGURED[intent.name])]
    choices = intent.slots.get("choices")
    if choices:
        return [{"kind": "choice", "text": (
            f"I'm not sure what you mean: {choices[0]} or {choices[1]}? Tap one, or say it "
            f"with a command to be sure, e.g. {example_for(choices[0])}."),
            "choices": choices}]
    return [say("I did not understand that. For example:\n"
                 "/note pricing call went well\n/send crm Invoice 42 is paid\nSee /help for all.")]
