"""The composition root: settings in, a running Solo OS out.

Builds storage, connectors, policy and the director from :class:`config.Settings`, gates every
inbound event (only operators; unknown users are refused and audited), and routes the director's
replies to the adapter of the channel they are addressed to.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from contextlib import AsyncExitStack
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from langchain_core.embeddings import Embeddings

from bot.adapters.base import Admitted, ChatAdapter
from bot.datadir import make_private
from bot.delivery import DeliveryQueue
from bot.voice import CloudTranscriber, Transcriber, WhisperTranscriber
from config import Settings
from connectors.base import Connector
from connectors.notes import NotesVaultConnector
from connectors.retry import RetryPolicy
from connectors.webhooks import WebhookConnector
from graph.budget import BudgetMeter, Caps, Prices
from graph.checkpoints import postgres_checkpointer, sqlite_checkpointer
from graph.director import RELEASE, Director
from graph.events import Inbound, Reply, Transcript, VoiceError
from graph.llm import LLMUnderstander
from graph.local_understanding import LocalUnderstander
from graph.policy import Policy
from graph.scheduler import SUMMARY, Defer, Scheduler, in_quiet_hours, next_occurrence
from graph.state import DirectorDeps
from graph.understanding import Understander
from memory.db import Database, libpq_url, open_database, urgent
from memory.embeddings import StaticEmbeddings
from memory.knowledge import Memory
from memory.models import Job, utcnow
from memory.stores import Storage
from memory.vectors import SqliteNumpyIndex, VectorIndex, WeaviateIndex

log = logging.getLogger(__name__)

REFUSAL = "Sorry, this assistant only works for its operators."
FAILURE = ("Something went wrong on my side; it is logged and unfinished work is retried on "
           "restart. /status shows the state.")


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
        self._queues: dict[str, DeliveryQueue] = {}
        self._started: set[str] = set()
        self._refused: set[tuple[str, str]] = set()
        self.scheduler = Scheduler(storage=storage, timezone=self.timezone)
        self.scheduler.register(RELEASE, director.release)
        self._operators: dict[str, set[str]] = {
            "telegram": {str(o) for o in settings.telegram.operators},
            "slack": {str(o) for o in settings.slack.operators},
        }

    @classmethod
    async def open(cls, settings: Settings) -> SoloApp:
        """Connect storage (migrating it), build connectors and the director."""
        stack = AsyncExitStack()
        try:
            make_private(settings.storage.data_dir)
            state_url, checkpoint_at = database_urls(settings)
            db = open_database(state_url)
            stack.push_async_callback(db.aclose)
            await db.migrate()
            storage = Storage(db)
            if state_url.startswith("postgres"):
                checkpointer = await stack.enter_async_context(postgres_checkpointer(checkpoint_at))
            else:
                checkpointer = await stack.enter_async_context(
                    sqlite_checkpointer(Path(checkpoint_at)))
            client = await stack.enter_async_context(httpx.AsyncClient())
            connectors, webhooks = build_connectors(settings, client)
            memory = await build_memory(settings, db, stack)
            local = build_understander(settings, memory.embeddings)
            meter = BudgetMeter(
                storage=storage, timezone=ZoneInfo(settings.operator.timezone),
                prices=Prices(settings.llm.input_usd_per_million,
                              settings.llm.output_usd_per_million),
                caps=Caps(settings.budget.daily_usd, settings.budget.per_plan_usd,
                          settings.budget.per_job_usd))
            transcriber = build_transcriber(settings)
            deps = DirectorDeps(
                storage=storage, connectors=connectors, webhooks=webhooks,
                policy=build_policy(settings),
                understander=build_llm_understander(settings, meter) or local,
                fallback=local, meter=meter if settings.llm.model else None,
                context_tokens=settings.memory.context_tokens,
                timezone=ZoneInfo(settings.operator.timezone), memory=memory,
                notes_dir=notes_dir(settings))
            director = Director(deps=deps, checkpointer=checkpointer)
        except BaseException:
            await stack.aclose()
            raise
        app = cls(settings=settings, storage=storage, director=director, exit_stack=stack)
        app.transcriber = transcriber
        deps.hear = app.hear
        return app

    async def hear(self, inbound: Inbound) -> Transcript:
        """Download a voice note through its adapter and transcribe it."""
        download = getattr(self._adapters.get(inbound.channel), "download_file", None)
        if download is None:
            raise VoiceError(f"{inbound.channel} cannot deliver voice notes")
        try:
            audio = await download(inbound.attachment["file_id"])
        except Exception as exc:
            raise VoiceError(f"the recording could not be downloaded ({exc})") from exc
        return await self.transcriber.transcribe(audio, inbound.attachment.get("mime", ""))

    async def aclose(self, *, drain_seconds: float = 10.0) -> None:
        """Stop receiving, finish what is in progress, flush replies (what cannot go out in
        ``drain_seconds`` stays queued for the next start), then release connections."""
        for name in list(self._started):
            await self._adapters[name].stop()
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
            self._operators[adapter.name] = operators
        self._adapters[adapter.name] = adapter
        if adapter.durable_delivery:
            self._queues[adapter.name] = DeliveryQueue(adapter=adapter, storage=self.storage,
                                                       director=self.director)
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

    def is_operator(self, inbound: Inbound) -> bool:
        """Whether ``inbound.actor`` may command or approve on its channel."""
        if inbound.channel == "console":
            return True
        return inbound.actor in self._operators.get(inbound.channel, set())

    async def admit(self, inbound: Inbound) -> Admitted:
        """The gate and the durable record (fast; adapters acknowledge the platform after it).

        Strangers are audited every time and told once per run. Raises on storage errors, so
        that an adapter leaves the event unacknowledged and gets it again.
        """
        with urgent():
            return await self._admit(inbound)

    async def _admit(self, inbound: Inbound) -> Admitted:
        if not self.is_operator(inbound):
            await self.director.refuse(inbound)
            replies = []
            if (inbound.channel, inbound.actor) not in self._refused:
                self._refused.add((inbound.channel, inbound.actor))
                replies = [Reply("notice", inbound.channel, inbound.chat, text=REFUSAL)]
            return Admitted(inbound, replies=replies)
        if inbound.verb == "choose":
            plan_id = await self.director.accept_choice(inbound)
            return Admitted(inbound, plan_ids=[plan_id] if plan_id else [])
        if inbound.verb is not None:
            plan_ids, replies = await self.director.desk.decide(inbound)
            return Admitted(inbound, plan_ids=plan_ids, replies=replies)
        editing = await self.director.desk.being_edited(inbound)
        if editing is not None:
            plan_ids, replies = await self.director.desk.apply_edit(inbound, editing)
            return Admitted(inbound, plan_ids=plan_ids, replies=replies)
        plan_id = await self.director.accept(inbound)
        return Admitted(inbound, plan_ids=[plan_id] if plan_id else [])

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
        platforms, directly otherwise (skipping channels not configured)."""
        for reply in replies:
            adapter = self._adapters.get(reply.channel)
            if adapter is None:
                log.warning("no %s adapter running; reply to %s kept in the audit log only",
                            reply.channel, reply.chat)
                continue
            if adapter.name in self._queues:
                await self._queues[adapter.name].put(reply)
            elif reply.kind == "card":
                ref = await adapter.post_card(reply.chat, reply.card)
                await self.director.desk.attach_card(reply.card.approval_id, adapter.name, ref)
            elif reply.kind == "card_update":
                await adapter.update_cards(reply.chat, reply.card_refs.get(adapter.name, []),
                                           reply.card)
            elif reply.kind == "notice":
                await adapter.notice(reply.chat, reply.text)
            elif reply.kind == "choice":
                await adapter.ask(reply.chat, reply.text, reply.choices)
            else:
                await adapter.send(reply.chat, reply.text)

    def summary_targets(self) -> list[tuple[str, str]]:
        """Where the daily summary goes: each operator on each running channel."""
        wanted = set(self.settings.schedule.summary_channels) or set(self._adapters)
        targets = []
        for name in self._adapters:
            if name not in wanted:
                continue
            if name == "console":
                targets.append((name, "terminal"))
            elif name == "slack":
                targets += [(name, f"{op}||{op}") for op in sorted(self._operators.get(name, ()))]
            else:
                targets += [(name, op) for op in sorted(self._operators.get(name, ()))]
        return targets

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
        await self.storage.jobs.put(id="daily-summary", kind=SUMMARY, due_at=due,
                                    payload={"repeat": "daily", "at": at},
                                    missed_policy="catch_up_within:14400")

    async def escalate(self, now: datetime | None = None) -> None:
        """One pass of the escalation ladder (held during quiet hours)."""
        now = now or utcnow()
        if in_quiet_hours(now, self.settings.schedule.quiet_hours, self.timezone):
            await self.deliver(await self.director.expire_due())
            return
        targets: dict[str, list[str]] = {}
        for channel, chat in self.summary_targets():
            targets.setdefault(channel, []).append(chat)
        await self.deliver(await self.director.escalate(
            targets=targets, now=now,
            after=timedelta(minutes=self.settings.schedule.escalate_after_minutes)))

    async def run_scheduler(self, *, every: float = 1.0, escalate_every: int = 30) -> None:
        """Run due jobs every ``every`` seconds, and the escalation ladder every
        ``escalate_every`` ticks, until cancelled (started by the CLI)."""
        ticks = 0
        while True:
            try:
                await self.deliver(await self.scheduler.tick())
                if ticks % escalate_every == 0:
                    await self.escalate()
            except Exception:
                log.exception("scheduler tick failed; trying again")
            ticks += 1
            await asyncio.sleep(every)

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
    connectors: dict[str, Connector] = {"notes": NotesVaultConnector(path=notes_dir(settings))}
    webhooks: dict[str, str] = {}
    for name, hook in settings.connectors.webhooks.items():
        connector = WebhookConnector(name=name.lower(), url=hook.url, client=client, retry=retry,
                                     timeout=hook.timeout_seconds)
        connectors[connector.name] = connector
        webhooks[name.lower()] = connector.name
    return connectors, webhooks


