"""Solo OS as an MCP server (``solo mcp``), driven by the official SDK's client as an outside
agent would drive it: it reads memory, plans, approvals and the audit, and proposes; a proposal
becomes a card in the operator's chat (through the jobs loop of the running app, on the same
database), nothing it leads to happens before the operator approves, and it cannot decide for
them. Over HTTP, nothing is answered without the token."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from mcp import Client, StdioServerParameters

from bot.adapters.memory import InMemoryAdapter
from config import Settings
from connectors.mcp import McpServer, McpServerConfig
from tests.fakes.webhooks import WebhookReceiver
from tests.support.mailrig import free_port
from tests.support.waiting import poll_until

ROOT = Path(__file__).resolve().parents[2]
READS = {"search_memory", "list_plans", "list_approvals", "recent_audit"}
TOKEN = "s3cret-token-for-the-test"


def write_config(tmp_path: Path, settings: Settings) -> Path:
    config = tmp_path / "mcp.toml"
    config.write_text(f'[storage]\ndata_dir = "{settings.storage.data_dir}"\n'
                      f'database_url = "{settings.storage.database_url}"\n')
    return config


@asynccontextmanager
async def agent(config: Path) -> AsyncIterator[Client]:
    """An outside agent connected to ``solo mcp`` over stdio."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLO_")}
    params = StdioServerParameters(command=sys.executable, env=env, cwd=str(ROOT),
                                   args=["-m", "bot.cli", "--config", str(config), "mcp"])
    async with Client(params, read_timeout_seconds=120) as client:
        yield client


async def call(client: Client, tool: str, arguments: dict, key: str | None = None) -> object:
    result = await client.call_tool(tool, arguments,
                                    meta={"solo/idempotency-key": key} if key else None)
    assert not result.is_error, result.content
    text = "\n".join(part.text for part in result.content)
    return result.structured_content.get("result") if result.structured_content else text


async def test_an_outside_agent_reads_and_proposes_and_only_the_operator_decides(
        chat: InMemoryAdapter, settings: Settings, receiver: WebhookReceiver,
        tmp_path: Path) -> None:
    app = chat.app
    await chat.say("/remember Acme pays by bank transfer to DE44 5001")
    [waiting] = [s.card for s in await chat.say("/send crm invoice 42 is paid")
                 if s.kind == "card"]
    async with agent(write_config(tmp_path, settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == READS | {"propose_plan"}
        assert all(tools[name].annotations.read_only_hint for name in READS)
        assert not tools["propose_plan"].annotations.read_only_hint
        found = await call(client, "search_memory", {"query": "how does Acme pay"})
        assert any("DE44 5001" in item["text"] for item in found), found
        approvals = await call(client, "list_approvals", {})
        assert [a["id"] for a in approvals] == [waiting.approval_id]
        assert approvals[0]["risk"] == "high"
        plans = await call(client, "list_plans", {})
        assert "/send crm invoice 42 is paid" in [p["text"] for p in plans]
        audit = await call(client, "recent_audit", {"limit": 50})
        assert any(e["decision"] == "executed" for e in audit), audit  # the fact was kept

        proposed = await call(client, "propose_plan", {
            "text": "/send crm invoice 43 is paid", "reason": "the bank statement shows it"},
            key="agent-run-1:0")
        again = await call(client, "propose_plan", {"text": "/send crm invoice 43 is paid"},
                           key="agent-run-1:0")
        assert proposed == again  # the same key proposes once
        await call(client, "propose_plan", {"text": "/note the agent was here"})
        await call(client, "propose_plan", {"text": f"/cancel {waiting.approval_id}"})
        await call(client, "propose_plan", {"text": "/run weekly-review"})
        await call(client, "propose_plan", {"text": "pause the weekly review playbook"})
        empty = await client.call_tool("propose_plan", {"text": "   "})
        assert empty.is_error and "text is empty" in empty.content[0].text

    # The running app (another process could run it: only the database is shared) shows them.
    before = len(chat.sent)
    await app.deliver(await app.jobs.scheduler.tick())
    shown = chat.sent[before:]
    texts = [s.text for s in shown if s.kind == "message"]
    assert sum("proposes: “/send crm invoice 43 is paid”" in t for t in texts) == 1, texts
    assert any("because: the bank statement shows it" in t for t in texts)
    assert any("An outside agent cannot /cancel" in t for t in texts), texts
    assert sum("An outside agent cannot /run" in t for t in texts) == 2, texts
    cards = [s.card for s in shown if s.kind == "card"]
    assert len(cards) == 2  # the send and the note: even a low-risk note waits for a tap
    assert {c.risk for c in cards} == {"high", "medium"}
    assert all(c.reason.startswith("agent:") for c in cards)
    assert receiver.posts == []
    assert not list((settings.storage.data_dir / "notes").glob("*.md"))
    assert (await app.storage.approvals.get(waiting.approval_id)).status == "pending"

    # An agent's tap is not a tap: only the operator's counts.
    send = next(c for c in cards if c.risk == "high")
    await chat.press("approve", send.approval_id, actor="agent:solo-test")
    assert receiver.posts == []
    await chat.press("approve", send.approval_id)
    assert receiver.deliveries_of("invoice 43 is paid") == 1
    await app.deliver(await app.jobs.scheduler.tick())  # nothing proposed twice
    assert receiver.deliveries_of("invoice 43 is paid") == 1


async def test_over_http_nothing_is_answered_without_the_token(
        settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOLO_")},
           "SOLO_MCP_TOKEN": TOKEN}
    config = write_config(tmp_path, settings)
    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--config", str(config), "mcp", "--http", str(port),
        env={**env, "SOLO_MCP_TOKEN": "short"}, cwd=ROOT, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(refused.communicate(), 120)
    assert refused.returncode == 2 and b"SOLO_MCP_TOKEN" in err
    log = (tmp_path / "mcp-http.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--config", str(config), "mcp", "--http", str(port),
        env=env, cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx.AsyncClient() as http:
            async def answers() -> bool:
                try:
                    return (await http.post(url, json={})).status_code == 401
                except httpx.TransportError:
                    return False
            await poll_until(answers, timeout=120, describe=lambda: "solo mcp --http not up")
            wrong = await http.post(url, headers={"Authorization": "Bearer nope"}, json={})
            assert wrong.status_code == 401
        # Solo OS's own MCP connector is the client: its `headers` carry the token.
        server = McpServer("solo", McpServerConfig(
            url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60))
        server.start()
        try:
            assert await server.ready(), server.detail
            assert set(server.tools) == READS | {"propose_plan"}
            answer = await server.call("propose_plan", {"text": "/note over http"}, "k1")
            assert answer.startswith("Proposed as proposal:"), answer
        finally:
            await server.stop()
    finally:
        proc.terminate()
        await proc.wait()
        log.close()
