"""Calendar and tasks: the agenda of a day (``agenda``), booking, moving and cancelling an event
(``event``), adding, listing and completing tasks (``task``)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from connectors.calendar import CalendarConnector, CalendarEntry
from graph.handlers.info import NOT_CONFIGURED
from graph.slots import CHANGE_EVENT, SlotReader, strip_opening
from graph.state import DirectorDeps, Planned, PlanState, say
from graph.timefmt import event_line
from graph.timeparse import cut, parse_when
from graph.understanding import Intent
from memory.models import utcnow

DEFAULT_MINUTES = 30


def task_ref(uid: str) -> str:
    """A short, stable handle for a task (``/tasks done REF``, the Done button)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:6]


def _duration(value: str | None) -> timedelta:
    if not value:
        return timedelta(minutes=DEFAULT_MINUTES)
    hours = minutes = 0
    if "H" in value:
        hours = int(value.split("T")[-1].split("H")[0])
    if value.endswith("M"):
        minutes = int(value.split("H")[-1].split("T")[-1].rstrip("M"))
    return timedelta(hours=hours, minutes=minutes) or timedelta(minutes=DEFAULT_MINUTES)


async def answer_calendar(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """Show the agenda or open tasks, or plan an event or a task."""
    calendar = deps.connectors.get("calendar")
    if not isinstance(calendar, CalendarConnector):
        return {"replies": [say(NOT_CONFIGURED[intent.name])]}
    now = utcnow().astimezone(deps.timezone)
    slots = intent.slots
    if intent.name == "agenda":
        return await _agenda(slots, calendar, now)
    if intent.name == "event":
        return await _event(slots, calendar, now, str(state["inbound"].get("text", "")))
    return await _task(slots, calendar)


async def _agenda(slots: dict[str, Any], calendar: CalendarConnector, now: datetime) -> Planned:
    day = now
    if slots.get("when"):
        day = datetime.fromisoformat(slots["when"]).astimezone(calendar.timezone)
    elif slots.get("text"):
        when = parse_when(slots["text"], now=now)
        if when is None:
            return {"replies": [say("Which day? /agenda today, /agenda tomorrow or "
                                    "/agenda 2026-12-24.")]}
        day = when.at
    events = await calendar.day(day)
    head = f"{day:%a %d %b} ({calendar.timezone.key})"
    if not events:
        return {"replies": [say(f"{head}: nothing booked.")]}
    return {"replies": [say("\n".join([f"{head}:"] + [event_line(e, calendar.timezone)
                                                      for e in events]))]}


_STOPWORDS = {"to", "on", "at", "for", "from", "the", "my", "our", "a", "an", "with", "event",
              "meeting", "appointment", "calendar", "in", "of"}
HORIZON = timedelta(days=60)


async def _change_event(said: str, slots: dict[str, Any], calendar: CalendarConnector,
                        now: datetime) -> Planned | None:
    """"move the Acme call to 4pm", "cancel the dentist": the event is found by the words of
    its title among the next two months' events; None when the message is not a change."""
    said = strip_opening(said)
    change = CHANGE_EVENT.match(said)
    if change is None:
        return None
    cancel = change["verb"].lower() in ("cancel", "call off", "delete", "remove", "drop")
    rest = said[change.end():]
    when = parse_when(rest, now=now)
    words = set(re.findall(r"[\w'-]+", (cut(rest, when.spans) if when else rest).lower()))
    words -= _STOPWORDS
    events = await calendar.events_between(now, now + HORIZON)
    scored = [(len(words & set(e.title.lower().split())), e) for e in events]
    best = max(scored, key=lambda pair: pair[0], default=(0, None))
    event = best[1] if best[0] else None
    if event is None or event.start is None or event.end is None:
        return {"replies": [say(f"No event in the next two months matches {rest!r}; "
                                "/agenda DATE shows a day.")]}
    if cancel:
        return {"steps": [{"action": asdict(calendar.cancel_event(event.uid, event.title))}]}
    if when is None or when.at <= now:
        return {"replies": [say(f"Move {event.title!r} to when? e.g. \"move {event.title} to "
                                "tomorrow at 4pm\".")]}
    start = when.at
    if not re.search(r"\d{1,2}(?::\d{2})?\s*(?:am|pm)?|noon|morning|afternoon|evening",
                     rest, re.I) and start.time() != event.start.astimezone(now.tzinfo).time():
        # "move it to friday": same time of day, another day
        start = datetime.combine(start.date(), event.start.astimezone(now.tzinfo).time(),
                                 now.tzinfo)
    return {"steps": [{"action": asdict(calendar.move_event(
        event.uid, event.title, start, start + (event.end - event.start)))}]}


async def _event(slots: dict[str, Any], calendar: CalendarConnector, now: datetime,
                 said: str) -> Planned:
    changed = await _change_event(slots.get("text", said) if slots.get("command") == "event"
                                  else said, slots, calendar, now)
    if changed is not None:
        return changed
    if slots.get("command") == "event" and slots.get("text"):
        slots = SlotReader(webhooks=[], now=lambda: now).read("event", slots["text"])
    if not slots.get("when") or not slots.get("text"):
        return {"replies": [say("When, and what? Write /event WHEN TITLE, e.g. /event tomorrow "
                                "15:00 Acme call for 45m.")]}
    start = datetime.fromisoformat(slots["when"])
    if start <= now:
        return {"replies": [say(f"{start:%a %d %b %H:%M} has passed; nothing was booked.")]}
    action = calendar.create_event(str(slots["text"]), start,
                                   start + _duration(slots.get("duration")))
    return {"steps": [{"action": asdict(action)}]}


def _best_match(tasks: list[CalendarEntry], words: str) -> CalendarEntry | None:
    """The open task sharing the most words with ``words`` (None if none shares any)."""
    wanted = set(words.lower().split())
    scored = [(len(wanted & set(t.title.lower().split())), t) for t in tasks]
    best = max(scored, key=lambda pair: pair[0], default=(0, None))
    return best[1] if best[0] else None


async def _task(slots: dict[str, Any], calendar: CalendarConnector) -> Planned:
    text = str(slots.get("text") or "").strip()
    if slots.get("command") == "done":
        chosen = _best_match(await calendar.open_tasks(), text)
        if chosen is None:
            return {"replies": [say(f"No open task matches {text!r}; /tasks lists them.")]}
        return {"steps": [{"action": asdict(calendar.complete_task(chosen.uid, chosen.title))}]}
    if slots.get("command") != "tasks":
        if not text:
            return {"replies": [say("What is the task? /task TEXT")]}
        return {"steps": [{"action": asdict(calendar.create_task(text))}]}
    tasks = await calendar.open_tasks()
    if text.lower().startswith("done"):
        ref = text[4:].strip().lower()
        chosen = [t for t in tasks if task_ref(t.uid) == ref]
        if not chosen:
            return {"replies": [say(f"No open task {ref!r}; /tasks lists them.")]}
        return {"steps": [{"action": asdict(calendar.complete_task(chosen[0].uid,
                                                                   chosen[0].title))}]}
    if not tasks:
        return {"replies": [say("No open tasks.")]}
    lines = ["Open tasks:"]
    for task in tasks:
        due = f" (due {task.due.astimezone(calendar.timezone):%a %d %b})" if task.due else ""
        lines.append(f"{task_ref(task.uid)} {task.title}{due}")
    return {"replies": [{"kind": "choice", "text": "\n".join(lines),
                         "run": [(f"Done {task_ref(t.uid)}", f"/tasks done {task_ref(t.uid)}")
                                 for t in tasks[:8]]}]}
