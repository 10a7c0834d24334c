"""MCP tool servers as connectors: every tool call is an action on the plan spine (previewed,
gated by risk, approved when risky, called once under a key, receipted, audited).

One :class:`McpServer` per ``[connectors.mcp.NAME]`` keeps a session with the server in a
supervising task (stdio or streamable HTTP, through the official ``mcp`` SDK's ``Client``):
connecting and ``initialize`` have a timeout, a server that hangs or dies never blocks start-up
or another server, and a lost session is re-opened with backoff. :class:`McpConnector` is the
connector the director sees (``mcp:NAME``).

The allowlist (``include`` / ``exclude``) is enforced here, where every call is dispatched —
not only in what a model is shown: a tool outside it cannot be previewed or called by any path.

Risk: the operator's ``risk = { TOOL = "low" }`` first; otherwise the tool's annotations, but only
when the server is trusted (``trust_annotations``): ``readOnlyHint`` → low, anything else high;
otherwise high (the policy's default). Annotations are hints a server makes about itself.

The idempotency key goes along in the request's ``_meta`` (``solo/idempotency-key``) and, when
the tool declares an ``idempotency_key`` argument, in that argument. After a crash, a tool a
trusted server annotates idempotent is called again under the same key; any other tool is never
re-called silently: its outcome is unknown, and the operator decides (``/retry`` or leave it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from connectors.base import (
    Action,
    Connector,
    Diff,
    OutcomeUnknown,
    PermanentError,
    Receipt,
    TransientError,
)

if TYPE_CHECKING:  # the SDK is imported where it is used: importing it takes 0.7 s, which
    # every start of `solo serve` (and each restart after a crash) paid with no tool server.
    from mcp import Client

log = logging.getLogger(__name__)
CALL_KIND = "mcp.call"
KEY_META = "solo/idempotency-key"
KEY_ARGUMENT = "idempotency_key"
MAX_RESULT = 2000
MAX_BACKOFF = 300.0


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """How to reach one server and what of it may be used.

    Attributes:
        command, args, env: a stdio server (the process is started and owned by Solo OS).
        url, headers: a streamable HTTP server (used when ``command`` is empty).
        include, exclude: the allowlist (empty ``include``: every tool not excluded).
        risk: per tool, the operator's tier.
        trust_annotations: whether the server's tool annotations may lower a risk.
        timeout: seconds for connecting and ``initialize``, and for each call.
    """

    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    risk: dict[str, str] = field(default_factory=dict)
    trust_annotations: bool = False
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool as the server listed it (its description and schema are the server's words)."""

    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool | None = None
    idempotent: bool | None = None


