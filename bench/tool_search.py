"""What the MCP tool descriptions cost a planning call, before and after the tool search step.

Starts real tool servers on this machine — ``mcp-server-time`` (PyPI), our SDK test server
(``tests/support/mcp_test_server.py``) and, when ``SOLO_TEST_MCP_FILESYSTEM`` names it, the npm
reference ``server-filesystem`` — and, for each labelled request below, counts the tokens of
the tool section of the planning prompt (``graph.llm.TOOLS``) with every allowed schema (the
baseline: what most agents send) and with the tool search's pick, and whether the pick still
holds a tool that serves the request. The requests were written with the tools in view, so the
hit rate is not blind; the token figures do not depend on that.

Usage (from the repository root): python -m bench.tool_search [--k N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from connectors.mcp import McpServer, McpServerConfig
from graph.llm import TOOLS
from graph.tool_search import ToolCard, ToolSearch
from memory.embeddings import StaticEmbeddings
from memory.knowledge import approx_tokens

REQUESTS = [  # (request, tools that would serve it)
    ("what time is it in Tokyo right now?", {"time.get_current_time"}),
    ("current time in New York please", {"time.get_current_time"}),
    ("if it's 9am in Berlin what time is that in Sydney", {"time.convert_time"}),
    ("convert 14:00 London time to Los Angeles", {"time.convert_time"}),
    ("add a line to the ledger saying invoice 42 is paid", {"box.append_line"}),
    ("append 'call Carla back' to the ledger", {"box.append_line", "box.slow_append"}),
    ("echo hello back to me", {"box.slow_echo"}),
    ("read the file notes/rates.txt", {"files.read_text_file", "files.read_file"}),
    ("what's in the contract draft file", {"files.read_text_file", "files.read_file"}),
    ("save this as a new file called offer.txt: 10% off in May",
     {"files.write_file"}),
    ("overwrite todo.txt with the new list", {"files.write_file", "files.edit_file"}),
    ("replace the old price with the new one in prices.md", {"files.edit_file"}),
    ("make a folder for the Acme project", {"files.create_directory"}),
    ("list the files in the invoices directory",
     {"files.list_directory", "files.list_directory_with_sizes", "files.directory_tree"}),
    ("how big are the files in exports",
     {"files.list_directory_with_sizes", "files.get_file_info"}),
    ("rename draft.txt to final.txt", {"files.move_file"}),
    ("find every pdf under invoices", {"files.search_files"}),
    ("when was report.pdf last modified", {"files.get_file_info"}),
    ("show me the folder tree of the projects dir",
     {"files.directory_tree", "files.list_directory"}),
    ("which folders are you allowed to touch", {"files.list_allowed_directories"}),
]


def section(tools: list[ToolCard]) -> str:
    """The tool section of the planning prompt for ``tools``."""
    return TOOLS.format(lines="\n".join(t.render() for t in tools)) if tools else ""


async def main(k: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="solo-bench-tools-"))
    configs = {
        "time": McpServerConfig(command=sys.executable, timeout=60,
                                args=("-m", "mcp_server_time", "--local-timezone", "UTC")),
        "box": McpServerConfig(command=sys.executable, timeout=60, exclude=("crash",),
                               args=("-m", "tests.support.mcp_test_server",
                                     str(scratch / "ledger.txt")))}
    filesystem = os.environ.get("SOLO_TEST_MCP_FILESYSTEM", "")
    if filesystem and Path(filesystem).exists():
        configs["files"] = McpServerConfig(command=filesystem, args=(str(scratch),), timeout=60)
    else:
        print("(SOLO_TEST_MCP_FILESYSTEM not set: the npm filesystem server is left out, and "
              "so are the requests it serves)")
    servers = [McpServer(name, config) for name, config in configs.items()]
    for server in servers:
        server.start()
    try:
        for server in servers:
            if not await server.ready(within=90):
                raise SystemExit(f"{server.name} did not start: {server.detail}")
        tools = [ToolCard(f"{s.name}.{t.name}", t.description, t.schema)
                 for s in servers for t in s.tools.values() if s.allowed(t.name)]
        requests = [(text, wanted) for text, wanted in REQUESTS
                    if all(w.split(".")[0] in configs for w in wanted)]
        search = ToolSearch(StaticEmbeddings(), k=k)
        everything = approx_tokens(section(tools))
        picked_tokens, hits = [], 0
        for text, wanted in requests:
            picked = search.pick(text, tools)
            picked_tokens.append(approx_tokens(section(picked)))
            hit = bool(wanted & {t.name for t in picked})
            hits += hit
            if not hit:
                print(f"  miss: {text!r} → {[t.name for t in picked]} (wanted {sorted(wanted)})")
        after = statistics.mean(picked_tokens)
        print(f"\nTool descriptions per planning call: {len(tools)} allowed tools on "
              f"{len(servers)} servers ({', '.join(configs)}), {len(requests)} requests")
        print(f"{'':<28}{'tokens':>8}{'needed tool shown':>20}")
        print(f"{'every schema (baseline)':<28}{everything:>8}{'100%':>20}")
        print(f"{f'tool search (k={k})':<28}{after:>8.0f}{hits / len(requests):>20.0%}")
        print(f"ratio: ×{after / everything:.2f} of the baseline's tokens "
              f"(approx. tokens: characters / 4)")
    finally:
        for server in servers:
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    asyncio.run(main(parser.parse_args().k))