def notes_dir(settings: Settings) -> Path:
    """The notes vault directory."""
    return settings.connectors.notes.path or settings.storage.data_dir / "notes"


async def build_memory(settings: Settings, db: Database, stack: AsyncExitStack) -> Memory:
    """The memory service: static embeddings (or the configured LangChain class), vectors in
    the state database or in Weaviate."""
    embeddings: Embeddings = StaticEmbeddings()
    if settings.memory.embeddings:
        module, _, name = settings.memory.embeddings.partition(":")
        try:
            embeddings = getattr(importlib.import_module(module), name)(
                **settings.memory.embeddings_options)
        except (ImportError, AttributeError, TypeError) as exc:
            raise ValueError(f"[memory] embeddings = {settings.memory.embeddings!r} cannot be "
                             f"built: {exc}") from exc
    index: VectorIndex
    if settings.memory.weaviate_url:
        import weaviate

        url = urlsplit(settings.memory.weaviate_url)
        client = weaviate.use_async_with_custom(
            http_host=url.hostname, http_port=url.port or 8080,
            http_secure=url.scheme == "https", grpc_host=url.hostname, grpc_port=50051,
            grpc_secure=url.scheme == "https")
        await client.connect()
        stack.push_async_callback(client.close)
        index = WeaviateIndex(client)
    else:
        index = SqliteNumpyIndex(db, dims=getattr(embeddings, "dims", None))
    return Memory(db=db, index=index, embeddings=embeddings,
                  recency_half_life_days=settings.memory.recency_half_life_days)


