"""kill -9 of the real ``solo chat`` process while a non-idempotent MCP tool call is in flight:
after the restart the operator is told the outcome is unknown, and the tool is not called again
without a decision: Mark done (it happened: a receipt says so), Try again (``/retry``: one more
call, under the same key) or Drop."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.scenarios.test_crash_recovery import CARD, SoloProcess
from tests.support.waiting import poll_until


async def test_a_call_in_flight_at_a_crash_is_never_repeated_silently(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      "[connectors.mcp.box]\n"
                      f'command = "{sys.executable}"\n'
                      f'args = ["-m", "tests.support.mcp_test_server", "{ledger}"]\n'
                      "timeout_seconds = 60\n")
    solo = await SoloProcess.start(config)
    try:
        await solo.write('/call box.slow_append {"text": "pay supplier", "seconds": 60}')
        line = await solo.wait_for("┌─ Approval")
        await solo.write(f"a {CARD.match(solo.lines[line])['id']}")
        await poll_until(lambda: ledger.exists() and ledger.read_text(), timeout=120,
                         describe=lambda: "\n".join(solo.lines[-10:]))
    finally:
        await solo.wait_dead()  # SIGKILL while the tool is still working

    again = await SoloProcess.start(config)
    try:
        told = await again.wait_for("outcome of box.slow_append is unknown")
        assert "Nothing more is sent on its own: /retry p" in again.lines[told]
        asked = await again.wait_for("[1] Mark done  [2] Try again  [3] Drop", start=told)
        await again.sync()
        assert ledger.read_text() == "pay supplier\n"  # not called again
        await again.write("1")  # the operator checked: it did happen
        done = await again.wait_for("Marked done: Call box.slow_append", start=asked)
        assert "receipt r" in again.lines[done]
        await again.write("/retry " + again.lines[told].split("/retry ")[1].split()[0])
        await again.wait_for("has no failed step to retry", start=done)
        await again.sync()
        assert ledger.read_text() == "pay supplier\n"  # and never called again
    finally:
        await again.wait_dead()
