"""The scheduler with real ``solo serve`` processes: two instances on one PostgreSQL database
fire each due job once; a summary that fell due while the process was dead (SIGKILL) is handled
by its missed-run policy after the restart."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from memory.db import open_database
from memory.models import utcnow
from memory.stores import Storage
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, fresh_postgres_url
from tests.fakes.telegram import FakeTelegramServer
from tests.support.processes import start_serve, stop


def config_for(tmp_path: Path, telegram: FakeTelegramServer, database_url: str = "") -> Path:
    config = tmp_path / "solo.toml"
    config.write_text(f"""
[storage]
data_dir = "{tmp_path / 'data'}"
database_url = "{database_url}"
{telegram.config_section()}[schedule]
summary_time = "{(utcnow() + timedelta(hours=6)).strftime('%H:%M')}"
""")
    return config


async def storage_at(url: str) -> Storage:
    db = open_database(url)
    await db.migrate()
    return Storage(db)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL and not REQUIRE_POSTGRES,
                    reason="PostgreSQL not available: set SOLO_TEST_POSTGRES_URL (.ci/run does)")
async def test_two_processes_on_postgres_fire_each_due_job_once(tmp_path: Path) -> None:
    url = await fresh_postgres_url(f"solo_two_{os.getpid()}")
    telegram = FakeTelegramServer()
    await telegram.start()
    config = config_for(tmp_path, telegram, url)
    first = await start_serve(config, tmp_path / "a.log")
    second = await start_serve(config, tmp_path / "b.log")
    storage = await storage_at(url)
    try:
        due = utcnow() + timedelta(seconds=2)
        for i in range(12):
            await storage.jobs.put(id=f"rem-two-{i}", kind="reminder", due_at=due,
                                   payload={"channel": "telegram", "chat": "111",
                                            "text": f"job {i}"})
        await telegram.wait_for(lambda: len([t for t in telegram.texts() if "⏰" in t]) >= 12)
        await asyncio.sleep(3)  # time for any duplicate to show up
        fired = sorted(t for t in telegram.texts() if "⏰" in t)
        assert fired == sorted(f"⏰ Reminder: job {i}" for i in range(12))  # each exactly once
    finally:
        await stop(first)
        await stop(second)
        await storage.aclose()
        await telegram.stop()


@pytest.mark.parametrize(("down_for", "expect_summary"), [(timedelta(hours=2), True),
                                                           (timedelta(hours=5), False)],
                         ids=["caught-up", "skipped"])
async def test_a_summary_due_while_dead_follows_its_policy(
        tmp_path: Path, down_for: timedelta, expect_summary: bool) -> None:
    telegram = FakeTelegramServer()
    await telegram.start()
    config = config_for(tmp_path, telegram)
    log = tmp_path / "serve.log"
    proc = await start_serve(config, log)
    try:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        # The clock moves on while nothing runs: the summary fell due `down_for` ago.
        storage = await storage_at(f"sqlite:///{tmp_path / 'data' / 'solo.sqlite3'}")
        job = await storage.jobs.get("daily-summary")
        assert job is not None
        await storage.db.run(lambda conn: conn.exec_driver_sql(
            "UPDATE jobs SET due_at = ? WHERE id = 'daily-summary'",
            ((utcnow() - down_for).replace(tzinfo=None).isoformat(sep=" "),)))
        await storage.aclose()
        proc = await start_serve(config, log)
        if expect_summary:
            await telegram.wait_for(lambda: any(t.startswith("Summary for")
                                                for t in telegram.texts()))
        else:
            await asyncio.sleep(3)
            assert not any(t.startswith("Summary for") for t in telegram.texts())
        storage = await storage_at(f"sqlite:///{tmp_path / 'data' / 'solo.sqlite3'}")
        decisions = [e.decision for e in await storage.audit.recent(50)]
        assert ("job.ran" if expect_summary else "job.skipped") in decisions
        assert (await storage.jobs.get("daily-summary")).due_at > utcnow()  # next day
        await storage.aclose()
    finally:
        await stop(proc)
        await telegram.stop()
