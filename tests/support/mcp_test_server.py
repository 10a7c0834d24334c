"""An MCP server of our own (the official SDK's MCPServer, over stdio) for the cases the
reference servers lack: a tool that appends a line to a file (not idempotent; every call is
counted), a slow one that appends and then takes its time, a slow read-only tool, a tool that
adds a tool (and says the list changed), a tool that kills its server mid-call, and — with
``--hang`` — a server that never answers ``initialize``.

Run as ``python -m tests.support.mcp_test_server LEDGER [--hang]``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations


def build(ledger: Path) -> MCPServer:
    """The server; ``ledger`` receives one line per ``append_line`` call."""
    server = MCPServer("solo-test-tools")

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=False))
    def append_line(text: str) -> str:
        """Append a line of text to the ledger file (not idempotent: each call adds one)."""
        with ledger.open("a") as out:
            out.write(text + "\n")
        return f"appended {text!r}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=False))
    def slow_append(text: str, seconds: float = 30.0) -> str:
        """Append a line to the ledger, then take some seconds to answer (not idempotent)."""
        with ledger.open("a") as out:
            out.write(text + "\n")
        time.sleep(seconds)
        return f"appended {text!r}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def slow_echo(text: str, seconds: float = 0.0) -> str:
        """Echo the text after waiting some seconds (read-only)."""
        time.sleep(seconds)
        return text

    @server.tool(annotations=ToolAnnotations(read_only_hint=False))
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool called NAME (it echoes its text) and tell the client the list changed."""
        def echo(text: str) -> str:
            return text

        server.add_tool(echo, name=name, description=f"Echo the text ({name}).")
        await ctx.notify_tools_changed()
        return f"added {name}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=False))
    def crash(text: str) -> str:
        """Write the text to the ledger, then die before answering."""
        with ledger.open("a") as out:
            out.write(f"crash:{text}\n")
        os._exit(3)

    return server


def _exit_with_parent() -> None:
    """Exit when the process that started this server is gone. A client killed with SIGKILL
    cannot stop it, and a tool call still sleeping would keep the dead client's inherited
    stderr open (a test reading that pipe would wait for the sleep to end)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    """Serve over stdio (or hang forever with ``--hang``)."""
    _exit_with_parent()
    if "--hang" in sys.argv:
        asyncio.run(asyncio.Event().wait())
    build(Path(sys.argv[1])).run("stdio")


if __name__ == "__main__":
    main()