def build_llm_understander(settings: Settings, meter: BudgetMeter) -> LLMUnderstander | None:
    """The LLM understander when ``[llm] model`` is set (``init_chat_model``), else None."""
    llm = settings.llm
    if not llm.model:
        return None
    from langchain.chat_models import init_chat_model

    kwargs: dict[str, Any] = {"timeout": llm.timeout_seconds, "max_retries": 0,
                              "max_tokens": llm.max_output_tokens}
    if llm.base_url:
        kwargs["base_url"] = llm.base_url
    if llm.api_key is not None:
        kwargs["api_key"] = llm.api_key.get_secret_value()
    try:
        model = init_chat_model(llm.model, **kwargs)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"[llm] model = {llm.model!r} cannot be used: {exc}") from exc
    return LLMUnderstander(model=model, model_name=llm.model, meter=meter,
                           webhooks=[n.lower() for n in settings.connectors.webhooks],
                           zone=settings.operator.timezone,
                           max_output_tokens=llm.max_output_tokens)


def build_understander(settings: Settings, embeddings: Embeddings) -> Understander:
    """The offline understander (also the fallback when a model is configured)."""
    return LocalUnderstander(embeddings=embeddings,
                             webhooks=[n.lower() for n in settings.connectors.webhooks],
                             timezone=ZoneInfo(settings.operator.timezone))


