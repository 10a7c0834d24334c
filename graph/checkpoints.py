"""LangGraph checkpointers for the two storage backends."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

T = TypeVar("T")


class ThreadedSqliteSaver(SqliteSaver):
    """LangGraph's ``SqliteSaver`` with its async API run on one dedicated thread.

    One thread hop per checkpoint operation, where ``AsyncSqliteSaver`` (aiosqlite) makes one
    per statement; the same reasoning as ``memory.db.SqliteDatabase``.
    """

    def __init__(self, conn: sqlite3.Connection, *, thread: ThreadPoolExecutor) -> None:
        super().__init__(conn)
        self._thread = thread

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """See ``SqliteSaver.get_tuple``."""
        return await self._run(lambda: self.get_tuple(config))

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None,
                    limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        """See ``SqliteSaver.list``."""
        items = await self._run(lambda: list(self.list(config, filter=filter, before=before,
                                                       limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        """See ``SqliteSaver.put``."""
        return await self._run(lambda: self.put(config, checkpoint, metadata, new_versions))

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """See ``SqliteSaver.put_writes``."""
        await self._run(lambda: self.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """See ``SqliteSaver.delete_thread``."""
        await self._run(lambda: self.delete_thread(thread_id))


@asynccontextmanager
async def sqlite_checkpointer(path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    """A saver on its own SQLite file (its own file so that it never queues behind the outbox)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoints")
    loop = asyncio.get_running_loop()

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a checkpoint survives a process crash, and one lost to power failure costs
        # nothing but a re-run (nodes before execute are idempotent, effects go through the
        # outbox, whose database is synchronous=FULL).
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    conn = await loop.run_in_executor(thread, connect)
    try:
        saver = ThreadedSqliteSaver(conn, thread=thread)
        await loop.run_in_executor(thread, saver.setup)
        yield saver
    finally:
        await loop.run_in_executor(thread, conn.close)
        thread.shutdown(wait=True)


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
