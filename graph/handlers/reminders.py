"""Reminders: ``/remind WHEN TEXT``, free-text reminders, ``/reminders [cancel ID]``."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from graph.events import Inbound
from graph.scheduler import REMINDER, REMINDER_POLICY
from graph.state import DirectorDeps, PlanState, say
from graph.timefmt import when_text
from graph.timeparse import cut, parse_when
from graph.understanding import Intent
from memory.models import utcnow


async def answer_reminder(intent: Intent, state: PlanState,
                           deps: DirectorDeps) -> list[dict[str, Any]]:
    """/remind WHEN TEXT (and free-text reminders), /reminders [cancel ID]. A reminder is a
    job keyed by the plan, so a re-run after a crash schedules it once."""
    slots, tz = intent.slots, deps.timezone
    jobs = deps.storage.jobs
    if slots.get("command") == "reminders":
        words = slots.get("text", "").split()
        if words[:1] == ["cancel"] and len(words) == 2:
            cancelled = await jobs.cancel(words[1])
            return [say(f"Cancelled reminder {words[1]}." if cancelled else
                         f"There is no scheduled reminder {words[1]!r}.")]
        scheduled = await jobs.scheduled(REMINDER)
        if not scheduled:
            return [say("No reminders are scheduled.")]
        return [say("\n".join(["Scheduled reminders (cancel with /reminders cancel ID):"] + [
            f"{job.id} · {when_text(job.due_at, tz)}"
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
            return [say("When should I remind you? For example: /remind tomorrow 9am call "
                         "Alice, /remind in 2 hours check the oven, /remind every Monday at 9 "
                         "plan the week.")]
        due, repeat, text = found.at, found.repeat, cut(text, found.spans)
    text = re.sub(r"^(?:me\s+)?(?:to|about)\s+", "", text.strip(), flags=re.IGNORECASE)
    if not text:
        return [say("What should I remind you of? Usage: /remind WHEN TEXT")]
    if due <= now:
        return [say(f"{when_text(due, tz)} has already passed; give a time in the future.")]
    inbound = Inbound.from_dict(state["inbound"])
    job_id = "rem" + hashlib.sha256(state["plan_id"].encode()).hexdigest()[:6]
    await jobs.put(id=job_id, kind=REMINDER, due_at=due, missed_policy=REMINDER_POLICY,
                   payload={"channel": inbound.channel, "chat": inbound.chat, "text": text,
                            "repeat": repeat})
    every = f", then every {repeat.removesuffix('ly')}" if repeat else ""
    return [say(f"Reminder {job_id} set for {when_text(due, tz)}{every}: {text}")]
