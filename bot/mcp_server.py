"""Solo OS as an MCP server (``solo mcp``): outside agents may read and propose, never decide.

Read tools: ``search_memory``, ``list_plans``, ``list_approvals`` and ``recent_audit`` (each
annotated read-only). ``propose_plan`` writes a *proposal* job into the shared ``jobs`` table;
the jobs loop of ``solo serve`` (this process or another one on the same database) turns it into
a plan in the operator's chat, where every step it leads to waits for the operator's approval,
whatever its risk (see :func:`graph.nodes.understand.understand_message`). A proposal is
durable (it survives either process stopping) and idempotent under the ``_meta`` key
``solo/idempotency-key``, the same key Solo OS sends to the tool servers it calls.

Served over stdio (the outside agent starts ``solo mcp``), or over streamable HTTP behind a
bearer token (``solo mcp --http PORT`` with ``SOLO_MCP_TOKEN`` set): without the token, every
request is refused with 401.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from graph.events import PROPOSAL, Inbound
from graph.timefmt import when_text
from memory.knowledge import Memory
from memory.models import utcnow
from memory.stores import Storage

KEY_META = "solo/idempotency-key"
MAX_PROPOSAL = 2000
# A proposal waits for a running ``solo serve`` this long; after that it is dropped (and the
# job says so) rather than surprising the operator with something a week old.
PROPOSAL_WAIT = "catch_up_within:604800"
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
INSTRUCTIONS = """Solo OS runs a one-person company's approvals, memory and plans. You may read
(search_memory, list_plans, list_approvals, recent_audit) and propose (propose_plan): a proposal
becomes a card in the operator's chat, and nothing it leads to happens unless the operator
approves it there. You cannot approve, reject or cancel anything."""

Asgi = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def build_server(*, storage: Storage, memory: Memory, timezone: Any) -> MCPServer:
    """The server over ``storage`` and ``memory`` (times shown in ``timezone``)."""
    server = MCPServer("solo-os", instructions=INSTRUCTIONS)

    @server.tool(annotations=READ_ONLY)
    async def search_memory(query: str, limit: int = 5) -> list[dict[str, Any]]:
        """Search the operator's memory (facts, notes, mail, receipts) for QUERY; each item
        with its id, kind, text, where it came from and when."""
        hits = await memory.search(query, k=max(1, min(limit, 20)))
        return [{"id": h.item.id, "kind": h.item.kind, "text": h.item.text[:1000],
                 "source": h.item.source, "at": when_text(h.item.created_at, timezone)}
                for h in hits]

    @server.tool(annotations=READ_ONLY)
    async def list_plans(limit: int = 10) -> list[dict[str, Any]]:
        """The latest plans: id, status, who asked, what they asked and when."""
        plans = await storage.plans.recent(max(1, min(limit, 50)))
        return [{"id": p.id[:8], "status": p.status, "asked_by": p.actor,
                 "text": Inbound.from_dict(p.inbound).text[:300],
                 "at": when_text(p.created_at, timezone)} for p in plans]

    @server.tool(annotations=READ_ONLY)
    async def list_approvals() -> list[dict[str, Any]]:
        """The cards waiting for the operator: id, risk, why, and the steps they would run."""
        return [{"id": a.id, "risk": a.risk, "why": a.reason,
                 "steps": [s.get("title", "") for s in (a.diff or {}).get("steps", [])],
                 "expires": when_text(a.expires_at, timezone)}
                for a in await storage.approvals.pending()]

    @server.tool(annotations=READ_ONLY)
    async def recent_audit(limit: int = 20) -> list[dict[str, Any]]:
        """The latest entries of the audit ledger: when, who, what was decided, the receipt."""
        events = await storage.audit.recent(max(1, min(limit, 100)))
        return [{"at": when_text(e.at, timezone), "actor": e.actor, "decision": e.decision,
                 "connector": e.connector, "receipt": e.receipt_id,
                 "summary": str((e.detail or {}).get("summary", ""))[:300]} for e in events]

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=True))
    async def propose_plan(text: str, ctx: Context, reason: str = "") -> str:
        """Propose something for the operator to do, in the words they would use ("send the
        crm hook that invoice 42 is paid", "/note …"). It appears in their chat as a card;
        nothing happens unless they approve it. Repeating a call with the same _meta
        solo/idempotency-key proposes once."""
        text = " ".join(text.split())
        if not text:
            raise ToolError("say what to propose: text is empty")
        if len(text) > MAX_PROPOSAL:
            raise ToolError(f"the proposal is longer than {MAX_PROPOSAL} characters")
        key = _meta_key(ctx) or uuid.uuid4().hex
        job_id = f"{PROPOSAL}:{hashlib.sha256(key.encode()).hexdigest()[:24]}"
        await storage.jobs.put(id=job_id, kind=PROPOSAL, due_at=utcnow(),
                               payload={"text": text, "reason": reason[:500],
                                        "by": _client_name(ctx)},
                               missed_policy=PROPOSAL_WAIT)
        return (f"Proposed as {job_id}. The operator sees it in chat and decides; nothing "
                "happens without their approval.")

    return server


def _meta_key(ctx: Context) -> str | None:
    value = (ctx.request_context.meta or {}).get(KEY_META)
    return str(value)[:200] if value else None


def _client_name(ctx: Context) -> str:
    params = getattr(ctx.request_context.session, "client_params", None)
    info = getattr(params, "client_info", None)
    return f"agent:{getattr(info, 'name', None) or 'unknown'}"[:100]


def require_token(app: Asgi, token: str) -> Asgi:
    """``app`` behind ``Authorization: Bearer TOKEN`` (compared in constant time); anything
    else gets 401 before it reaches the MCP endpoint."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b"missing or wrong token\n"})
                return
        await app(scope, receive, send)

    return guarded
