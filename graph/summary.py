"""The daily summary: done yesterday with receipts, what waits, failures, budget, reminders,
playbook runs, and what happened around downtime.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connectors.base import ConnectorError
from connectors.calendar import CalendarConnector
from connectors.mcp import McpConnector
from graph.events import PLAYBOOK
from graph.playbooks import JOB_PREFIX, run_outcome
from graph.scheduler import REMINDER
from graph.state import DirectorDeps, say
from graph.timefmt import event_line
from memory.models import utcnow


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
    lines += await _calendar_and_mail(deps, now, yesterday)
    lines += await _playbook_runs(deps, yesterday, today, skipped)
    if late or skipped:
        lines.append(f"After downtime: {len(late)} job(s) ran late, {len(skipped)} "
                     "skipped.")
    return [say("\n".join(lines))] + [{"kind": "card", "approval_id": a.id}
                                       for a in pending]


async def _calendar_and_mail(deps: DirectorDeps, now: datetime,
                             since: datetime) -> list[str]:
    """Today's events and the mail waiting for a reply, where those connectors exist."""
    lines = []
    calendar = deps.connectors.get("calendar")
    if isinstance(calendar, CalendarConnector):
        try:
            events = await calendar.day(now)
            lines.append("Today: " + "; ".join(event_line(e, deps.timezone) for e in events)
                         if events else "Today: nothing booked.")
        except ConnectorError as exc:
            lines.append(f"Today: the calendar could not be read ({exc}).")
    if "email" in deps.connectors:
        waiting = await deps.storage.mail.waiting_reply(since)
        lines.append(f"Mail needing a reply ({len(waiting)}): " + "; ".join(
            f"#{m.id} {m.from_name or m.from_addr}: {m.subject}" for m in waiting[:8])
            if waiting else "Mail needing a reply: none.")
    for health in await deps.storage.health.all():
        if health.state != "ok":
            lines.append(f"{health.connector}: {health_text(health.state)} ({health.detail})")
    lines += tool_servers_down(deps)
    return lines


async def _playbook_runs(deps: DirectorDeps, since: datetime, until: datetime,
                         skipped: list[Any]) -> list[str]:
    """Yesterday's playbook runs with their outcome, and occurrences skipped (and why)."""
    runs = await deps.storage.playbooks.between(since, until)
    missed = [e for e in skipped if e.intent == PLAYBOOK]
    if not runs and not missed:
        return []
    lines = [f"Playbooks yesterday ({len(runs)} run(s)):"]
    lines += [f"• {run.playbook}: {await run_outcome(deps.storage, run)}" for run in runs]
    lines += [f"• {(e.detail or {}).get('job', '?').removeprefix(JOB_PREFIX)}: skipped — it "
              f"was due {(e.detail or {}).get('due', '?')[:16].replace('T', ' ')} UTC, while "
              "I was not running, past its grace window" for e in missed]
    return lines


def tool_servers_down(deps: DirectorDeps) -> list[str]:
    """A line per MCP server that is not up (it is being restarted with backoff)."""
    return [f"{name}: {health_text('down')} ({connector.server.detail or 'starting'})"
            for name, connector in sorted(deps.connectors.items())
            if isinstance(connector, McpConnector) and connector.server.state != "ok"]


def health_text(state: str) -> str:
    """How a connector's health state reads to the operator."""
    return {"auth": "login refused — reconnect", "down": "not answering, retrying"}.get(
        state, state)
