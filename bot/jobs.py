"""The jobs loop: due jobs (reminders, the daily summary, plans released from an undo window,
proposals of outside agents), the escalation ladder for unanswered cards, and housekeeping.

Everything it produces goes out through the app's ``deliver``; the jobs themselves live in the
``jobs`` table, so a restart loses none and two instances never run one twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, time, timedelta
from time import monotonic as time_monotonic
from zoneinfo import ZoneInfo

from bot.adapters.base import Liveness
from config import Settings
from connectors.base import ConnectorError
from connectors.calendar import CalendarConnector
from connectors.email import EmailConnector
from graph.director import RELEASE, Director
from graph.events import PLAYBOOK, PROPOSAL, Inbound, Reply
from graph.mail_inbox import MailInbox
from graph.playbook_runner import PlaybookRunner
from graph.scheduler import SUMMARY, Defer, Scheduler, in_quiet_hours, next_occurrence
from memory.models import Job, utcnow

log = logging.getLogger(__name__)
PLAYBOOK_SYNC_TICKS = 60
"""How many ticks of the loop between two reads of the playbook files."""
PROPOSAL_RETRY = timedelta(minutes=1)
"""How long a proposal waits when no chat adapter is running to show it."""


class JobsLoop:
    """See the module docstring.

    Args:
        settings: ``[schedule]`` and ``[memory]`` settings.
        director: runs plans, summaries and escalations.
        deliver: sends replies to their channels.
        channels: the names of the running chat adapters (where summaries may go).
        operators: operator ids per channel (who gets summaries and escalations).
    """

    def __init__(self, *, settings: Settings, director: Director,
                 deliver: Callable[[list[Reply]], Awaitable[None]],
                 channels: Callable[[], Iterable[str]], operators: dict[str, set[str]]) -> None:
        self.settings = settings
        self.director = director
        self.timezone = ZoneInfo(settings.operator.timezone)
        self._deliver = deliver
        self._channels = channels
        self._operators = operators
        self.scheduler = Scheduler(storage=director.storage, timezone=self.timezone)
        self.scheduler.register(RELEASE, director.release)
        self.scheduler.register(PROPOSAL, self.show_proposal)
        self.playbooks = PlaybookRunner(directory=settings.storage.data_dir / "playbooks",
                                        director=director, timezone=self.timezone,
                                        targets=self.summary_targets)
        self.scheduler.register(PLAYBOOK, self.playbooks.run)
        email = director.deps.connectors.get("email")
        mail = settings.connectors.email
        self.mail = MailInbox(storage=director.storage, email=email, memory=director.deps.memory,
                              rules=mail.triage, poll_seconds=mail.poll_seconds,
                              on_mail=self.playbooks.mail_arrived) \
            if isinstance(email, EmailConnector) else None
        self._next_poll = 0.0
        self._mail_task: asyncio.Task | None = None
        self.mail_liveness = Liveness()
        """When the mail poller last looked (``alive``: polled, or found nothing due) and last
        read new mail (``event``); the watchdog's view of it."""
        self.mail_poll_started: datetime | None = None
        """When the poll in progress started (None: none is)."""

    async def show_proposal(self, job: Job, late: timedelta) -> list[Reply]:
        """An outside agent's proposal (``solo mcp``) becomes a message in the operator's first
        chat, run by the director like any other (the job id is its event id, so a re-run job
        starts one plan); it waits while no chat adapter is running."""
        targets = self.summary_targets()
        if not targets:
            raise Defer(utcnow() + PROPOSAL_RETRY)
        channel, chat = targets[0]
        payload = job.payload
        return await self.director.handle(Inbound(
            channel=channel, chat=chat, actor=payload.get("by") or "agent:unknown",
            event_id=job.id, text=payload["text"],
            attachment={"kind": PROPOSAL, "reason": payload.get("reason", "")}))

    def summary_targets(self) -> list[tuple[str, str]]:
        """Where the daily summary goes: each operator on each running channel (or on the
        ``[schedule] summary_channels``)."""
        wanted = set(self.settings.schedule.summary_channels)
        return [(c, chat) for c, chat in self.operator_targets() if not wanted or c in wanted]

    def operator_targets(self) -> list[tuple[str, str]]:
        """Each operator on each running channel, as ``(channel, chat)``."""
        targets = []
        for name in self._channels():
            if name == "console":
                targets.append((name, "terminal"))
            elif name == "slack":
                targets += [(name, f"{op}||{op}") for op in sorted(self._operators.get(name, ()))]
            else:
                targets += [(name, op) for op in sorted(self._operators.get(name, ()))]
        return targets

    async def sync_playbooks(self) -> list[str]:
        """Make the playbook jobs match the files in ``<data_dir>/playbooks``; the errors of
        broken files."""
        errors = await self.playbooks.sync()
        calendar = self.director.deps.connectors.get("calendar")
        if isinstance(calendar, CalendarConnector):
            try:
                await self.playbooks.watch_calendar(calendar)
            except ConnectorError as exc:  # the next look, a minute on, tries again
                log.warning("calendar not read for playbooks: %s", exc)
        return errors

    async def schedule_daily_summary(self) -> None:
        """Make sure the daily summary job exists (idempotent) and can run."""
        async def send(job: Job, late: timedelta) -> list[Reply]:
            now = job.due_at + late
            quiet_until = in_quiet_hours(now, self.settings.schedule.quiet_hours, self.timezone)
            if quiet_until is not None:
                raise Defer(quiet_until)
            return await self.director.summary_for(self.summary_targets(), now=now)

        self.scheduler.register(SUMMARY, send)
        at = self.settings.schedule.summary_time
        if not at:
            return
        hour, minute = (int(part) for part in at.split(":"))
        now = utcnow().astimezone(self.timezone)
        due = datetime.combine(now.date(), time(hour, minute), self.timezone)
        if due <= now:
            due = next_occurrence(due, "daily", after=now, timezone=self.timezone)
        await self.director.storage.jobs.put(
            id="daily-summary", kind=SUMMARY, due_at=due, payload={"repeat": "daily", "at": at},
            missed_policy="catch_up_within:14400")

    async def escalate(self, now: datetime | None = None) -> None:
        """One pass of the escalation ladder (held during quiet hours)."""
        now = now or utcnow()
        if in_quiet_hours(now, self.settings.schedule.quiet_hours, self.timezone):
            await self._deliver(await self.director.expire_due())
            return
        targets: dict[str, list[str]] = {}
        for channel, chat in self.summary_targets():
            targets.setdefault(channel, []).append(chat)
        await self._deliver(await self.director.escalate(
            targets=targets, now=now,
            after=timedelta(minutes=self.settings.schedule.escalate_after_minutes)))

    async def run(self, *, every: float = 1.0, escalate_every: int = 30) -> None:
        """Run due jobs every ``every`` seconds, and the escalation ladder every
        ``escalate_every`` ticks, until cancelled (started by the CLI)."""
        ticks = 0
        while True:
            try:
                if ticks % PLAYBOOK_SYNC_TICKS == 0:  # file edits are picked up within a minute
                    await self.sync_playbooks()
                await self._deliver(await self.scheduler.tick())
                if ticks % escalate_every == 0:
                    await self.escalate()
                self.poll_mail_soon()
            except Exception:
                log.exception("scheduler tick failed; trying again")
            ticks += 1
            await asyncio.sleep(every)

    async def poll_mail(self, *, now: float | None = None) -> None:
        """Read new mail when ``poll_seconds`` have passed (at once after a start: the cursor
        is durable, so downtime only delays mail) and the backoff after a failure allows."""
        now = time_monotonic() if now is None else now
        if self.mail is None:
            return
        if now < self._next_poll or not await self.mail.due():
            self.mail_liveness.alive()  # looked: nothing due yet
            return
        self._next_poll = now + self.settings.connectors.email.poll_seconds
        self.mail_poll_started = utcnow()
        try:
            replies = await self.mail.poll(self.summary_targets())
        finally:
            self.mail_poll_started = None
        if self.mail.fetched:
            self.mail_liveness.event()
        else:
            self.mail_liveness.alive()
        await self._deliver(replies)

    def poll_mail_soon(self) -> None:
        """:meth:`poll_mail` in its own task unless one runs (a slow mail server never holds up
        due jobs)."""
        if self.mail is not None and (self._mail_task is None or self._mail_task.done()):
            self._mail_task = asyncio.create_task(self._poll_mail_logged(), name="mail poll")

    async def _poll_mail_logged(self) -> None:
        try:
            await self.poll_mail()
        except Exception:
            log.exception("mail poll failed; trying again")

    async def restart_mail_poll(self) -> None:
        """Drop a poll that does not finish and start a fresh one now (the watchdog's cure
        for a poller that stopped looking); returns once the fresh one ended."""
        await self.stop_mail_poll()
        self._next_poll = 0.0
        self.poll_mail_soon()
        if self._mail_task is not None:
            await asyncio.wait({self._mail_task})

    async def stop_mail_poll(self) -> None:
        """Cancel the poll in progress, if any (at shutdown)."""
        task, self._mail_task = self._mail_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def housekeeping(self) -> None:
        """Prune old checkpoints, index what happened into memory, compact old turns."""
        try:
            pruned = await self.director.prune(
                older_than=timedelta(days=self.settings.memory.checkpoint_retention_days))
            memory = self.director.deps.memory
            if memory is not None:
                await memory.catch_up(notes_dir=self.director.deps.notes_dir)
                await memory.compact_turns()
            if pruned:
                log.info("pruned %d finished plan threads", pruned)
        except Exception:
            log.exception("housekeeping failed; it runs again later")
