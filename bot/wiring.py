"""Wiring from settings: storage, connectors, memory, understanding, policy, the director and the
chat adapters, each built from :class:`config.Settings` (the only place besides the CLI that
reads it). Nothing here runs anything; :class:`bot.app.SoloApp` owns the lifetime.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from bot.adapters.base import ChatAdapter
from bot.voice import CloudTranscriber, Transcriber, WhisperTranscriber
from config import Settings
from connectors.base import Connector
from connectors.calendar import CalendarConnector
from connectors.email import EmailConnector
from connectors.mailbox import MailAccount
from connectors.mcp import McpConnector, McpServer, McpServerConfig
from connectors.notes import NotesVaultConnector
from connectors.playbook_files import PlaybookFilesConnector
from connectors.retry import RetryPolicy
from connectors.webhooks import WebhookConnector
from graph.budget import BudgetMeter, Caps, Prices
from graph.checkpoints import postgres_checkpointer, sqlite_checkpointer
from graph.director import Director
from graph.events import Inbound, Transcript
from graph.llm import LLMUnderstander
from graph.local_understanding import LocalUnderstander
from graph.policy import Policy
from graph.state import DirectorDeps
from graph.tool_search import ToolCard, ToolSearch
from graph.understanding import Understander
from memory.db import Database, libpq_url, open_database
from memory.embeddings import StaticEmbeddings
from memory.knowledge import Memory
from memory.stores import Storage
from memory.vectors import SqliteNumpyIndex, VectorIndex, WeaviateIndex


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


async def open_state(settings: Settings, stack: AsyncExitStack) -> Database:
    """The state database, migrated (closed by ``stack``)."""
    db = open_database(database_urls(settings)[0])
    stack.push_async_callback(db.aclose)
    await db.migrate()
    return db


async def build_director(settings: Settings, stack: AsyncExitStack, *,
                         hear: Callable[[Inbound], Awaitable[Transcript]] | None) -> Director:
    """Storage (migrated), checkpoints, connectors, memory, understanding and the director;
    every connection is closed by ``stack``. ``hear`` transcribes voice notes."""
    state_url, checkpoint_at = database_urls(settings)
    db = await open_state(settings, stack)
    storage = Storage(db)
    if state_url.startswith("postgres"):
        checkpointer = await stack.enter_async_context(postgres_checkpointer(checkpoint_at))
    else:
        checkpointer = await stack.enter_async_context(sqlite_checkpointer(Path(checkpoint_at)))
    client = await stack.enter_async_context(httpx.AsyncClient())
    connectors, webhooks = build_connectors(settings, client)
    for connector in connectors.values():
        if isinstance(connector, McpConnector):
            connector.server.start()  # returns at once: a slow server holds nothing up
            stack.push_async_callback(connector.server.stop)
    memory = await build_memory(settings, db, stack)
    local = build_understander(settings, memory.embeddings)
    timezone = ZoneInfo(settings.operator.timezone)
    meter = BudgetMeter(
        storage=storage, timezone=timezone,
        prices=Prices(settings.llm.input_usd_per_million, settings.llm.output_usd_per_million),
        caps=Caps(settings.budget.daily_usd, settings.budget.per_plan_usd,
                  settings.budget.per_job_usd))
    deps = DirectorDeps(
        storage=storage, connectors=connectors, webhooks=webhooks,
        policy=build_policy(settings),
        understander=build_llm_understander(settings, meter, tools=mcp_tool_cards(connectors),
                                            embeddings=memory.embeddings) or local,
        fallback=local, meter=meter if settings.llm.model else None,
        context_tokens=settings.memory.context_tokens, timezone=timezone, memory=memory,
        notes_dir=notes_dir(settings), hear=hear,
        playbooks_dir=settings.storage.data_dir / "playbooks",
        local_first=settings.llm.local_confidence
        if settings.llm.model and settings.llm.order == "local_first" else None)
    return Director(deps=deps, checkpointer=checkpointer)


def build_connectors(settings: Settings,
                     client: httpx.AsyncClient) -> tuple[dict[str, Connector], dict[str, str]]:
    """Connectors by name, and webhook name → connector name."""
    retry_settings = settings.connectors.retry
    retry = RetryPolicy(attempts=retry_settings.attempts,
                        timeout=retry_settings.timeout_seconds,
                        wait_initial=retry_settings.wait_initial_seconds,
                        wait_max=retry_settings.wait_max_seconds,
                        wait_jitter=retry_settings.wait_jitter_seconds)
    connectors: dict[str, Connector] = {
        "notes": NotesVaultConnector(path=notes_dir(settings)),
        "playbooks": PlaybookFilesConnector(path=settings.storage.data_dir / "playbooks")}
    webhooks: dict[str, str] = {}
    for name, hook in settings.connectors.webhooks.items():
        connector = WebhookConnector(name=name.lower(), url=hook.url, client=client, retry=retry,
                                     timeout=hook.timeout_seconds)
        connectors[connector.name] = connector
        webhooks[name.lower()] = connector.name
    mail = settings.connectors.email
    if mail.configured:
        connectors["email"] = EmailConnector(account=MailAccount(
            imap_host=mail.imap_host, imap_port=mail.imap_port, smtp_host=mail.smtp_host,
            smtp_port=mail.smtp_port, security=mail.security, username=mail.username,
            password=secret_value(mail.password), address=mail.address,
            sent_folder=mail.sent_folder, timeout=mail.timeout_seconds), retry=retry)
    calendar = settings.connectors.calendar
    if calendar.url:
        connectors["calendar"] = CalendarConnector(
            url=calendar.url, calendar=calendar.calendar, username=calendar.username,
            password=secret_value(calendar.password), client=client, retry=retry,
            timezone=ZoneInfo(settings.operator.timezone), timeout=calendar.timeout_seconds)
    for name, server in settings.connectors.mcp.items():
        connector = McpConnector(McpServer(name.lower(), McpServerConfig(
            command=server.command, args=tuple(server.args), env=server.env, url=server.url,
            headers=server.headers, include=tuple(server.include),
            exclude=tuple(server.exclude), risk=dict(server.risk),
            trust_annotations=server.trust_annotations, timeout=server.timeout_seconds)))
        connectors[connector.name] = connector
    return connectors, webhooks


def secret_value(value: SecretStr | None) -> str:
    """A secret setting's value ('' when unset)."""
    return value.get_secret_value() if value is not None else ""


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


