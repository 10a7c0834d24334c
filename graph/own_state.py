"""Solo OS's own state as a connector: remembering and forgetting facts, scheduling and
cancelling reminders.

These writes go through the same spine as a webhook or a note: a step with a diff, an outbox row
and an idempotency key, a receipt, an audit event, ``/plan`` and ``/undo``. Ids derive from the
key, so a re-run after a crash finds what the first run wrote.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

from connectors.base import Action, Connector, Diff, PermanentError, Receipt
from graph.scheduler import REMINDER, REMINDER_POLICY
from graph.timefmt import when_text
from memory.knowledge import Memory
from memory.stores import Storage

NAME = "solo"
REMEMBER, FORGET = "memory.remember", "memory.forget"
SCHEDULE, UNSCHEDULE = "reminder.create", "reminder.cancel"
KINDS = (REMEMBER, FORGET, SCHEDULE, UNSCHEDULE)


def _id_for(prefix: str, key: str, length: int) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:length]


def fact_id_for(key: str) -> str:
    """The id of the fact remembered under ``key``."""
    return _id_for("f", key, 7)


def reminder_id_for(key: str) -> str:
    """The id of the reminder scheduled under ``key``."""
    return _id_for("rem", key, 6)


class OwnStateConnector(Connector):
    """Facts in memory and reminders in the jobs table.

    Args:
        storage: the jobs table and the audit log.
        memory: the memory service (None: memory actions are refused).
        timezone: the operator's zone, for times in diffs and receipts.
    """

    name = NAME

    def __init__(self, *, storage: Storage, memory: Memory | None, timezone: ZoneInfo) -> None:
        self.storage = storage
        self.memory = memory
        self.timezone = timezone

    def _memory(self) -> Memory:
        if self.memory is None:
            raise PermanentError("memory is not configured")
        return self.memory

    async def preview(self, action: Action) -> Diff:
        """What will be remembered, forgotten, scheduled or cancelled."""
        args = action.args
        if action.kind == REMEMBER:
            fields = [("fact", None, args["text"])]
            if args.get("expires_at"):
                until = datetime.fromisoformat(args["expires_at"])
                fields.append(("until", None, when_text(until, self.timezone)))
            return Diff(title="Remember a fact", fields=tuple(fields))
        if action.kind == FORGET:
            item = (await self._memory().store.get_many([args["id"]])).get(args["id"])
            if item is None or item.status == "forgotten":
                raise PermanentError(f"there is no memory item {args['id']!r} (or it is "
                                     "already forgotten)")
            return Diff(title="Forget a memory item",
                        fields=((f"{item.kind} {item.id}", item.text[:300], "(erased)"),))
        if action.kind == SCHEDULE:
            due = datetime.fromisoformat(args["due"])
            fields = [("when", None, when_text(due, self.timezone, weekday=True)),
                      ("text", None, args["text"])]
            if args.get("repeat"):
                fields.append(("repeats", None, args["repeat"]))
            return Diff(title="Schedule a reminder", fields=tuple(fields))
        if action.kind == UNSCHEDULE:
            job = await self.storage.jobs.get(args["id"])
            if job is None or job.kind != REMINDER or job.status != "scheduled":
                raise PermanentError(f"there is no scheduled reminder {args['id']!r}")
            return Diff(title="Cancel a reminder",
                        fields=(("reminder", f"{job.id} · {job.payload['text']}",
                                 "cancelled"),))
        raise PermanentError(f"{self.name} cannot perform {action.kind}")

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Write it, under an id derived from ``idempotency_key``. Each write is idempotent
        (a second run after a crash finds the fact, the job, the erased item as the first left
        them), so the receipt is the same either way."""
        if action.kind not in KINDS:
            raise PermanentError(f"{self.name} cannot perform {action.kind}")
        args, key = action.args, idempotency_key
        if action.kind == REMEMBER:
            fact_id = fact_id_for(key)
            expires = datetime.fromisoformat(args["expires_at"]) if args.get("expires_at") \
                else None
            replaced = await self._memory().remember(args["text"], id=fact_id,
                                                     expires_at=expires, source=args["source"])
            # Receipts are indexed into memory and kept: they name facts by id, never by text,
            # so that forgetting a fact erases its words everywhere memory looks.
            summary = f"remembered {fact_id}"
            if expires:
                summary += f" until {when_text(expires, self.timezone)}"
            summary += "".join(f"; it replaces {old.id} (kept as superseded)"
                               for old in replaced)
            return Receipt.for_key(connector=self.name, idempotency_key=key, summary=summary,
                                   ref=f"fact:{fact_id}")
        if action.kind == FORGET:
            item = await self._memory().forget(args["id"])
            await self.storage.audit.append(
                actor=args.get("actor", "operator"), channel=args.get("channel"),
                intent="forget", decision="forgotten", dedup_key=f"forget:{key}",
                detail={"item": args["id"], "kind": item.kind if item else None})
            return Receipt.for_key(connector=self.name, idempotency_key=key,
                                   ref=f"forgotten:{args['id']}",
                                   summary=f"forgot {args['id']}: its text is erased")
        if action.kind == SCHEDULE:
            job_id = reminder_id_for(key)
            due = datetime.fromisoformat(args["due"])
            await self.storage.jobs.put(
                id=job_id, kind=REMINDER, due_at=due, missed_policy=REMINDER_POLICY,
                payload={"channel": args["channel"], "chat": args["chat"], "text": args["text"],
                         "repeat": args.get("repeat")})
            every = f", then every {args['repeat'].removesuffix('ly')}" \
                if args.get("repeat") else ""
            return Receipt.for_key(
                connector=self.name, idempotency_key=key, ref=f"reminder:{job_id}",
                summary=f"reminder {job_id} set for {when_text(due, self.timezone)}{every}: "
                        f"{args['text']}")
        await self.storage.jobs.cancel(args["id"])
        return Receipt.for_key(connector=self.name, idempotency_key=key,
                               ref=f"cancelled:{args['id']}",
                               summary=f"cancelled reminder {args['id']}")

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """Nothing to look up: every write here is idempotent by its key, so the caller simply
        performs it again."""
        return None

    async def compensate(self, receipt: Receipt) -> Action | None:
        """A fact is taken back by forgetting it, a reminder by cancelling it; a forgotten text
        is gone for good and a cancelled reminder stays cancelled."""
        what, _, ref = receipt.ref.partition(":")
        if what == "fact":
            return Action(kind=FORGET, connector=self.name, args={"id": ref})
        if what == "reminder":
            return Action(kind=UNSCHEDULE, connector=self.name, args={"id": ref})
        return None