class McpServer:
    """A supervised session with one MCP server.

    Args:
        name: the server's name in config.
        config: how to reach it.
    """

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self.tools: dict[str, McpTool] = {}
        self.state = "starting"
        """``starting``, ``ok`` or ``down``."""
        self.detail = ""
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._tools_changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopping = False
        self.connected_at = datetime.now(UTC)
        """When the current session opened (before the first: when supervising began)."""
        self.answered_at: datetime | None = None
        """When the server last answered anything (tool list, call, ping)."""
        self.called_at: datetime | None = None
        """When a tool call last came back."""

    def start(self) -> None:
        """Start supervising (returns at once: a slow server never holds anything up)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.name}")

    async def stop(self) -> None:
        """End the session and the server process (waiting at most a few seconds)."""
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()  # anyio's own cancellation: the SDK's shutdown honours it
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=10)
            self._task = None

    def _target(self, http: Any) -> Any:
        if self.config.command:
            from mcp import StdioServerParameters

            return StdioServerParameters(command=self.config.command, args=list(self.config.args),
                                         env=self.config.env or None)
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(self.config.url, http_client=http)

    def _http_client(self) -> Any:
        """The HTTP client of one session with a URL server (carrying ``headers``: a token,
        usually); nothing for a stdio server."""
        if self.config.command:
            return contextlib.nullcontext()
        from mcp.shared._httpx_utils import create_mcp_http_client

        return create_mcp_http_client(headers=self.config.headers or None)

    async def _supervise(self) -> None:
        delay = 1.0
        with anyio.CancelScope() as self._scope:
            while not self._stopping:
                try:
                    # One scope around the whole session (anyio scopes must nest): its deadline
                    # bounds connecting and initialize, then is lifted for the session's life.
                    with anyio.CancelScope(
                            deadline=anyio.current_time() + self.config.timeout) as deadline:
                        from mcp import Client

                        async with self._http_client() as http, \
                                Client(self._target(http), message_handler=self._on_message,
                                       read_timeout_seconds=self.config.timeout) as client:
                            await self._list_tools(client)
                            deadline.deadline = math.inf
                            self._client, self.state, self.detail = client, "ok", ""
                            self.connected_at = self.answered_at = datetime.now(UTC)
                            self._broken.clear()
                            self._ready.set()
                            delay = 1.0
                            async with anyio.create_task_group() as session:
                                session.start_soon(self._follow_tool_changes, client)
                                await self._broken.wait()
                                session.cancel_scope.cancel()
                    if deadline.cancelled_caught:
                        raise TimeoutError
                except Exception as exc:  # any failure of a server is its own, never ours
                    self.detail = _reason(exc)
                    log.warning("MCP server %s: %s; retrying in %.0f s", self.name,
                                self.detail, delay)
                self._client = None
                self._ready.clear()
                self.state = "down"
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def _list_tools(self, client: Client) -> None:
        """Every page of the server's tool list, never from a cache (it may have changed)."""
        tools: dict[str, McpTool] = {}
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.update((t.name, _tool(t)) for t in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        self.tools = tools

    async def _follow_tool_changes(self, client: Client) -> None:
        """Re-list the tools whenever the server says they changed: through a
        ``subscriptions/listen`` stream (protocol 2026-07-28), else on the
        ``notifications/tools/list_changed`` an older server sends."""
        from mcp.client.subscriptions import ListenNotSupportedError

        try:
            async with client.listen(tools_list_changed=True) as changes:
                async for _ in changes:
                    await self._list_tools(client)
        except ListenNotSupportedError:
            while True:
                await self._tools_changed.wait()
                self._tools_changed.clear()
                await self._list_tools(client)
        except Exception as exc:  # the session's end shows as _broken; this is only a hint
            log.info("MCP server %s: tool changes not followed (%s)", self.name, _reason(exc))

    async def _on_message(self, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification) or \
                isinstance(getattr(message, "root", None), ToolListChangedNotification):
            self._tools_changed.set()

    def _break(self) -> None:
        """The session is unusable: callers wait for the supervisor's next one."""
        self._ready.clear()
        self._broken.set()

    def restart(self) -> None:
        """End the current session (and a stdio server's process); the supervisor opens a
        fresh one (the watchdog's cure for a server that stopped answering)."""
        self._break()

    async def ping(self, within: float) -> str | None:
        """Whether the server answers a request within ``within`` seconds: None, else what is
        wrong. The request is ``tools/list`` (which every server here has; the protocol's own
        ``ping`` is gone as of 2026-07-28), so the tool list is fresh afterwards too."""
        client = self._client
        if client is None or self.state != "ok":
            return f"not connected ({self.detail or self.state})"
        try:
            with anyio.fail_after(within):
                await self._list_tools(client)
        except TimeoutError:
            return f"no answer to a ping within {within:g} s"
        except Exception as exc:  # a closed stream, a dead process: the server's, never ours
            return f"the ping failed: {_reason(exc)}"
        self.answered_at = datetime.now(UTC)
        return None

    async def ready(self, within: float | None = None) -> bool:
        """Wait until the session is up (at most ``within`` seconds, default the server's
        timeout); whether it is."""
        if self._ready.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.timeout if within is None else within):
                await self._ready.wait()
        return self._ready.is_set()

    def allowed(self, tool: str) -> bool:
        """Whether the allowlist lets ``tool`` be used at all."""
        return (not self.config.include or tool in self.config.include) and \
            tool not in self.config.exclude

    def risk_of(self, tool: str) -> str | None:
        """The operator's tier for ``tool``, else what a trusted server's annotations say,
        else None (the policy's default: high)."""
        if tool in self.config.risk:
            return self.config.risk[tool]
        listed = self.tools.get(tool)
        if self.config.trust_annotations and listed is not None and listed.read_only:
            return "low"
        return None

    async def call(self, tool: str, arguments: dict[str, Any], key: str) -> str:
        """Call ``tool`` once; the text of its result.

        Raises:
            TransientError: the server is not up, timed out, or the session broke.
            PermanentError: the server answered with an error.
        """
        if not await self.ready():
            raise TransientError(f"MCP server {self.name} is not available ({self.detail})")
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED

        client = self._client
        assert client is not None
        try:
            with anyio.fail_after(self.config.timeout):
                result = await client.call_tool(tool, arguments, meta={KEY_META: key})
        except TimeoutError as exc:
            raise TransientError(f"{self.name}.{tool} did not answer within "
                                 f"{self.config.timeout:g} s") from exc
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED and exc.message == "Connection closed":
                # The SDK's own word that the session is gone (e.g. it could not read what
                # the server sent), not the server's answer: start a new one.
                self._break()
                raise TransientError(f"{self.name}.{tool}: the session closed") from exc
            raise PermanentError(f"{self.name}.{tool}: {exc}") from exc
        except Exception as exc:  # the session is gone (a dead process, a closed stream)
            self._break()
            raise TransientError(f"{self.name}.{tool}: {_reason(exc)}") from exc
        self.answered_at = self.called_at = datetime.now(UTC)
        text = "\n".join(getattr(part, "text", f"[{part.type}]") for part in result.content)
        if result.is_error:
            raise PermanentError(f"{self.name}.{tool} failed: {text[:300]}")
        return text


