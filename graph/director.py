"""The director: accepts messages as plans, runs each plan's thread as far as it can go, and
finishes what a crash interrupted.

One LangGraph thread per plan (``graph.builder``), keyed by a plan id derived from the platform
event id. Nodes before ``execute_steps`` only read and write idempotent rows, so LangGraph
re-running an interrupted node from its start is harmless; ``execute_steps`` writes an outbox row
before every connector call. The graph runs with ``durability="exit"``: a checkpoint is written
when it stops (at the approval interrupt or the end); re-running a partial run from the last
checkpoint is exactly what the outbox and the idempotent rows make safe. Decisions on cards are
the approval desk's (``graph.desk``); the director continues the plans they unblock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
import weakref
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from graph.builder import build_graph
from graph.desk import ApprovalDesk
from graph.events import Inbound, Reply
from graph.own_state import NAME as OWN_STATE
from graph.own_state import OwnStateConnector
from graph.scheduler import Defer
from graph.state import DirectorDeps, plan_id_for
from graph.summary import daily_summary
from graph.understanding import INTENTS
from memory.models import Job, utcnow

log = logging.getLogger(__name__)

RELEASE = "plan.release"
"""The job kind that carries a plan on when its undo window ends."""
RELEASE_POLICY = "catch_up_within:31536000"
"""An approved step is never dropped for being late: after downtime it runs then."""
PLAN_LEASE = timedelta(seconds=60)
"""How long a plan's lease lasts unless renewed (renewed every third of it while it runs)."""
ORPHAN_QUIET = timedelta(seconds=30)
"""A running plan nobody holds and nobody touched for this long lost its instance."""


def instance_id() -> str:
    """This process among the instances sharing the database: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_owner(owner: str, me: str) -> bool:
    """Whether ``owner`` (an :func:`instance_id`) is known dead from here: an instance on
    this host whose process is gone, or an earlier run of this very process id (a restarted
    container). Instances on other hosts are left to their leases' expiry."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    my_host, _, my_rest = me.partition(":")
    if host != my_host or not pid_text.isdigit() or owner == me:
        return False
    if pid_text == my_rest.partition(":")[0]:
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's process)
    return False


