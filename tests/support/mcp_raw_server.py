"""A bare MCP server over stdio, written against the wire protocol (newline-delimited JSON-RPC)
rather than an SDK, so that it can answer anything at all: ``tools/call`` of its one tool,
``raw``, answers with the call's ``result`` argument verbatim as the JSON-RPC result, or with
its ``error`` argument verbatim as the JSON-RPC error — shapes no SDK server would send.

Run as ``python -m tests.support.mcp_raw_server``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

TOOL = {"name": "raw", "description": "Answers with whatever it is told to.",
        "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": True, "idempotentHint": True}}


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    """The response to one request (None for a notification)."""
    if "id" not in request:
        return None
    method, params = request.get("method"), request.get("params") or {}
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
    if method == "initialize":
        reply["result"] = {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                           "capabilities": {"tools": {}},
                           "serverInfo": {"name": "raw", "version": "1"}}
    elif method == "tools/list":
        reply["result"] = {"tools": [TOOL]}
    elif method == "ping":
        reply["result"] = {}
    elif method == "tools/call":
        arguments = params.get("arguments") or {}
        if "error" in arguments:
            reply["error"] = arguments["error"]
        else:
            reply["result"] = arguments.get("result")
    else:
        reply["error"] = {"code": -32601, "message": f"no method {method}"}
    return reply


def main() -> None:
    """Serve stdin/stdout until stdin closes."""
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        reply = answer(request) if isinstance(request, dict) else None
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
