"""The durable outbound queue: replies to network chat platforms, in order per chat.

A reply is written to the ``deliveries`` table before it is sent and marked sent after the
platform accepted it, so replies queued at shutdown or lost to a crash go out after the restart
(at least once: a crash between the platform's answer and the mark may repeat one message).
Instances sharing the database send each reply once: a reply is sent under a lease in its row,
and one an instance left behind when it died is adopted by another (:meth:`DeliveryQueue.adopt`).
``retry_after`` from the platform (429) is waited out; network errors back off and retry without
limit; a permanent refusal (user blocked the bot, chat gone) is logged and dropped.

Cards are queued by approval id and rendered when sent, so a card always shows its current state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.adapters.base import ChatAdapter, DeliveryError
from bot.dispatch import show
from graph.desk import ApprovalDesk
from graph.director import dead_owner
from graph.events import Reply
from memory.models import utcnow
from memory.stores import Storage

log = logging.getLogger(__name__)
DELIVERY_LEASE = timedelta(seconds=30)
"""How long an instance holds a reply it is sending (renewed to cover a wait for a retry)."""
ADOPT_AFTER = timedelta(seconds=30)
"""A pending reply held by nobody for this long lost its instance: another one sends it."""


@dataclass(frozen=True, slots=True)
class _Item:
    """A queued reply, as stored in the ``deliveries`` table."""

    id: int
    chat: str
    kind: str
    payload: dict[str, Any]


class DeliveryQueue:
    """Per-chat FIFO workers for one adapter.

    Args:
        adapter: where replies go.
        storage: the ``deliveries`` table.
        desk: renders cards and records where they were posted.
        owner: this instance's name on delivery leases: of several instances sharing the
            database, the one holding a reply's lease sends it.
        backoff: first wait after a network error (doubling up to ``max_backoff``).
    """

    def __init__(self, *, adapter: ChatAdapter, storage: Storage, desk: ApprovalDesk,
                 owner: str = "solo", backoff: float = 0.5, max_backoff: float = 30.0) -> None:
        self.adapter = adapter
        self.owner = owner
        self._store = storage.deliveries
        self._desk = desk
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._queues: dict[str, deque[_Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False

    async def start(self) -> None:
        """Start sending: what a previous run left unsent first, in order."""
        self._started = True
        await self.free_dead_leases()
        for row in await self._store.pending(self.adapter.name):
            self._schedule(_Item(row.id, row.chat, row.kind, row.payload))

    async def put(self, reply: Reply) -> None:
        """Queue ``reply`` durably (unless the director already did) and schedule it."""
        delivery_id = reply.delivery_id
        if delivery_id is None:
            delivery_id = await self._store.add(channel=self.adapter.name, chat=reply.chat,
                                                kind=reply.kind,
                                                payload=reply.delivery_payload())
        if self._started:  # before start, start() picks it up from the table
            self._schedule(_Item(delivery_id, reply.chat, reply.kind,
                                 reply.delivery_payload()))

    async def free_dead_leases(self) -> None:
        """Let go of replies held by instances known dead (see :func:`dead_owner`)."""
        dead = [o for o in await self._store.lease_owners() if dead_owner(o, self.owner)]
        await self._store.break_leases(dead)

    async def adopt(self) -> int:
        """Queue the replies of this channel that an instance which died left unsent (pending,
        older than ``ADOPT_AFTER``, held by nobody); return how many."""
        await self.free_dead_leases()
        queued = {item.id for items in self._queues.values() for item in items}
        rows = [row for row in await self._store.unclaimed(
            self.adapter.name, older_than=utcnow() - ADOPT_AFTER) if row.id not in queued]
        for row in rows:
            self._schedule(_Item(row.id, row.chat, row.kind, row.payload))
        return len(rows)

    def _schedule(self, item: _Item) -> None:
        self._idle.clear()
        self._queues.setdefault(item.chat, deque()).append(item)
        worker = self._workers.get(item.chat)
        if worker is None or worker.done():
            self._workers[item.chat] = asyncio.create_task(self._work(item.chat))

    async def _work(self, chat: str) -> None:
        queue = self._queues[chat]
        while queue:
            await self._deliver(queue[0])
            queue.popleft()
        del self._workers[chat]
        if not self._workers:
            self._idle.set()

    async def _deliver(self, row: _Item) -> None:
        wait = self._backoff
        unexpected = 0
        while True:
            if not await self._store.claim(row.id, owner=self.owner,
                                           until=utcnow() + DELIVERY_LEASE):
                return  # sent already, or another instance is sending it
            try:
                await self._send(row)
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:
                if exc.permanent:
                    log.error("%s refused delivery %s to %s: %s", self.adapter.name, row.id,
                              row.chat, exc)
                    await self._store.settle(row.id, status="failed", error=str(exc))
                    return
                delay = exc.retry_after if exc.retry_after is not None else wait
                if exc.retry_after is None:
                    wait = min(wait * 2, self._max_backoff)
                log.warning("delivery %s to %s: %s; retrying in %.1f s", row.id, row.chat, exc,
                            delay)
                await self._store.claim(row.id, owner=self.owner, until=utcnow() + timedelta(
                    seconds=delay) + DELIVERY_LEASE)  # held through the wait
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                # A bug rather than the platform: do not retry forever.
                unexpected += 1
                log.exception("delivery %s to %s failed unexpectedly", row.id, row.chat)
                if unexpected >= 5:
                    await self._store.settle(row.id, status="failed", error=repr(exc))
                    return
                await asyncio.sleep(wait)
                continue
            await self._store.settle(row.id, status="sent")
            return

    async def _send(self, row: _Item) -> None:
        await show(self.adapter, kind=row.kind, chat=row.chat, payload=row.payload,
                   desk=self._desk)

    async def drain(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every queued reply to go out, then stop the workers;
        what is left stays queued for the next start. True if all went out."""
        self._started = False
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
            return True
        except TimeoutError:
            return False
        finally:
            for worker in list(self._workers.values()):
                worker.cancel()
            self._workers.clear()
            self._queues.clear()
