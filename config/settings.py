"""The settings schema (pydantic-settings) and how it is loaded.

Sources, strongest first: environment variables ``SOLO_<SECTION>__<KEY>``, then the TOML file
given by ``--config`` or ``SOLO_CONFIG``. Every key is documented in ``config/example.toml``.
Nothing else in the project reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Risk = Literal["low", "medium", "high"]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key to fix."""


class StorageSettings(BaseModel):
    """Where durable state lives."""

    data_dir: Path = Path("data")
    database_url: str = ""
    """Empty: SQLite files in ``data_dir``. Otherwise ``postgresql://...`` or ``sqlite:///...``."""


class OperatorSettings(BaseModel):
    """Who the operator is and where they live."""

    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value


class TelegramSettings(BaseModel):
    """The Telegram adapter; configured when ``token`` is set."""

    token: SecretStr | None = None
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    operators: list[int] = Field(default_factory=list)
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    """Public HTTPS URL Telegram posts updates to (webhook mode)."""
    webhook_secret: SecretStr | None = None
    """Checked against ``X-Telegram-Bot-Api-Secret-Token`` on every webhook request."""
    host: str = "127.0.0.1"
    port: int = 8443
    poll_timeout_seconds: int = 30
    max_messages_per_second: float = Field(default=30.0, ge=0)
    """Outbound throttle across all chats (Telegram's flood limit for bots is about 30/s);
    0 turns the throttle off (e.g. against a test server)."""


class SlackSettings(BaseModel):
    """The Slack adapter; configured when ``bot_token`` is set."""

    bot_token: SecretStr | None = None
    mode: Literal["http", "socket"] = "http"
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 3000
    base_url: str = "https://slack.com/api/"
    operators: list[str] = Field(default_factory=list)
    refresh_minutes: float = Field(default=1.5, ge=0)
    """Socket Mode: with no event for this long, open a fresh connection (a connection can
    answer pings and deliver nothing; 0: never). 1.5 keeps a deaf connection under two
    minutes; apps.connections.open allows 50+ calls a minute."""


class NotesSettings(BaseModel):
    """The markdown notes vault; empty path means ``<data_dir>/notes``."""

    path: Path | None = None


class WebhookSettings(BaseModel):
    """One named webhook target."""

    url: str
    risk: Risk = "high"
    timeout_seconds: float = 10.0


class RetrySettings(BaseModel):
    """Retries of transient connector failures (stamina)."""

    attempts: int = 5
    timeout_seconds: float = 60.0
    wait_initial_seconds: float = 0.5
    wait_max_seconds: float = 10.0
    wait_jitter_seconds: float = 0.5


TriageClass = Literal["needs_reply", "fyi", "ignore"]


class EmailSettings(BaseModel):
    """One mailbox over IMAP (reading, the Sent folder) and SMTP (sending); empty ``imap_host``
    means no email connector."""

    imap_host: str = ""
    imap_port: int = 993
    smtp_host: str = ""
    smtp_port: int = 465
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str = ""
    password: SecretStr | None = None
    address: str = ""
    sent_folder: str = "Sent"
    poll_seconds: int = Field(default=300, ge=10)
    triage: dict[str, TriageClass] = Field(default_factory=dict)
    """Operator's rules before any classifier: sender pattern (``*@bank.example``,
    ``news@shop.example``) → ``needs_reply`` | ``fyi`` | ``ignore``."""
    timeout_seconds: float = Field(default=30.0, gt=0)

    @property
    def configured(self) -> bool:
        """Whether the connector should be built."""
        return bool(self.imap_host and self.smtp_host and self.address)


class CalendarSettings(BaseModel):
    """A CalDAV calendar (events and tasks); empty ``url`` means no calendar connector."""

    url: str = ""
    """The account's CalDAV home, e.g. ``https://dav.example/alice/``."""
    username: str = ""
    password: SecretStr | None = None
    calendar: str = "personal"
    """The collection under ``url`` that events and tasks go to."""
    timeout_seconds: float = Field(default=30.0, gt=0)


class McpSettings(BaseModel):
    """One MCP tool server: ``command`` (+ ``args``, ``env``) for stdio, else ``url`` (+
    ``headers``) for streamable HTTP."""

    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    include: list[str] = Field(default_factory=list)
    """Only these tools (empty: all not excluded)."""
    exclude: list[str] = Field(default_factory=list)
    risk: dict[str, Risk] = Field(default_factory=dict)
    """Per tool; unlisted tools are high unless the server is trusted and says read-only."""
    trust_annotations: bool = False
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _reachable(self) -> McpSettings:
        if not self.command and not self.url:
            raise ValueError("an MCP server needs command (stdio) or url (streamable HTTP)")
        return self


