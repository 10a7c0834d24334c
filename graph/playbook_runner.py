"""Playbooks at work: files → scheduled jobs, and one run per occurrence through the director.

:meth:`PlaybookRunner.sync` reads ``<data_dir>/playbooks`` and keeps one job per enabled,
unpaused, scheduled playbook in the ``jobs`` table (``playbook:NAME``, due at its next
occurrence in the operator's zone, its missed-run policy as the job's). The scheduler's leases
run each occurrence in one process; :meth:`PlaybookRunner.run` claims the occurrence in the run
ledger before doing anything (so a re-run after a crash, or another instance, does not start it
twice; a run whose process died after the claim but before its plan began is carried on when
the job comes round again), then goes through the steps:

- ``collect``: memory items of those kinds (notes, receipts, facts, mail) created since the
  last run (or the last 7 days), after indexing what is new; ``plans``: the open plans;
  ``calendar``: the next seven days' events;
- ``curate``: facts worth dropping (past expiry, superseded by a newer fact, duplicates),
  for a ``forget`` action: ``/forget`` of their ids, a card with one step per fact;
- ``only_if = "collected"``: nothing collected → the run ends ``idle`` in the ledger, with no
  model call and nothing said in chat;
- ``draft``: the template filled with what was collected; with ``model = true`` (and a model
  configured) the model writes the text from it, inside the run's plan, priced against the
  playbook's ``budget_usd`` and the global caps: over a cap, the run waits on an
  approve-to-exceed card (``graph/nodes/understand.py``) while other runs go on;
- the action (``note``, ``send``, ``email``, ``forget``) becomes the matching command, run by
  the director as a plan of its own (``actor`` ``playbook:NAME``): gated, approved, executed
  once, receipted like anything the operator types. Text gathered from memory is outside text,
  so when the draft carries any, the step waits for a tap whatever its risk. With no action,
  the draft is said in chat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from connectors.base import ConnectorError
from connectors.calendar import CalendarConnector
from connectors.mailbox import FetchedMail
from graph.events import PLAYBOOK, Inbound, Reply
from graph.handlers.memory import MAX_FORGET
from graph.mail_inbox import memory_text
from graph.playbooks import JOB_PREFIX, Playbook, fill, load_playbooks, put_event_run, schedule
from graph.state import plan_id_for
from graph.timefmt import when_text
from memory.models import Job, PlaybookRun, utcnow

if TYPE_CHECKING:  # the director's handlers import this module's neighbours
    from graph.director import Director

log = logging.getLogger(__name__)
FIRST_LOOKBACK = timedelta(days=7)
COLLECTED = {"notes": "note", "receipts": "receipt", "facts": "fact", "mail": "mail"}
MAX_ITEMS = 50
LOOK_AHEAD = timedelta(minutes=5)
"""How far past a playbook's lead time the calendar is read (the jobs loop looks every
minute)."""
NOTHING_TO_DROP = "nothing to drop"


class PlaybookRunner:
    """See the module docstring.

    Args:
        directory: ``<data_dir>/playbooks``.
        director: runs the action's plan; its storage and memory.
        timezone: the operator's zone (schedules are local times).
        targets: where a run's messages go (the daily summary's targets; the first is used).
    """

    def __init__(self, *, directory: Path, director: Director, timezone: ZoneInfo,
                 targets: Callable[[], list[tuple[str, str]]]) -> None:
        self.directory = directory
        self.director = director
        self.storage = director.storage
        self.timezone = timezone
        self._targets = targets
        self._reported: set[str] = set()

    def load(self) -> tuple[dict[str, Playbook], list[str]]:
        """The playbooks in the directory by name, and the broken files' errors."""
        playbooks, errors = load_playbooks(self.directory)
        return {p.name: p for p in playbooks}, errors

    async def sync(self, now: datetime | None = None) -> list[str]:
        """Make the jobs match the files (see the module docstring); the errors of broken
        files (each logged once per version of the file)."""
        now = now or utcnow()
        playbooks, errors = self.load()
        for error in errors:
            if error not in self._reported:
                self._reported.add(error)
                log.warning("playbook not loaded: %s", error)
        paused = await self.storage.playbooks.paused()
        scheduled = {job.id: job for job in await self.storage.jobs.scheduled(PLAYBOOK)}
        wanted = set()
        for name, playbook in playbooks.items():
            await self.storage.playbooks.see_version(name, playbook.version)
            if not playbook.spec.enabled or name in paused:
                continue
            repeat = playbook.repeat(self.timezone, now)
            if repeat is None:
                continue
            job_id = f"{JOB_PREFIX}{name}"
            wanted.add(job_id)
            job = scheduled.get(job_id)
            if job is None or job.payload.get("repeat") != repeat:
                # New or changed: (re)scheduled. Unchanged jobs keep their due time, so a run
                # missed while the process was down is still seen as missed.
                await schedule(self.storage, playbook, self.timezone, now)
        for job_id in set(scheduled) - wanted:
            if job_id.startswith(JOB_PREFIX):
                await self.storage.jobs.cancel(job_id)
        return errors

    async def watch_calendar(self, calendar: CalendarConnector,
                             now: datetime | None = None) -> None:
        """A run of each enabled, unpaused playbook with ``event_starting`` for each calendar
        event that starts within its lead time (looked at a little ahead, so the run's job is
        there before it is due; once per event and start time)."""
        now = now or utcnow()
        paused = await self.storage.playbooks.paused()
        watching = [p for p in self.load()[0].values() if p.spec.enabled and
                    p.spec.trigger.event_starting is not None and p.name not in paused]
        if not watching:
            return
        lead = max(p.spec.trigger.event_starting for p in watching)
        events = await calendar.events_between(now, now + timedelta(minutes=lead) + LOOK_AHEAD)
        for playbook in watching:
            trigger = playbook.spec.trigger
            for event in events:
                if event.start is None or event.start < now or event.all_day or \
                        trigger.event_title.lower() not in event.title.lower():
                    continue
                due = event.start - timedelta(minutes=trigger.event_starting or 0)
                if due > now + LOOK_AHEAD:
                    continue
                await put_event_run(
                    self.storage, playbook.name, event="calendar",
                    key=f"{event.uid}@{event.start.isoformat()}", due_at=max(due, now),
                    text=f"Calendar event \"{event.title}\" at "
                         f"{when_text(event.start, self.timezone, weekday=True)}" +
                         (f"; its description: {event.description}" if event.description
                          else ""))

    async def mail_arrived(self, mail: FetchedMail) -> None:
        """A run of each enabled, unpaused playbook whose mail rule matches ``mail`` (once per
        message, however often it is read)."""
        matching = [p for p in self.load()[0].values() if p.spec.enabled and
                    p.spec.trigger.matches_mail(mail.from_addr, mail.subject)]
        paused = await self.storage.playbooks.paused() if matching else set()
        for playbook in matching:
            if playbook.name not in paused:
                await put_event_run(self.storage, playbook.name, event="mail",
                                    key=f"{mail.folder}:{mail.uidvalidity}:{mail.uid}",
                                    text=memory_text(mail))

    async def _open_plans(self) -> list[str]:
        """The plans still running or waiting for a decision, as items."""
        plans = await self.storage.plans.recent(MAX_ITEMS)
        return [f"- plan {plan.id[:8]} ({plan.status}): "
                f"{str(plan.inbound.get('text') or '')[:150]}"
                for plan in plans if plan.status in ("running", "waiting")]

    async def _week_ahead(self) -> list[str]:
        """The calendar's events of the next seven days, as items (none without a calendar;
        a calendar that cannot be read is said as an item, not a failed run)."""
        calendar = self.director.deps.connectors.get("calendar")
        if not isinstance(calendar, CalendarConnector):
            return []
        now = utcnow()
        try:
            events = await calendar.events_between(now, now + timedelta(days=7))
        except ConnectorError as exc:
            return [f"- (the calendar could not be read: {exc})"]
        return [f"- {when_text(e.start, self.timezone, weekday=True)}: {e.title}"
                for e in events if e.start is not None][:MAX_ITEMS]

    async def _interrupted(self, run: PlaybookRun) -> bool:
        """Whether a claimed run never got its plan going (its process died in between)."""
        if run.status == "running":
            return True
        return run.status == "started" and bool(run.plan_id) and \
            await self.storage.plans.get(run.plan_id) is None

    async def run(self, job: Job, late: timedelta) -> list[Reply]:
        """One occurrence of the job's playbook (see the module docstring)."""
        name = job.payload["name"]
        playbook = self.load()[0].get(name)
        if playbook is None:
            log.warning("playbook %s is gone or broken; occurrence %s not run", name,
                        job.due_at.isoformat())
            return []
        targets = self._targets()
        if not targets:
            return []
        channel, chat = targets[0]
        manual = bool(job.payload.get("manual"))
        event = job.payload.get("event")
        run_id = f"{name}@{event}/{job.payload['key']}" if event else \
            f"{name}@{job.due_at.astimezone(self.timezone):%Y-%m-%dT%H:%M}" + \
            (f"/{job.id.rsplit(':', 1)[-1][:8]}" if manual else "")
        since = await self.storage.playbooks.last_run_at(name)
        if not await self.storage.playbooks.claim(run_id=run_id, playbook=name,
                                                  version=playbook.version,
                                                  occurrence=job.due_at,
                                                  manual=manual or bool(event)):
            claimed = await self.storage.playbooks.get(run_id)
            if claimed is None or not await self._interrupted(claimed):
                return []
            # The process that claimed it died before its plan began (collecting and drafting
            # have no effects): carry on. The plan's id derives from the run, so a plan that
            # did begin is not begun twice.
            log.warning("playbook run %s was interrupted before its plan began; resuming",
                        run_id)
            since = await self.storage.playbooks.last_run_at(name, before=claimed.started_at)
        since = since or job.due_at - FIRST_LOOKBACK
        # What the event brought (a webhook's body, a mail) is the run's first item: outside
        # text, like everything collected.
        items = [f"- {job.payload['text'].strip()}"] if (job.payload.get("text") or "").strip() \
            else []
        text, by_model = "", False
        to_drop: list[str] = []
        memory, indexed = self.director.deps.memory, False
        for step in playbook.spec.steps:
            if step.kind == "collect":
                kinds = [COLLECTED[k] for k in step.collect or [] if k in COLLECTED]
                if kinds and memory is not None:
                    if not indexed:  # what happened since the last housekeeping counts too
                        await memory.catch_up(notes_dir=self.director.deps.notes_dir)
                        indexed = True
                    found = await memory.store.created_since(kinds, since=since,
                                                             limit=MAX_ITEMS)
                    items += [f"- {item.text.strip()[:300]}" for item in found]
                items += await self._open_plans() if "plans" in (step.collect or []) else []
                items += await self._week_ahead() if "calendar" in (step.collect or []) else []
            elif step.kind == "curate" and memory is not None:
                for item, kind, why in await memory.store.facts_to_review(now=utcnow()):
                    if kind in (step.curate or []):
                        items.append(f"- {item.id}: {item.text.strip()[:200]} ({why})")
                        to_drop.append(item.id)
                to_drop = to_drop[:MAX_FORGET]
            elif step.kind == "only_if" and not items:
                curating = any(s.kind == "curate" for s in playbook.spec.steps)
                await self.storage.playbooks.settle(
                    run_id, status="idle", detail=NOTHING_TO_DROP if curating else
                    f"nothing new since {when_text(since, self.timezone)}")
                return []
            elif step.kind == "draft":
                text = fill(step.draft or "", {
                    "items": "\n".join(items) or "(nothing)", "count": len(items),
                    "since": when_text(since, self.timezone),
                    "date": job.due_at.astimezone(self.timezone).strftime("%Y-%m-%d")})
                by_model = step.model and self.director.deps.meter is not None
        action = playbook.spec.steps[-1]
        text = text or "\n".join(items) or playbook.spec.description or name
        if action.kind == "forget":  # the facts themselves are the card: one step each
            if not to_drop:
                await self.storage.playbooks.settle(run_id, status="idle",
                                                    detail=NOTHING_TO_DROP)
                return []
            text, by_model = " ".join(to_drop), False
        prefix = {"note": "/note ", "send": f"/send {action.send} ", "forget": "/forget ",
                  "email": f"/email {action.email} {action.subject or name}\n"}.get(action.kind)
        if prefix is None and not by_model:  # no action: the draft is the result
            await self.storage.playbooks.settle(run_id, status="done", detail=text[:200])
            return [Reply("message", channel, chat, text=f"▶ {name}: {text}")]
        attachment = {"kind": PLAYBOOK, "run": run_id, "external": bool(items) or by_model}
        if by_model:  # written in the plan (priced against the run's budget; over it, a card)
            attachment["draft"] = {"brief": playbook.spec.description or name,
                                   "material": text, "budget_usd": playbook.spec.budget_usd,
                                   "prefix": prefix or ""}
        inbound = Inbound(channel=channel, chat=chat, actor=f"playbook:{name}",
                          event_id=f"playbook:{run_id}", text=(prefix or "") + text,
                          attachment=attachment)
        await self.storage.playbooks.settle(
            run_id, status="started", plan_id=plan_id_for(channel, inbound.event_id))
        return await self.director.handle(inbound)
