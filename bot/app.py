"""The composition root: settings in, a running Solo OS out.

Builds storage, connectors, policy and the director from :class:`config.Settings`, gates every
inbound event (only operators; unknown users are refused and audited), and routes the director's
replies to the adapter of the channel they are addressed to.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from bot.adapters.base import ChatAdapter
from config import Settings
from connectors.base import Connector
from connectors.notes import NotesVaultConnector
from connectors.retry import RetryPolicy
from connectors.webhooks import WebhookConnector
from graph.checkpoints import postgres_checkpointer, sqlite_checkpointer
from graph.director import Director, DirectorDeps
from graph.events import Inbound, Reply
from graph.policy import Policy
from graph.understanding import CommandUnderstander
from memory.db import create_engine, libpq_url, migrate
from memory.stores import Storage

log = logging.getLogger(__name__)

BUILTIN_RISK = {"note.create": "low"}
"""Tiers that hold unless config says otherwise; anything unlisted is high risk."""
REFUSAL = "Sorry, this assistant only works for its operators."


def database_urls(settings: Settings) -> tuple[str, str]:
    """The state database URL and the checkpoint location (SQLite path or PostgreSQL URL)."""
    url = settings.storage.database_url
    data_dir = settings.storage.data_dir
    if not url:
        return f"sqlite:///{(data_dir / 'solo.sqlite3').resolve()}", str(
            (data_dir / "checkpoints.sqlite3").resolve())
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        return url, f"{path}.checkpoints"
    return url, libpq_url(url)


class SoloApp:
    """A running Solo OS: open with :meth:`open`, close with :meth:`aclose`."""

    def __init__(self, *, settings: Settings, storage: Storage, director: Director,
                 exit_stack: AsyncExitStack) -> None:
        self.settings = settings
        self.storage = storage
        self.director = director
        self.timezone = ZoneInfo(settings.operator.timezone)
        self._stack = exit_stack
        self._adapters: dict[str, ChatAdapter] = {}
        self._operators: dict[str, set[str]] = {
            "telegram": {str(o) for o in settings.telegram.operators},
            "slack": {str(o) for o in settings.slack.operators},
        }

    @classmethod
    async def open(cls, settings: Settings) -> SoloApp:
        """Connect storage (migrating it), build connectors and the director."""
        stack = AsyncExitStack()
        try:
            state_url, checkpoint_at = database_urls(settings)
            engine = create_engine(state_url)
            stack.push_async_callback(engine.dispose)
            await migrate(engine)
            storage = Storage(engine)
            if state_url.startswith("postgres"):
                checkpointer = await stack.enter_async_context(postgres_checkpointer(checkpoint_at))
            else:
                checkpointer = await stack.enter_async_context(
                    sqlite_checkpointer(Path(checkpoint_at)))
            client = await stack.enter_async_context(httpx.AsyncClient())
            connectors, webhooks = build_connectors(settings, client)
            deps = DirectorDeps(
                storage=storage, connectors=connectors, webhooks=webhooks,
                policy=build_policy(settings), understander=CommandUnderstander(),
                timezone=ZoneInfo(settings.operator.timezone))
            director = Director(deps=deps, checkpointer=checkpointer)
        except BaseException:
            await stack.aclose()
            raise
        return cls(settings=settings, storage=storage, director=director, exit_stack=stack)

    async def aclose(self) -> None:
        """Stop adapters, then release connections."""
        for adapter in list(self._adapters.values()):
            await adapter.stop()
        await self._stack.aclose()

    async def add_adapter(self, adapter: ChatAdapter, *, operators: set[str] | None = None,
                          start: bool = True) -> None:
        """Register ``adapter`` and (unless ``start=False``) start it.

        Args:
            operators: overrides the configured operator list of its channel.
            start: False to register it for delivery only; :meth:`start_adapters` starts it.
        """
        if operators is not None:
            self._operators[adapter.name] = operators
        self._adapters[adapter.name] = adapter
        if start:
            await adapter.start(self.on_event)

    async def start_adapters(self) -> None:
        """Start receiving on every registered adapter."""
        for adapter in self._adapters.values():
            await adapter.start(self.on_event)

    def is_operator(self, inbound: Inbound) -> bool:
        """Whether ``inbound.actor`` may command or approve on its channel."""
        if inbound.channel == "console":
            return True
        return inbound.actor in self._operators.get(inbound.channel, set())

    async def on_event(self, inbound: Inbound) -> None:
        """Gate, run and answer one inbound event. Never raises: errors are told and logged."""
        adapter = self._adapters[inbound.channel]
        try:
            if not self.is_operator(inbound):
                await self.director.refuse(inbound)
                await adapter.notice(inbound.chat, REFUSAL)
                return
            if inbound.verb is not None:
                replies = await self.director.decide(inbound)
            else:
                replies = await self.director.handle(inbound)
        except Exception:
            log.exception("failed handling %s event %s", inbound.channel, inbound.event_id)
            await adapter.send(inbound.chat, "Something went wrong on my side; it is logged and "
                               "unfinished work is retried on restart. /status shows the state.")
            return
        await self.deliver(replies)

    async def deliver(self, replies: list[Reply]) -> None:
        """Send each reply through the adapter of its channel (skipping channels not running)."""
        for reply in replies:
            adapter = self._adapters.get(reply.channel)
            if adapter is None:
                log.warning("no %s adapter running; reply to %s kept in the audit log only",
                            reply.channel, reply.chat)
                continue
            if reply.kind == "card":
                ref = await adapter.post_card(reply.chat, reply.card)
                await self.director.attach_card(reply.card.approval_id, adapter.name, ref)
            elif reply.kind == "card_update":
                ref = reply.card_refs.get(adapter.name)
                await adapter.update_card(reply.chat, ref, reply.card)
            elif reply.kind == "notice":
                await adapter.notice(reply.chat, reply.text)
            else:
                await adapter.send(reply.chat, reply.text)

    async def reconcile(self) -> None:
        """Finish what a crash interrupted and deliver what that produces."""
        await self.deliver(await self.director.reconcile())


def build_connectors(settings: Settings,
                     client: httpx.AsyncClient) -> tuple[dict[str, Connector], dict[str, str]]:
    """Connectors by name, and webhook name → connector name."""
    retry_settings = settings.connectors.retry
    retry = RetryPolicy(attempts=retry_settings.attempts,
                        timeout=retry_settings.timeout_seconds,
                        wait_initial=retry_settings.wait_initial_seconds,
                        wait_max=retry_settings.wait_max_seconds,
                        wait_jitter=retry_settings.wait_jitter_seconds)
    notes_path = settings.connectors.notes.path or settings.storage.data_dir / "notes"
    connectors: dict[str, Connector] = {"notes": NotesVaultConnector(path=notes_path)}
    webhooks: dict[str, str] = {}
    for name, hook in settings.connectors.webhooks.items():
        connector = WebhookConnector(name=name.lower(), url=hook.url, client=client, retry=retry,
                                     timeout=hook.timeout_seconds)
        connectors[connector.name] = connector
        webhooks[name.lower()] = connector.name
    return connectors, webhooks


def build_policy(settings: Settings) -> Policy:
    """Built-in tiers, then each webhook's own ``risk``, then the ``[policy] risk`` overrides."""
    risk: dict[str, str] = dict(BUILTIN_RISK)
    risk.update({f"webhook:{n.lower()}": h.risk for n, h in settings.connectors.webhooks.items()})
    risk.update(settings.policy.risk)
    return Policy(risk=risk, approval_ttl=timedelta(minutes=settings.policy.approval_ttl_minutes))