class Director:
    """Runs plans to completion across crashes and restarts.

    Several instances may share one database: a plan is continued by one of them at a time,
    under a lease in the ``plans`` row (:meth:`continue_plan`).

    Args:
        deps: what the nodes use.
        checkpointer: a LangGraph saver (SQLite or PostgreSQL); required for approvals.
        owner: this instance's name on leases (default: host, pid and a random part).
    """

    def __init__(self, *, deps: DirectorDeps, checkpointer: BaseCheckpointSaver,
                 owner: str | None = None) -> None:
        self.deps = deps
        self.owner = owner or instance_id()
        deps.checkpointer = checkpointer
        # Writes to Solo OS's own state are steps like any other, through this connector.
        deps.connectors.setdefault(OWN_STATE, OwnStateConnector(
            storage=deps.storage, memory=deps.memory, timezone=deps.timezone))
        self.storage = deps.storage
        self.desk = ApprovalDesk(storage=deps.storage, timezone=deps.timezone,
                                 policy=deps.policy)
        self.graph = build_graph(checkpointer=checkpointer)
        # Serialises work on one plan inside this process (a double tap racing a reconcile);
        # a lock lives as long as someone holds or waits on it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Plans accepted by this process and not yet run: their state is known to be empty.
        self._fresh: dict[str, Inbound] = {}
        self.durable_channels: set[str] = set()
        """Channels whose replies are queued in the ``deliveries`` table (set by the app)."""

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Start the plan for a new message; a re-delivered event returns no replies."""
        plan_id = await self.accept(inbound)
        return await self.continue_plan(plan_id) if plan_id else []

    async def accept(self, inbound: Inbound) -> str | None:
        """Record a new message and its plan in one transaction (fast; adapters await it before
        acknowledging the platform). Returns the plan id, or None for a re-delivered event."""
        plan_id = plan_id_for(inbound.channel, inbound.event_id)
        accepted = await self.storage.inbox.accept(
            event_id=f"{inbound.channel}:{inbound.event_id}", channel=inbound.channel,
            plan={"id": plan_id, "channel": inbound.channel, "actor": inbound.actor,
                  "inbound": inbound.to_dict()})
        if not accepted:
            log.info("duplicate event %s:%s dropped", inbound.channel, inbound.event_id)
            return None
        self._fresh[plan_id] = inbound
        return plan_id

    async def accept_choice(self, inbound: Inbound) -> str | None:
        """A tap on one of the intents offered when unsure: a new plan for the original message
        with that intent; or on a button that stands for a command (``run:/reply 12``): a new
        plan for that command. None for a repeated tap or a choice that no longer exists.

        The new plan's event id is the choice itself, so a double tap (two platform events)
        still starts one plan."""
        data = inbound.approval_id or ""
        if data.startswith("run:"):  # a button that stands for a command ("Draft reply")
            return await self.accept(replace(inbound, event_id=f"choice:{data}",
                                             text=data.removeprefix("run:"), verb=None,
                                             approval_id=None))
        plan_id, _, chosen = data.partition(":")
        plan = await self.storage.plans.get(plan_id)
        if plan is None or chosen not in INTENTS:
            return None
        original = Inbound.from_dict(plan.inbound)
        return await self.accept(replace(inbound, event_id=f"choice:{plan_id}:{chosen}",
                                         text=original.text, verb=None, approval_id=None,
                                         attachment={"intent": chosen}))

    async def continue_plan(self, plan_id: str) -> list[Reply]:
        """Run ``plan_id`` as far as it can go now; safe to call any time, any number of times,
        from any instance.

        Under the plan's lease: an instance that cannot take it (another one runs the plan)
        marks the plan wanted and leaves it; the holder continues it once more before letting
        go, so no decision waits unnoticed. A holder that dies leaves a lease that expires;
        :meth:`continue_orphans` of any instance then carries the plan on."""
        lock = self._locks.get(plan_id)
        if lock is None:
            lock = self._locks[plan_id] = asyncio.Lock()
        async with lock:
            replies: list[Reply] = []
            while True:
                if not await self._claim(plan_id):
                    await self.storage.plans.want(plan_id)
                    if not await self._claim(plan_id):
                        self._fresh.pop(plan_id, None)  # the holder reads the checkpoint
                        return replies
                renew = asyncio.create_task(self._renew(plan_id))
                try:
                    replies += await self._continue(plan_id)
                finally:
                    renew.cancel()
                    wanted = await self.storage.plans.release(plan_id, owner=self.owner)
                if not wanted:
                    return replies

    async def _claim(self, plan_id: str) -> bool:
        return await self.storage.plans.claim(plan_id, owner=self.owner,
                                              until=utcnow() + PLAN_LEASE)

    async def _renew(self, plan_id: str) -> None:
        while True:
            await asyncio.sleep(PLAN_LEASE.total_seconds() / 3)
            if not await self._claim(plan_id):
                log.error("plan %s: lost its lease to another instance while running",
                          plan_id)
                return

    async def _free_dead_leases(self) -> None:
        """End the plan leases of instances known dead (:func:`dead_owner`)."""
        for plan_id, owner in (await self.storage.plans.leases()).items():
            if dead_owner(owner, self.owner):
                await self.storage.plans.break_lease(plan_id, owner=owner)

    async def continue_orphans(self, now: datetime | None = None) -> list[Reply]:
        """Carry on the plans nobody holds that need it: asked for while another instance
        held them, or left running by an instance that died (see :meth:`continue_plan`)."""
        await self._free_dead_leases()
        replies: list[Reply] = []
        for plan_id in await self.storage.plans.orphaned(now=now or utcnow(),
                                                         quiet=ORPHAN_QUIET):
            try:
                replies += await self.continue_plan(plan_id)
            except Exception:
                log.exception("could not continue plan %s; it stays unfinished", plan_id)
        return replies

    async def _continue(self, plan_id: str) -> list[Reply]:
        config = {"configurable": {"thread_id": plan_id}}
        # Replies a run already delivered (those before an approval interrupt): the thread's
        # reply list accumulates, so a resumed run says only what is new.
        said = 0
        inbound = self._fresh.pop(plan_id, None)
        if inbound is not None:  # just accepted: no checkpoint to look at yet
            payload: Any = {"plan_id": plan_id, "inbound": inbound.to_dict()}
        else:
            plan = await self.storage.plans.get(plan_id)
            if plan is None or plan.status in ("done", "archived"):
                return []
            inbound = Inbound.from_dict(plan.inbound)
            snapshot = await self.graph.aget_state(config)
            said = len(snapshot.values.get("replies", [])) if snapshot.values else 0
            if not snapshot.values:
                payload = {"plan_id": plan_id, "inbound": plan.inbound}
            elif snapshot.interrupts:
                approval = await self.storage.approvals.get(
                    snapshot.interrupts[0].value["approval_id"])
                if approval.status == "pending":
                    return []
                held = await self.storage.plans.held_until(plan_id)
                if held is not None:
                    # Inside an undo window: a job carries the plan on when it ends (a restart
                    # in between finds the job, so the step is neither lost nor sent early).
                    await self.storage.jobs.put(id=f"release:{plan_id}", kind=RELEASE,
                                                due_at=held, payload={"plan_id": plan_id},
                                                missed_policy=RELEASE_POLICY)
                    return [self.desk.card_reply("card_update", approval)]
                payload = Command(resume=approval.status)
            elif snapshot.next:
                payload = None
            else:
                await self.storage.plans.finish(plan_id, status="done", deliveries=[])
                return []
        result = await self.graph.ainvoke(payload, config, context=self.deps, durability="exit")
        items = result.get("replies", [])[said:]
        if result.get("__interrupt__"):
            approval = await self.storage.approvals.get(
                result["__interrupt__"][0].value["approval_id"])
            # What was said on the way to the card ("I heard: …") goes out with it.
            replies = [await self._reply(inbound, item) for item in items
                       if item["kind"] == "message"]
            replies.append(self.desk.card_reply("card", approval, channel=inbound.channel,
                                                chat=inbound.chat))
            return await self._finish(plan_id, "waiting", replies)
        replies = [await self._reply(inbound, item) for item in items
                   if item["kind"] != "continue"]
        replies = await self._finish(plan_id, "done", replies)
        # A repair command (/cancel) decided another plan: carry that plan on now. A crash
        # before this leaves it unfinished with a decided approval; the reconciler continues it.
        for item in items:
            if item["kind"] == "continue" and item["plan_id"] != plan_id:
                replies += await self.continue_plan(item["plan_id"])
        return replies

    async def _finish(self, plan_id: str, status: str, replies: list[Reply]) -> list[Reply]:
        """Set the plan's status and queue its replies for durable channels in one transaction,
        so a crash can neither lose the replies of a finished plan nor finish it twice."""
        durable = [r for r in replies if r.channel in self.durable_channels]
        ids = await self.storage.plans.finish(plan_id, status=status, deliveries=[
            {"channel": r.channel, "chat": r.chat, "kind": r.kind,
             "payload": r.delivery_payload()} for r in durable])
        queued = dict(zip(map(id, durable), ids, strict=True))
        return [replace(r, delivery_id=queued[id(r)]) if id(r) in queued else r
                for r in replies]

    async def _reply(self, inbound: Inbound, item: dict[str, Any]) -> Reply:
        if item["kind"] == "message":
            return Reply("message", inbound.channel, inbound.chat, text=item["text"])
        if item["kind"] == "choice" and "run" in item:
            return Reply("choice", inbound.channel, inbound.chat, text=item["text"],
                         choices=[(label, f"run:{command}") for label, command in item["run"]])
        if item["kind"] == "choice":
            plan_id = plan_id_for(inbound.channel, inbound.event_id)
            return Reply("choice", inbound.channel, inbound.chat, text=item["text"],
                         choices=[(name, f"{plan_id}:{name}") for name in item["choices"]])
        approval = await self.storage.approvals.get(item["approval_id"])
        return self.desk.card_reply(item["kind"], approval)

    async def release(self, job: Job, late: timedelta) -> list[Reply]:
        """The scheduler's handler for a plan whose undo window ended: carry it on (or wait
        longer, should the job have fired early)."""
        plan_id = job.payload["plan_id"]
        held = await self.storage.plans.held_until(plan_id)
        if held is not None:
            raise Defer(held)
        return await self.continue_plan(plan_id)

    async def pending_cards(self) -> list[Reply]:
        """Cards for every pending approval (after expiring the stale ones)."""
        await self.expire_due()
        return await self.desk.pending_cards()

    async def expire_due(self) -> list[Reply]:
        """Expire approvals past their time and finish their plans (nothing is executed)."""
        replies: list[Reply] = []
        for plan_id in await self.desk.expire():
            replies += await self.continue_plan(plan_id)
        return replies

    async def escalate(self, *, targets: dict[str, list[str]], after: timedelta,
                       now: datetime | None = None) -> list[Reply]:
        """The escalation ladder (``ApprovalDesk.escalate``), then expiry as the safe default."""
        return await self.desk.escalate(targets=targets, after=after, now=now) + \
            await self.expire_due()

    async def reconcile(self) -> list[Reply]:
        """Finish what a crash interrupted: expire stale approvals, continue unfinished plans.

        Outbox rows left in flight are resolved inside their plans (reconcile, else re-send under
        the same key). Returns the replies those plans produce, addressed to their chats.
        """
        replies = await self.expire_due()
        await self._free_dead_leases()  # e.g. a previous run of this instance, killed
        for plan in await self.storage.plans.unfinished():
            try:
                replies += await self.continue_plan(plan.id)
            except Exception:
                log.exception("could not continue plan %s; it stays unfinished", plan.id)
        return replies

    async def summary_for(self, targets: list[tuple[str, str]], *,
                          now: datetime | None = None) -> list[Reply]:
        """The daily summary addressed to each ``(channel, chat)`` in ``targets``."""
        items = await daily_summary(self.deps, now=now)
        replies = []
        for channel, chat in targets:
            for item in items:
                if item["kind"] == "message":
                    replies.append(Reply("message", channel, chat, text=item["text"]))
                else:
                    approval = await self.storage.approvals.get(item["approval_id"])
                    replies.append(self.desk.card_reply("card", approval,
                                                              channel=channel, chat=chat))
        return replies

    async def prune(self, *, older_than: timedelta) -> int:
        """Delete the checkpoints of plans finished more than ``older_than`` ago (the audit log
        is never pruned). Returns how many threads were pruned."""
        archived = await self.storage.plans.archive_done(before=utcnow() - older_than)
        for plan_id in archived:
            await self.graph.checkpointer.adelete_thread(plan_id)
        return len(archived)

    async def refuse(self, inbound: Inbound) -> None:
        """Audit a message or press from someone who is not an operator."""
        await self.storage.audit.append(
            actor=inbound.actor, channel=inbound.channel, decision="refused",
            dedup_key=f"refused:{inbound.channel}:{inbound.event_id}",
            detail={"text": inbound.text[:200], "verb": inbound.verb,
                    "approval_id": inbound.approval_id})


__all__ = ["Director"]
