"""Tool servers (MCP): ``/tools`` lists them and their allowed tools with risk; ``/call
SERVER.TOOL {JSON}`` is a step on that server's connector, gated like any other (the allowlist
is enforced by the connector, so an excluded tool is refused at the gate)."""

from __future__ import annotations

from dataclasses import asdict

from connectors.mcp import McpConnector
from graph.state import DirectorDeps, Planned, PlanState, say
from graph.understanding import Intent

NONE_CONFIGURED = ("No tool servers are configured: add [connectors.mcp.NAME] with command "
                   "(stdio) or url (streamable HTTP) to the config.")


async def answer_tools(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """List the tools, or plan a call."""
    servers = {c.server.name: c for c in deps.connectors.values()
               if isinstance(c, McpConnector)}
    if not servers:
        return {"replies": [say(NONE_CONFIGURED)]}
    slots = intent.slots
    if slots.get("command") != "call":
        lines = []
        for name, connector in sorted(servers.items()):
            await connector.server.ready(within=2)
            server = connector.server
            lines.append(f"{name} ({server.state}{': ' + server.detail if server.detail else ''})")
            lines += [f"  {line}" for line in connector.tool_lines()] or ["  (no tools)"]
        return {"replies": [say("\n".join(lines))]}
    connector = servers.get(str(slots.get("server")))
    if connector is None:
        return {"replies": [say(f"No tool server named {slots.get('server')!r}. Known: "
                                f"{', '.join(sorted(servers))}.")]}
    action = connector.action(str(slots["tool"]), dict(slots.get("arguments") or {}))
    return {"steps": [{"action": asdict(action)}]}
