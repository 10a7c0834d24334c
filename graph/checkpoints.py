"""LangGraph checkpointers for the two storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


@asynccontextmanager
async def sqlite_checkpointer(path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    """A saver on its own SQLite file (its own file so that it never queues behind the outbox)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a checkpoint survives a process crash, and one lost to power failure costs
        # nothing but a re-run (nodes before execute are idempotent, effects go through the
        # outbox, whose database is synchronous=FULL).
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=10000")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver
    finally:
        await conn.close()


@asynccontextmanager
async def postgres_checkpointer(conninfo: str) -> AsyncIterator[BaseCheckpointSaver]:
    """A saver on a PostgreSQL connection pool (``setup`` is idempotent)."""
    async with AsyncConnectionPool(
        conninfo, open=False, max_size=8,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield saver
