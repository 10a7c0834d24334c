"""kill -9 inside an undo window: the approved step is neither lost nor sent early.

The real ``solo chat`` process holds an approved ``/send`` for ``undo_seconds`` with an Undo
button. It is killed inside that window; a new process on the same data directory must send the
POST exactly once, and not before the window ends (checked against the receiver's own clock, so
a slow machine cannot make the test lie either way).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.fakes.webhooks import WebhookReceiver
from tests.scenarios.test_crash_recovery import CARD, SoloProcess

pytestmark = pytest.mark.crash
WINDOW = 10  # seconds: room enough to kill the process inside it on a loaded machine


async def test_sigkill_inside_the_undo_window_sends_once_after_it(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    data, config = tmp_path / "data", tmp_path / "solo.toml"
    config.write_text(f"""
[storage]
data_dir = "{data}"
[policy]
undo_seconds = {{ "webhook.post" = {WINDOW} }}
[connectors.webhooks.crm]
url = "{receiver.url}"
""")
    arrived: list[float] = []

    async def on_post(key: str | None, body: dict) -> None:
        arrived.append(time.time())

    receiver.on_post = on_post
    solo = await SoloProcess.start(config)
    try:
        await solo.write("/send crm held across a crash")
        approval = CARD.match(solo.lines[await solo.wait_for("┌─ Approval")])["id"]
        await solo.write(f"a {approval}")
        await solo.wait_for("unless you press Undo")
        solo.kill()
    finally:
        await solo.wait_dead()
    killed_at, posted_before_restart = time.time(), len(arrived)
    with sqlite3.connect(data / "solo.sqlite3") as db:
        (hold,) = db.execute("SELECT hold_until FROM plan_steps").fetchone()
    hold_until = datetime.fromisoformat(hold + "+00:00").timestamp()

    again = await SoloProcess.start(config)
    try:
        await again.wait_for("receipt r", timeout=180)
    finally:
        again.proc.stdin.close()
        await again.wait_dead()
    assert receiver.deliveries_of("held across a crash") == 1
    assert len(arrived) == 1 and arrived[0] >= hold_until, (arrived, hold_until)
    assert killed_at < hold_until, "the kill came after the window: raise WINDOW"
    assert posted_before_restart == 0
