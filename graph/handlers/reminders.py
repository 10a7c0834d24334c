"""Reminders: ``/remind WHEN TEXT``, free-text reminders, ``/reminders [cancel ID]``.
Scheduling and cancelling are steps on Solo OS's own state (``graph.own_state``)."""

from __future__ import annotations

import re
from datetime import datetime

from graph.events import Inbound
from graph.own_state import SCHEDULE, UNSCHEDULE
from graph.scheduler import REMINDER
from graph.state import DirectorDeps, Planned, PlanState, own_step, say
from graph.timefmt import when_text
from graph.timeparse import cut, parse_when
from graph.understanding import Intent
from memory.models import utcnow


async def answer_reminder(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """/remind WHEN TEXT (and free-text reminders) and /reminders cancel ID as steps;
    /reminders answered directly."""
    slots, tz = intent.slots, deps.timezone
    jobs = deps.storage.jobs
    if slots.get("command") == "reminders":
        words = slots.get("text", "").split()
        if words[:1] == ["cancel"] and len(words) == 2:
            return own_step(UNSCHEDULE, id=words[1])
        scheduled = await jobs.scheduled(REMINDER)
        if not scheduled:
            return {"replies": [say("No reminders are scheduled.")]}
        return {"replies": [say("\n".join([
            "Scheduled reminders (cancel with /reminders cancel ID):"] + [
            f"{job.id} · {when_text(job.due_at, tz)}"
            + (f" · every {job.payload['repeat'].removesuffix('ly')}"
               if job.payload.get("repeat") else "") + f" · {job.payload['text']}"
            for job in scheduled]))]}
    now = utcnow().astimezone(tz)
    text, when, repeat = slots.get("text", ""), slots.get("when"), slots.get("repeat")
    if when:
        due = datetime.fromisoformat(when)
    else:  # /remind WHEN TEXT: find the time in the words
        found = parse_when(text, now=now)
        if found is None:
            return {"replies": [say(
                "When should I remind you? For example: /remind tomorrow 9am call Alice, "
                "/remind in 2 hours check the oven, /remind every Monday at 9 plan the week.")]}
        due, repeat, text = found.at, found.repeat, cut(text, found.spans)
    text = re.sub(r"^(?:me\s+)?(?:to|about)\s+", "", text.strip(), flags=re.IGNORECASE)
    if not text:
        return {"replies": [say("What should I remind you of? Usage: /remind WHEN TEXT")]}
    if due <= now:
        return {"replies": [say(f"{when_text(due, tz)} has already passed; give a time in the "
                                "future.")]}
    inbound = Inbound.from_dict(state["inbound"])
    return own_step(SCHEDULE, due=due.isoformat(), text=text, repeat=repeat,
                    channel=inbound.channel, chat=inbound.chat)