def _tool(listed: Any) -> McpTool:
    hints = listed.annotations
    return McpTool(name=listed.name, description=(listed.description or "").strip(),
                   schema=dict(listed.input_schema or {}),
                   read_only=getattr(hints, "read_only_hint", None),
                   idempotent=getattr(hints, "idempotent_hint", None))


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "no answer to initialize in time"
    return f"{type(exc).__name__}: {exc}"[:300]


class McpConnector(Connector):
    """The connector of one MCP server (``mcp:NAME``).

    Args:
        server: the supervised session.
    """

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.name = f"mcp:{server.name}"

    def action(self, tool: str, arguments: dict[str, Any]) -> Action:
        """The action that calls ``tool`` with ``arguments``."""
        return Action(kind=CALL_KIND, connector=self.name,
                      args={"tool": tool, "arguments": arguments})

    def suggested_risk(self, action: Action) -> str | None:
        """See :meth:`McpServer.risk_of`."""
        return self.server.risk_of(str(action.args.get("tool", "")))

    async def _checked(self, action: Action) -> tuple[McpTool, dict[str, Any]]:
        if action.kind != CALL_KIND:
            raise PermanentError(f"{self.name} cannot perform {action.kind}")
        tool = str(action.args.get("tool") or "")
        if not self.server.allowed(tool):
            raise PermanentError(f"{self.server.name}.{tool} is not allowed (see "
                                 f"[connectors.mcp.{self.server.name}] include / exclude)")
        if not await self.server.ready():
            raise TransientError(f"MCP server {self.server.name} is not available "
                                 f"({self.server.detail or 'starting'})")
        listed = self.server.tools.get(tool)
        if listed is None:
            known = ", ".join(t for t in sorted(self.server.tools) if self.server.allowed(t))
            raise PermanentError(f"{self.server.name} has no tool {tool!r} (it has: {known})")
        arguments = action.args.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise PermanentError("the arguments must be a JSON object")
        missing = [name for name in listed.schema.get("required", []) if name not in arguments
                   and name != KEY_ARGUMENT]
        if missing:
            raise PermanentError(f"{self.server.name}.{tool} needs {', '.join(missing)}")
        return listed, arguments

    async def preview(self, action: Action) -> Diff:
        """Server, tool, the tool's description and each argument."""
        listed, arguments = await self._checked(action)
        fields: list[tuple[str, str | None, str]] = [
            ("tool", None, f"{self.server.name}.{listed.name}"),
            ("does", None, listed.description[:300] or "(no description)")]
        fields += [(name, None, json.dumps(value, ensure_ascii=False)[:500])
                   for name, value in arguments.items()]
        return Diff(title=f"Call {self.server.name}.{listed.name}", fields=tuple(fields))

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Call the tool once under ``idempotency_key`` (no automatic retry: an MCP call has
        no general way to be asked whether it already happened)."""
        listed, arguments = await self._checked(action)
        if KEY_ARGUMENT in listed.schema.get("properties", {}):
            arguments = {**arguments, KEY_ARGUMENT: idempotency_key}
        text = await self.server.call(listed.name, arguments, idempotency_key)
        return Receipt.for_key(connector=self.name, idempotency_key=idempotency_key,
                               summary=f"{self.server.name}.{listed.name}: "
                                       f"{_one_line(text)}", ref=text[:MAX_RESULT])

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """A call found in flight after a crash: repeated (``None``) only for a tool a trusted
        server annotates idempotent; otherwise :class:`OutcomeUnknown`."""
        tool = str((action.args if action else {}).get("tool", ""))
        await self.server.ready()
        listed = self.server.tools.get(tool)
        if self.server.config.trust_annotations and listed is not None and listed.idempotent:
            return None
        raise OutcomeUnknown(
            f"the outcome of {self.server.name}.{tool or '?'} is unknown: the process stopped "
            "during the call, and the tool is not known to be idempotent, so it was not called "
            "again")

    async def check(self) -> list[str]:
        """Problems reaching the server, for ``solo doctor``."""
        if await self.server.ready():
            return []
        return [f"MCP server {self.server.name}: {self.server.detail or 'did not start'}"]

    def tool_lines(self) -> Sequence[str]:
        """``/tools``: each allowed tool with its risk."""
        lines = []
        for tool in sorted(self.server.tools):
            if self.server.allowed(tool):
                risk = self.server.risk_of(tool) or "high"
                lines.append(f"{self.server.name}.{tool} [{risk}] — "
                             f"{_one_line(self.server.tools[tool].description)[:100]}")
        return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
