"""Playbooks with real ``solo serve`` processes: two instances on one PostgreSQL database are
killed (SIGKILL) while their playbooks' occurrences fall due; restarted after the due time, each
missed occurrence follows its playbook's policy — caught up once, or skipped and reported — a
week-long outage yields one run, and no occurrence runs twice across the two instances. And
``solo serve`` takes a playbook's webhook on its ``[console]`` port, only once a console password
is set."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from memory.db import open_database
from memory.models import utcnow
from memory.stores import Storage
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, fresh_postgres_url
from tests.fakes.telegram import FakeTelegramServer
from tests.support.mailrig import free_port
from tests.support.processes import start_serve, stop, write_serve_config
from tests.support.waiting import poll_until

CAUGHT_UP = [f"p{i:02d}" for i in range(24)]
NOTE = """enabled = true
[trigger]
cron = "0 8 * * *"
missed = "{missed}"
grace_hours = {grace}
[[steps]]
draft = "ran {{date}}: {name}"
[[steps]]
note = true
"""


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL and not REQUIRE_POSTGRES,
                    reason="PostgreSQL not available: set SOLO_TEST_POSTGRES_URL (.ci/run does)")
async def test_killed_instances_follow_each_playbooks_missed_run_policy_once(
        tmp_path: Path) -> None:
    url = await fresh_postgres_url(f"solo_playbooks_{os.getpid()}")
    telegram = FakeTelegramServer()
    await telegram.start()
    config = write_serve_config(tmp_path, telegram.config_section())
    config.write_text(config.read_text().replace(
        "[storage]\n", f'[storage]\ndatabase_url = "{url}"\n'))
    folder = tmp_path / "data" / "playbooks"
    folder.mkdir(parents=True)
    for name in CAUGHT_UP:
        (folder / f"{name}.toml").write_text(NOTE.format(missed="catch_up", grace=12, name=name))
    (folder / "late.toml").write_text(NOTE.format(missed="skip", grace=12, name="late"))
    (folder / "week.toml").write_text(NOTE.format(missed="catch_up", grace=336, name="week"))
    db = open_database(url)
    await db.migrate()
    storage = Storage(db)
    procs = [await start_serve(config, tmp_path / "a.log"),
             await start_serve(config, tmp_path / "b.log")]
    try:
        async def scheduled() -> bool:
            return len(await storage.jobs.scheduled("playbook")) == 26

        await poll_until(scheduled, timeout=120, every=0.2,
                         describe=lambda: "the instances did not schedule the 26 playbooks")
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        # While nothing runs, the occurrences fall due: 2 hours ago (a week ago for "week").
        for job in await storage.jobs.scheduled("playbook"):
            down_for = timedelta(days=7) if job.id == "playbook:week" else timedelta(hours=2)
            await storage.jobs.put(id=job.id, kind=job.kind, payload=job.payload,
                                   due_at=utcnow() - down_for, missed_policy=job.missed_policy,
                                   replace=True)
        procs = [await start_serve(config, tmp_path / "a.log"),
                 await start_serve(config, tmp_path / "b.log")]

        async def settled() -> bool:
            runs = [r for name in [*CAUGHT_UP, "week"]
                    for r in await storage.playbooks.runs(name, limit=10)]
            return len(runs) + len(await _skips(storage)) >= 26

        await poll_until(settled, timeout=180, every=0.5,
                         describe=lambda: "the missed occurrences were not all handled")
        await asyncio.sleep(3)  # time for any duplicate to show up
        for name in [*CAUGHT_UP, "week"]:
            [run] = await storage.playbooks.runs(name, limit=10)  # once, not per instance
            assert run.status == "started" and run.plan_id, (name, run)
        assert await storage.playbooks.runs("late") == []  # skipped (audited) ...
        assert len(await _skips(storage)) == 1
        written = sorted(p.read_text() for p in (tmp_path / "data" / "notes").glob("*.md"))
        assert len(written) == 25 and all(any(f": {name}" in text for text in written)
                                          for name in [*CAUGHT_UP, "week"])
        # The next occurrence comes from now: no burst of the week's missed days.
        for job in await storage.jobs.scheduled("playbook"):
            assert job.due_at > utcnow(), job
    finally:
        for proc in procs:
            await stop(proc)
        await storage.aclose()
        await telegram.stop()


async def _skips(storage: Storage) -> list:
    """The audit's record of the skip playbook's missed occurrence."""
    return [e for e in await storage.audit.recent(500)
            if e.decision == "job.skipped" and (e.detail or {}).get("job") == "playbook:late"]


async def test_solo_serve_takes_a_playbook_webhook_on_its_console_port(tmp_path: Path) -> None:
    telegram = FakeTelegramServer()
    await telegram.start()
    port = free_port()
    folder = tmp_path / "data" / "playbooks"
    folder.mkdir(parents=True)
    (folder / "orders.toml").write_text(
        'enabled = true\n[trigger]\nhook = true\nsecret = "orders-secret-0042"\n'
        '[[steps]]\ndraft = "New order: {items}"\n[[steps]]\nnote = true\n')
    log = tmp_path / "serve.log"
    hook = {"url": f"http://127.0.0.1:{port}/hooks/orders", "json": {"text": "Order 7: 2 mugs"},
            "headers": {"Authorization": "Bearer orders-secret-0042"}}
    # Secure by default: with a port but no password, nothing listens.
    proc = await start_serve(write_serve_config(tmp_path, telegram.config_section(),
                                                f"[console]\nport = {port}\n"), log)
    try:
        assert "the console and playbook webhooks are off" in log.read_text()
        async with httpx.AsyncClient(timeout=30) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(**hook)
    finally:
        await stop(proc)
    proc = await start_serve(write_serve_config(
        tmp_path, telegram.config_section(),
        f'[console]\nport = {port}\npassword = "console-password-1"\n'), log)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(**hook)
        assert answer.status_code == 202, answer.text
        # The body is outside text: the note waits on a card in the operator's chat.
        await telegram.wait_for(lambda: any("New order: - Order 7: 2 mugs" in t
                                            for t in telegram.texts()))
    finally:
        await stop(proc)
        await telegram.stop()