def build_transcriber(settings: Settings) -> Transcriber:
    """Offline Whisper, or an OpenAI-compatible endpoint for ``[voice] model = "openai:..."``."""
    voice = settings.voice
    if voice.model.startswith("openai:"):
        return CloudTranscriber(model=voice.model.removeprefix("openai:"),
                                base_url=voice.base_url,
                                api_key=voice.api_key.get_secret_value() if voice.api_key else "")
    return WhisperTranscriber(model=voice.model, models_dir=settings.storage.data_dir / "models")


def build_policy(settings: Settings) -> Policy:
    """Each webhook's own ``risk``, then the ``[policy] risk`` overrides (on top of the
    built-in tiers of :class:`graph.policy.Policy`)."""
    risk: dict[str, str] = {}
    risk.update({f"webhook:{n.lower()}": h.risk for n, h in settings.connectors.webhooks.items()})
    risk.update(settings.policy.risk)
    return Policy(risk=risk, approval_ttl=timedelta(minutes=settings.policy.approval_ttl_minutes),
                  undo_seconds=dict(settings.policy.undo_seconds))


def build_adapters(settings: Settings, *, timezone: ZoneInfo) -> list[ChatAdapter]:
    """The chat adapters whose settings are present (Telegram, Slack)."""
    adapters: list[ChatAdapter] = []
    telegram = settings.telegram
    if telegram.token is not None:
        from telegram.ext import AIORateLimiter, ExtBot
        from telegram.request import HTTPXRequest

        from bot.adapters.telegram import TelegramAdapter

        bot = ExtBot(
            telegram.token.get_secret_value(), base_url=telegram.base_url,
            base_file_url=telegram.base_file_url,
            # Throttle to Telegram's limits; 429s are waited out by the delivery queue.
            rate_limiter=AIORateLimiter(overall_max_rate=telegram.max_messages_per_second,
                                        max_retries=0)
            if telegram.max_messages_per_second else None,
            request=HTTPXRequest(connection_pool_size=16),
            get_updates_request=HTTPXRequest(read_timeout=telegram.poll_timeout_seconds + 10))
        secret = telegram.webhook_secret.get_secret_value() if telegram.webhook_secret else ""
        adapters.append(TelegramAdapter(
            bot=bot, mode=telegram.mode, poll_timeout=telegram.poll_timeout_seconds,
            webhook_url=telegram.webhook_url, webhook_secret=secret, host=telegram.host,
            port=telegram.port, timezone=timezone))
    slack = settings.slack
    if slack.bot_token is not None:
        from slack_sdk.web.async_client import AsyncWebClient

        from bot.adapters.slack import SlackAdapter

        if slack.mode == "http" and slack.signing_secret is None:
            raise ValueError("[slack] mode = \"http\" needs signing_secret "
                             "(SOLO_SLACK__SIGNING_SECRET)")
        if slack.mode == "socket" and slack.app_token is None:
            raise ValueError("[slack] mode = \"socket\" needs app_token (SOLO_SLACK__APP_TOKEN)")
        client = AsyncWebClient(token=slack.bot_token.get_secret_value(), base_url=slack.base_url)
        adapters.append(SlackAdapter(
            client=client, mode=slack.mode,
            signing_secret=slack.signing_secret.get_secret_value() if slack.signing_secret else "",
            app_token=slack.app_token.get_secret_value() if slack.app_token else "",
            host=slack.host, port=slack.port, timezone=timezone))
    return adapters
