"""The app's lifetime: open everything from settings, register and start chat adapters, hand
their events to the operator gate and the director, deliver the replies, and close it all down.

Wiring lives in :mod:`bot.wiring`, the gate in :mod:`bot.gate`, the jobs loop in
:mod:`bot.jobs`, showing a reply in :mod:`bot.dispatch`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import AsyncExitStack
from zoneinfo import ZoneInfo

from bot.adapters.base import Admitted, ChatAdapter
from bot.datadir import make_private
from bot.delivery import DeliveryQueue
from bot.dispatch import show
from bot.gate import OperatorGate
from bot.jobs import JobsLoop
from bot.source_watch import MailPollerWatch, McpServerWatch
from bot.voice import VoiceNotes
from bot.watchdog import Watchdog, Watched
from bot.wiring import build_director, build_transcriber, operator_vocabulary
from config import Settings
from connectors.mcp import McpConnector
from graph.director import Director
from graph.events import Inbound, Reply
from memory.models import utcnow

log = logging.getLogger(__name__)

FAILURE = ("Something went wrong on my side; it is logged and unfinished work is retried on "
           "restart. /status shows the state.")


def freeze_startup_heap() -> None:
    """Put everything start-up built (modules, the graph, models, settings) out of the garbage
    collector's reach. Each full collection otherwise walks all of it with the event loop
    stopped: 190-280 ms here, which were the worst Slack acks of a burst (bench/slack.py:
    ack p99 of a round 24-206 ms before, 30-34 ms after). Call once, when the service is
    ready; what start-up built lives as long as the process anyway."""
    gc.collect()
    gc.freeze()


class SoloApp:
    """A running Solo OS: open with :meth:`open`, close with :meth:`aclose`.

    Attributes:
        gate: the operator gate (who may command and approve).
        jobs: the jobs loop (scheduler, escalations, housekeeping).
        voice: hears voice notes through the adapters.
    """

    def __init__(self, *, settings: Settings, director: Director, voice: VoiceNotes,
                 adapters: dict[str, ChatAdapter], exit_stack: AsyncExitStack) -> None:
        self.settings = settings
        self.director = director
        self.storage = director.storage
        self.voice = voice
        self.timezone = ZoneInfo(settings.operator.timezone)
        self._stack = exit_stack
        self._adapters = adapters
        self._queues: dict[str, DeliveryQueue] = {}
        self._started: set[str] = set()
        operators = {"telegram": {str(o) for o in settings.telegram.operators},
                     "slack": {str(o) for o in settings.slack.operators}}
        self.gate = OperatorGate(director=director, operators=operators)
        self.jobs = JobsLoop(settings=settings, director=director, deliver=self.deliver,
                             channels=self.channels, operators=operators)
        self._watched: list[Watched] = [
            McpServerWatch(c.server) for c in director.deps.connectors.values()
            if isinstance(c, McpConnector)]
        if self.jobs.mail is not None:
            self._watched.append(MailPollerWatch(
                self.jobs, settings.connectors.email.timeout_seconds))
        self.watchdog = Watchdog(sources=self.watched, deliver=self.deliver,
                                 targets=self.jobs.operator_targets, timezone=self.timezone)

    def channels(self) -> list[str]:
        """The names of the registered chat adapters."""
        return list(self._adapters)

    def watched(self) -> dict[str, Watched]:
        """What the watchdog looks after: the running chat adapters, the mail poller and the
        MCP servers, by name."""
        found: dict[str, Watched] = {n: self._adapters[n] for n in sorted(self._started)}
        found.update((w.name, w) for w in self._watched)
        return found

    def liveness(self) -> dict[str, dict[str, float | None]]:
        """Per watched source (chat adapters, ``email``, ``mcp:NAME``): seconds since its last
        event and last sign of life (None: none since the start) — what ``/healthz``
        reports."""
        now = utcnow()
        return {name: {"last_event_seconds": source.liveness.event_age(now),
                       "quiet_seconds": round(source.liveness.quiet(now), 1)}
                for name, source in self.watched().items()}

    @classmethod
    async def open(cls, settings: Settings) -> SoloApp:
        """Connect storage (migrating it), build connectors and the director."""
        stack = AsyncExitStack()
        adapters: dict[str, ChatAdapter] = {}
        voice = VoiceNotes(transcriber=build_transcriber(settings), adapters=adapters)
        try:
            make_private(settings.storage.data_dir)
            director = await build_director(settings, stack, hear=voice.hear)
            voice.vocabulary = operator_vocabulary(settings, director.deps.memory)
        except BaseException:
            await stack.aclose()
            raise
        return cls(settings=settings, director=director, voice=voice, adapters=adapters,
                   exit_stack=stack)

    async def aclose(self, *, drain_seconds: float = 10.0) -> None:
        """Stop receiving, finish what is in progress, flush replies (what cannot go out in
        ``drain_seconds`` stays queued for the next start), then release connections."""
        for name in list(self._started):
            await self._adapters[name].stop()
        await self.jobs.stop_mail_poll()
        for queue in self._queues.values():
            if not await queue.drain(drain_seconds):
                log.warning("%s: replies still queued at shutdown; they go out on the next start",
                            queue.adapter.name)
        for adapter in self._adapters.values():
            await adapter.close()
        self._started.clear()
        await self._stack.aclose()

    async def add_adapter(self, adapter: ChatAdapter, *, operators: set[str] | None = None,
                          start: bool = True) -> None:
        """Register ``adapter`` and (unless ``start=False``) start it.

        Args:
            adapter: the chat adapter; its ``name`` is its channel.
            operators: overrides the configured operator list of its channel.
            start: False to register it for delivery only; :meth:`start_adapters` starts it.
        """
        if operators is not None:
            self.gate.operators[adapter.name] = operators
        self._adapters[adapter.name] = adapter
        if adapter.durable_delivery:
            self._queues[adapter.name] = DeliveryQueue(adapter=adapter, storage=self.storage,
                                                       desk=self.director.desk,
                                                       owner=self.director.owner)
            self.director.durable_channels.add(adapter.name)
        if start:
            await self._start(adapter)

    async def start_adapters(self) -> None:
        """Start receiving (and sending what is queued) on every registered adapter."""
        for adapter in self._adapters.values():
            await self._start(adapter)

    async def _start(self, adapter: ChatAdapter) -> None:
        if adapter.name in self._started:
            return
        await adapter.start(self)
        self._started.add(adapter.name)
        if adapter.name in self._queues:
            await self._queues[adapter.name].start()

    async def admit(self, inbound: Inbound) -> Admitted:
        """The gate and the durable record (fast; adapters acknowledge the platform after it)."""
        adapter = self._adapters.get(inbound.channel)
        if adapter is not None:
            adapter.liveness.event()
        return await self.gate.admit(inbound)

    async def process(self, admitted: Admitted) -> None:
        """Carry out an admitted event and deliver what it produces. Never raises: a failure
        is told to the operator and logged; the plan stays unfinished for the reconciler."""
        replies = list(admitted.replies)
        try:
            for plan_id in admitted.plan_ids:
                replies += await self.director.continue_plan(plan_id)
        except Exception:
            log.exception("failed processing %s event %s", admitted.inbound.channel,
                          admitted.inbound.event_id)
            replies.append(Reply("message", admitted.inbound.channel, admitted.inbound.chat,
                                 text=FAILURE))
        await self.deliver(replies)

    async def on_event(self, inbound: Inbound) -> None:
        """Admit and process one event (adapters with nothing to acknowledge)."""
        try:
            admitted = await self.admit(inbound)
        except Exception:
            log.exception("failed admitting %s event %s", inbound.channel, inbound.event_id)
            admitted = Admitted(inbound, replies=[
                Reply("message", inbound.channel, inbound.chat, text=FAILURE)])
        await self.process(admitted)

    async def deliver(self, replies: list[Reply]) -> None:
        """Send each reply through the adapter of its channel: queued durably for network
        platforms, shown directly otherwise (skipping channels not configured)."""
        for reply in replies:
            adapter = self._adapters.get(reply.channel)
            if adapter is None:
                log.warning("no %s adapter running; reply to %s kept in the audit log only",
                            reply.channel, reply.chat)
            elif adapter.name in self._queues:
                await self._queues[adapter.name].put(reply)
            else:
                await show(adapter, kind=reply.kind, chat=reply.chat,
                           payload=reply.delivery_payload(), desk=self.director.desk)

    async def reconcile(self) -> None:
        """Finish what a crash interrupted and deliver what that produces."""
        await self.deliver(await self.director.reconcile())

    async def sweep(self) -> None:
        """Take over what another instance left when it died: plans nobody holds that need
        continuing, replies nobody sends (``solo serve`` calls this every 15 s)."""
        await self.deliver(await self.director.continue_orphans())
        for queue in self._queues.values():
            adopted = await queue.adopt()
            if adopted:
                log.warning("%s: sending %d replies another instance left unsent",
                            queue.adapter.name, adopted)

    async def run_sweeps(self, every: float = 15.0) -> None:
        """:meth:`sweep` every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; trying again")
