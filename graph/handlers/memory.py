"""Memory: ``/remember``, ``/memory`` and ``/forget``. Remembering and forgetting are steps on
Solo OS's own state (``graph.own_state``), with receipts like any connector action."""

from __future__ import annotations

import re
from datetime import datetime

from graph.events import Inbound
from graph.own_state import FORGET, REMEMBER
from graph.state import DirectorDeps, Planned, PlanState, own_step, say
from graph.timefmt import when_text
from graph.understanding import Intent

MAX_FORGET = 50
"""Items one /forget may drop (a memory-curation playbook's card lists at most this many)."""
_UNTIL = re.compile(r"\s+until\s+(\d{4}-\d{2}-\d{2})\s*$", re.IGNORECASE)


async def answer_memory(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """/remember and /forget as steps; /memory answered directly."""
    memory, slots = deps.memory, intent.slots
    if memory is None:
        return {"replies": [say("Memory is not configured.")]}
    inbound = Inbound.from_dict(state["inbound"])
    if intent.name == "remember":
        fact = slots.get("text", "").strip()
        if not fact:
            return {"replies": [say("Usage: /remember FACT  (optionally ending in: until "
                                    "YYYY-MM-DD)")]}
        expires = None
        if match := _UNTIL.search(fact):
            try:
                expires = datetime.fromisoformat(match[1]).replace(tzinfo=deps.timezone)
            except ValueError:
                return {"replies": [say(f"{match[1]} is not a date; write it as YYYY-MM-DD.")]}
            fact = fact[:match.start()].strip()
        return own_step(REMEMBER, text=fact, expires_at=expires.isoformat() if expires else None,
                        source=f"{inbound.channel}:{inbound.event_id}")
    if intent.name == "recall":
        query = slots.get("query", "").strip()
        if not query:
            return {"replies": [say("Usage: /memory QUERY")]}
        await memory.catch_up(notes_dir=deps.notes_dir)
        hits = await memory.search(query, k=5, exclude=[f"turn:{state['plan_id']}"])
        if not hits:
            return {"replies": [say(f'Nothing in memory matches "{query}".')]}
        lines = [f'Best matches for "{query}":']
        for hit in hits:
            when = when_text(hit.item.created_at, deps.timezone)
            lines.append(f"[{hit.item.kind} {hit.item.id}] {hit.item.text[:300]} ({when})")
        return {"replies": [say("\n".join(lines))]}
    ids = list(dict.fromkeys(slots.get("id", "").replace(",", " ").split()))[:MAX_FORGET]
    if not ids:
        return {"replies": [say("Usage: /forget ID [ID …]  (ids are shown by /memory)")]}
    # One step per item: the card lists each, and each can be decided on its own.
    return {"steps": [step for item_id in ids for step in own_step(
        FORGET, id=item_id, actor=inbound.actor, channel=inbound.channel)["steps"]]}
