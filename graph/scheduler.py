"""The durable scheduler: due jobs are claimed from the ``jobs`` table under a lease, run, and
rescheduled or finished. Jobs survive restarts; two processes on one PostgreSQL database never
run the same job twice at once (the lease is a conditional UPDATE).

Missed-run policies (for jobs due while nothing was running): ``catch_up_within:SECONDS`` runs a
job late if it is at most that late, else skips it and reports the skip; ``skip_and_report``
skips anything late beyond a small tolerance.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from graph.cron import Cron
from graph.events import Reply
from graph.timefmt import when_text
from memory.models import Job, utcnow
from memory.stores import Storage

log = logging.getLogger(__name__)

REMINDER = "reminder"
SUMMARY = "summary"
Handler = Callable[[Job, timedelta], Awaitable[list[Reply]]]
REMINDER_POLICY = "catch_up_within:43200"  # a reminder up to 12 hours late is still useful
TOLERANCE = timedelta(seconds=90)


def next_occurrence(due: datetime, repeat: str | None, *, after: datetime,
                    timezone: ZoneInfo, at: str | None = None) -> datetime | None:
    """The next time a repeating job is due after ``after``, at the same local wall-clock time
    (so "every Monday at 9" stays at 9 across DST changes) or at ``at`` ("HH:MM", for jobs
    whose run was deferred); None if it does not repeat."""
    if (repeat or "").startswith("cron:"):  # a playbook's schedule (graph/cron.py)
        return Cron.parse(repeat.removeprefix("cron:")).next_after(after, timezone)
    step = {"daily": 1, "weekly": 7}.get(repeat or "")
    if step is None:
        return None
    local = due.astimezone(timezone)
    wall = time(*map(int, at.split(":"))) if at else local.time()
    day = local.date()
    while True:
        day += timedelta(days=step)
        candidate = datetime.combine(day, wall, timezone)
        if candidate > after:
            return candidate


class Defer(Exception):
    """Raised by a handler to run its job later (e.g. after quiet hours) without advancing a
    repeat."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"deferred until {until.isoformat()}")
        self.until = until


def in_quiet_hours(moment: datetime, quiet: str, timezone: ZoneInfo) -> datetime | None:
    """When quiet hours ``"HH:MM-HH:MM"`` (local) cover ``moment``, the moment they end."""
    if not quiet:
        return None
    start_text, end_text = quiet.split("-")
    start = time(*map(int, start_text.split(":")))
    end = time(*map(int, end_text.split(":")))
    local = moment.astimezone(timezone)
    now = local.time()
    inside = (start <= now or now < end) if start > end else (start <= now < end)
    if not inside:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, timezone)


class Scheduler:
    """Runs due jobs. Call :meth:`tick` periodically; it returns the replies to deliver.

    Args:
        storage: the ``jobs`` table (and the audit log).
        timezone: the operator's zone (repeats keep local time).
        owner: this process's lease owner id.
        lease: how long a claimed job is reserved (a crashed owner's job is taken over after).
    """

    def __init__(self, *, storage: Storage, timezone: ZoneInfo, owner: str | None = None,
                 lease: timedelta = timedelta(minutes=5)) -> None:
        self.storage = storage
        self.timezone = timezone
        self.owner = owner or f"solo-{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.handlers: dict[str, Handler] = {REMINDER: self._remind}

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler(job, late)`` for due jobs of ``kind``; it returns replies."""
        self.handlers[kind] = handler

    async def tick(self, now: datetime | None = None) -> list[Reply]:
        """Claim and run every job due at ``now``."""
        now = now or utcnow()
        replies: list[Reply] = []
        for job in await self.storage.jobs.claim_due(owner=self.owner, now=now,
                                                     lease=self.lease):
            late = now - job.due_at
            run = self._in_time(job, late)
            try:
                if run:
                    replies += await self.handlers[job.kind](job, late)
                elif job.kind == REMINDER:
                    replies += self._skipped(job)
                error = None
            except Defer as deferred:
                await self.storage.jobs.finish(job.id, owner=self.owner,
                                               next_due=deferred.until)
                continue
            except Exception as exc:  # one bad job must not stop the others
                log.exception("job %s failed", job.id)
                error = repr(exc)
            await self.storage.audit.append(
                actor="scheduler", decision=f"job.{'ran' if run else 'skipped'}",
                channel=job.payload.get("channel"), intent=job.kind,
                dedup_key=f"job:{job.id}:{job.due_at.isoformat()}",
                detail={"job": job.id, "due": job.due_at.isoformat(), "error": error,
                        "late_seconds": int(late.total_seconds())})
            await self.storage.jobs.finish(job.id, owner=self.owner, error=error,
                                           next_due=next_occurrence(
                                               job.due_at, job.payload.get("repeat"),
                                               after=now, timezone=self.timezone,
                                               at=job.payload.get("at")))
        return replies

    @staticmethod
    def _in_time(job: Job, late: timedelta) -> bool:
        if late <= TOLERANCE:
            return True
        policy, _, window = job.missed_policy.partition(":")
        return policy == "catch_up_within" and late <= timedelta(seconds=int(window or 0))

    async def _remind(self, job: Job, late: timedelta) -> list[Reply]:
        text = f"⏰ Reminder: {job.payload['text']}"
        if late > TOLERANCE:
            due = when_text(job.due_at, self.timezone, weekday=True)
            text += f" (late: it was due {due}, while I was not running)"
        return [Reply("message", job.payload["channel"], job.payload["chat"], text=text)]

    def _skipped(self, job: Job) -> list[Reply]:
        text = (f"Missed while I was not running: reminder \"{job.payload['text']}\" was due "
                f"{when_text(job.due_at, self.timezone, weekday=True)}; too late to send now.")
        return [Reply("message", job.payload["channel"], job.payload["chat"], text=text)]
