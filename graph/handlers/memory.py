"""Memory: ``/remember``, ``/memory`` and ``/forget``."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from graph.events import Inbound
from graph.state import DirectorDeps, PlanState, say
from graph.timefmt import when_text
from graph.understanding import Intent

_UNTIL = re.compile(r"\s+until\s+(\d{4}-\d{2}-\d{2})\s*$", re.IGNORECASE)


async def answer_memory(intent: Intent, state: PlanState,
                         deps: DirectorDeps) -> list[dict[str, Any]]:
    """/remember, /memory and /forget. Writes are idempotent by plan id (a re-run after a crash
    stores the same fact under the same id)."""
    memory, slots = deps.memory, intent.slots
    if memory is None:
        return [say("Memory is not configured.")]
    inbound = Inbound.from_dict(state["inbound"])
    if intent.name == "remember":
        fact = slots.get("text", "").strip()
        if not fact:
            return [say("Usage: /remember FACT  (optionally ending in: until YYYY-MM-DD)")]
        expires = None
        if match := _UNTIL.search(fact):
            try:
                expires = datetime.fromisoformat(match[1]).replace(tzinfo=deps.timezone)
            except ValueError:
                return [say(f"{match[1]} is not a date; write it as YYYY-MM-DD.")]
            fact = fact[:match.start()].strip()
        fact_id = "f" + hashlib.sha256(state["plan_id"].encode()).hexdigest()[:7]
        replaced = await memory.remember(fact, id=fact_id, expires_at=expires,
                                         source=f"{inbound.channel}:{inbound.event_id}")
        lines = [f"Remembered ({fact_id})" + (f", until {when_text(expires, deps.timezone)}"
                                               if expires else "") + "."]
        lines += [f'This replaces what I had: "{old.text}" ({old.id}, kept as superseded).'
                  for old in replaced]
        return [say("\n".join(lines))]
    if intent.name == "recall":
        query = slots.get("query", "").strip()
        if not query:
            return [say("Usage: /memory QUERY")]
        await memory.catch_up(notes_dir=deps.notes_dir)
        hits = await memory.search(query, k=5, exclude=[f"turn:{state['plan_id']}"])
        if not hits:
            return [say(f'Nothing in memory matches "{query}".')]
        lines = [f'Best matches for "{query}":']
        for hit in hits:
            when = when_text(hit.item.created_at, deps.timezone)
            lines.append(f"[{hit.item.kind} {hit.item.id}] {hit.item.text[:300]} ({when})")
        return [say("\n".join(lines))]
    item_id = slots.get("id", "").strip()
    if not item_id:
        return [say("Usage: /forget ID  (ids are shown by /memory)")]
    item = await memory.forget(item_id)
    if item is None:
        return [say(f"There is no memory item {item_id!r} (or it is already forgotten).")]
    await deps.storage.audit.append(
        actor=inbound.actor, channel=inbound.channel, plan_id=state["plan_id"],
        intent="forget", decision="forgotten", dedup_key=f"forget:{state['plan_id']}",
        detail={"item": item_id, "kind": item.kind})
    return [say(f"Forgotten: {item_id}. Its text is erased; the decision is in /audit.")]