class ConnectorsSettings(BaseModel):
    """External systems the director acts on."""

    notes: NotesSettings = Field(default_factory=NotesSettings)
    webhooks: dict[str, WebhookSettings] = Field(default_factory=dict)
    email: EmailSettings = Field(default_factory=EmailSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    mcp: dict[str, McpSettings] = Field(default_factory=dict)
    retry: RetrySettings = Field(default_factory=RetrySettings)


class LLMSettings(BaseModel):
    """A LangChain chat model; an empty model means the offline local understander."""

    model: str = ""
    """``provider:model`` for ``init_chat_model``, e.g. ``openai:gpt-4o-mini``."""
    base_url: str = ""
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=20.0, gt=0)
    max_output_tokens: int = Field(default=600, gt=0)
    input_usd_per_million: float = Field(default=0.0, ge=0)
    output_usd_per_million: float = Field(default=0.0, ge=0)
    order: Literal["model_first", "local_first"] = "model_first"
    """``local_first``: the offline classifier answers what it is sure of (at least
    ``local_confidence``) and only the rest goes to the model: fewer tokens, no multi-step plans
    for messages it is sure of. ``model_first``: every free-text message goes to the model."""
    local_confidence: float = Field(default=0.9, ge=0, le=1)
    structured_output: Literal["auto", "json_schema", "function_calling", "json_mode"] = "auto"
    """How the model is asked for a plan: ``auto`` tries JSON schema, then function calling,
    then JSON mode, and keeps the first the server accepts (llama.cpp's server, for one,
    refuses JSON schema)."""


class BudgetSettings(BaseModel):
    """Hard caps on model spending, in USD (0 = no cap)."""

    daily_usd: float = Field(default=1.0, ge=0)
    per_plan_usd: float = Field(default=0.10, ge=0)
    per_job_usd: float = Field(default=0.05, ge=0)


class MemorySettings(BaseModel):
    """What Solo OS remembers and how much of it a model sees."""

    context_tokens: int = Field(default=800, gt=0)
    """Most memory given to a model per turn."""
    recency_half_life_days: float = Field(default=30.0, gt=0)
    checkpoint_retention_days: int = Field(default=30, ge=1)
    """Checkpoints of finished plans are deleted after this; the audit log is never pruned."""
    weaviate_url: str = ""
    """Empty: vectors in the state database (exact search). Otherwise a Weaviate endpoint."""
    embeddings: str = ""
    """Empty: the bundled static model. Otherwise any LangChain ``Embeddings`` class as
    ``module:Class`` (e.g. ``langchain_openai:OpenAIEmbeddings``), built with
    ``embeddings_options``."""
    embeddings_options: dict[str, Any] = Field(default_factory=dict)


class ScheduleSettings(BaseModel):
    """The daily rhythm."""

    summary_time: str = Field(default="08:00", pattern=r"^(|\d{1,2}:\d{2})$")
    """Local time of the daily summary; empty turns it off."""
    summary_channels: list[str] = Field(default_factory=list)
    """Where it goes (console, telegram, slack); empty means every configured channel."""
    escalate_after_minutes: int = Field(default=60, ge=1)
    """An unanswered card gets a reminder after this, then goes to the other channel after
    twice this; at its expiry it expires (never approved by default)."""
    quiet_hours: str = Field(default="", pattern=r"^(|\d{1,2}:\d{2}-\d{1,2}:\d{2})$")
    """e.g. "22:00-07:00": summaries and escalations wait until it ends."""


class VoiceSettings(BaseModel):
    """Speech to text for voice notes."""

    model: str = "base"
    """"base" or "tiny.en" (bundled, offline), a local CTranslate2 model directory, a hub
    name, or "openai:MODEL" for an OpenAI-compatible transcription endpoint."""
    base_url: str = ""
    api_key: SecretStr | None = None


class PolicySettings(BaseModel):
    """Risk tiers per action kind and approval expiry."""

    approval_ttl_minutes: int = Field(default=24 * 60, gt=0)
    risk: dict[str, Risk] = Field(default_factory=dict)
    """Overrides per action kind or connector name, on top of the built-in tiers (notes are
    low) and each webhook's own ``risk``."""
    undo_seconds: dict[str, int] = Field(default_factory=dict)
    """Per action kind or connector name: seconds an approved step waits with an Undo button
    before it runs (0 or unlisted: no window), e.g. ``{"webhook.post" = 20}``."""

    @field_validator("undo_seconds")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if v < 0]
        if bad:
            raise ValueError(f"undo_seconds must be 0 or more (see {', '.join(bad)})")
        return value


class ConsoleSettings(BaseModel):
    """The local web listener of ``solo serve``: the operator console (its login is
    ``password``), ``/metrics``, playbook webhooks (``POST /hooks/NAME``) and ``/healthz``. It
    listens only when both ``port`` and ``password`` are set."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    """0: not listening."""
    password: SecretStr | None = None


class Settings(BaseSettings):
    """All of Solo OS's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SOLO_", env_nested_delimiter="__", extra="forbid",
        nested_model_default_partial_update=True,
    )

    storage: StorageSettings = Field(default_factory=StorageSettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    connectors: ConnectorsSettings = Field(default_factory=ConnectorsSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    def configured_adapters(self) -> list[str]:
        """Names of the chat adapters whose required settings are present."""
        names = []
        if self.telegram.token is not None:
            names.append("telegram")
        if self.slack.bot_token is not None:
            names.append("slack")
        return names


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from ``path`` (or ``SOLO_CONFIG``) and the environment.

    Raises:
        ConfigError: the file is missing or unreadable, or a value is invalid; the message
            names the key.
    """
    path = path or os.environ.get("SOLO_CONFIG") or None
    toml_path = Path(path) if path else None
    if toml_path is not None:
        if not toml_path.is_file():
            raise ConfigError(f"config file not found: {toml_path}")
        try:
            tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {toml_path} is not valid TOML: {exc}") from exc

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            return tuple(sources)

    try:
        return _Loaded()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