def mcp_tool_cards(connectors: dict[str, Connector]) -> Callable[[], list[ToolCard]]:
    """What the planner may be shown of the MCP tools: each allowed tool of each server, as
    the server lists it now (a server that is down offers nothing)."""
    servers = [c.server for c in connectors.values() if isinstance(c, McpConnector)]
    return lambda: [ToolCard(f"{server.name}.{tool.name}", tool.description, tool.schema)
                    for server in servers for tool in server.tools.values()
                    if server.allowed(tool.name)]


def build_llm_understander(settings: Settings, meter: BudgetMeter, *,
                           tools: Callable[[], list[ToolCard]] | None = None,
                           embeddings: Embeddings | None = None) -> LLMUnderstander | None:
    """The LLM understander when ``[llm] model`` is set (``init_chat_model``), else None;
    ``tools`` (with the tool search over ``embeddings``) are the MCP tools it may plan with."""
    llm = settings.llm
    if not llm.model:
        return None
    from langchain.chat_models import init_chat_model

    # Temperature 0: the same message gets the same plan (servers such as llama.cpp's sample
    # at 0.8 when none is sent; LangChain drops it for models that take only their default).
    kwargs: dict[str, Any] = {"timeout": llm.timeout_seconds, "max_retries": 0,
                              "max_tokens": llm.max_output_tokens, "temperature": 0}
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
                           max_output_tokens=llm.max_output_tokens,
                           structured_output=llm.structured_output, tools=tools,
                           tool_search=ToolSearch(embeddings) if embeddings else None)


def build_understander(settings: Settings, embeddings: Embeddings) -> Understander:
    """The offline understander (also the fallback when a model is configured)."""
    return LocalUnderstander(embeddings=embeddings,
                             webhooks=[n.lower() for n in settings.connectors.webhooks],
                             timezone=ZoneInfo(settings.operator.timezone))


def operator_vocabulary(settings: Settings,
                        memory: Memory | None) -> Callable[[], Awaitable[list[str]]]:
    """What the operator is likely to say in a voice note, most important first: the names
    their facts mention (read for every note, so a name remembered a minute ago counts), then
    the configured webhook and MCP server names."""
    configured = [*settings.connectors.webhooks, *settings.connectors.mcp]

    async def words() -> list[str]:
        names = await memory.store.names() if memory is not None else []
        return [*names, *(n.replace("-", " ") for n in configured)]

    return words


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
            host=slack.host, port=slack.port, timezone=timezone,
            refresh_seconds=slack.refresh_minutes * 60 or None))
    return adapters
