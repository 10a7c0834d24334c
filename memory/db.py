"""Databases: SQLite (default) and PostgreSQL behind one way of running a unit of work.

A store method is one synchronous function over a SQLAlchemy ``Connection`` run as one
transaction by :meth:`Database.run`:

- SQLite runs it on one dedicated thread with the stdlib driver: one thread hop per
  transaction. (Through aiosqlite every statement is a hop of its own; a four-statement
  transaction cost about 2.5 ms instead of 0.6 ms here.) SQLite takes one writer at a time
  anyway, so one thread and one connection lose nothing, and nothing ever waits on SQLite's
  busy handler, which sleeps in steps of up to 100 ms. Urgent units of work (the admit path,
  :func:`urgent`) that queue up together are committed together — group commit: one
  transaction, each unit in its own savepoint (one failing rolls back only itself), one fsync
  for all, and none is answered before that commit.
- PostgreSQL runs it through psycopg's async driver (``AsyncConnection.run_sync``), so many
  transactions proceed at once.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
T = TypeVar("T")


def libpq_url(url: str) -> str:
    """The plain ``postgresql://`` form of a PostgreSQL URL, for psycopg and LangGraph's saver."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _upgrade(connection: Connection) -> None:
    config = Config(str(_ALEMBIC_INI))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


_URGENT: ContextVar[bool] = ContextVar("solo_database_urgent", default=False)


@contextmanager
def urgent() -> Iterator[None]:
    """Database work started inside goes ahead of queued ordinary work (SQLite): what a
    platform is waiting for (recording an event before acknowledging it) does not queue behind
    background plans."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class _PriorityWorker:
    """One thread running submitted calls, urgent ones first, in order within a priority.

    Args:
        batch: runs several queued urgent calls at once (``batch(calls)`` returns one outcome
            per call: ``(True, result)`` or ``(False, exception)``); None: one at a time.
        batch_limit: the most calls in one batch.
    """

    def __init__(self, name: str, *,
                 batch: Callable[[list[Callable[[], Any]]], list[tuple[bool, Any]]] | None = None,
                 batch_limit: int = 64) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._batch = batch
        self.batch_limit = batch_limit
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], T], *, urgent: bool) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((0 if urgent else 1, next(self._order), call, future))
        return future

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item[2] is None:
                return
            group = [item]
            while item[0] == 0 and self._batch is not None and len(group) < self.batch_limit:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following[0] != 0:
                    self._queue.put(following)  # its (priority, order) keeps its place
                    break
                group.append(following)
            group = [g for g in group if g[3].set_running_or_notify_cancel()]
            if len(group) > 1:
                outcomes = self._batch([g[2] for g in group])
            else:
                outcomes = [self._one(g[2]) for g in group]
            for (_, _, _, future), (ok, value) in zip(group, outcomes, strict=True):
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    @staticmethod
    def _one(call: Callable[[], Any]) -> tuple[bool, Any]:
        try:
            return True, call()
        except BaseException as exc:
            return False, exc

    def shutdown(self) -> None:
        self._queue.put((2, next(self._order), None, None))
        self._thread.join()


class Database(ABC):
    """An engine and how its units of work run. Open with :func:`open_database`."""

    dialect: str
    """``"sqlite"`` or ``"postgresql"``."""

    @abstractmethod
    async def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(connection)`` in one transaction; commit if it returns, roll back if it
        raises."""

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        await self.run(_upgrade)

    @abstractmethod
    async def aclose(self) -> None:
        """Close every connection."""


class SqliteDatabase(Database):
    """SQLite on a dedicated thread: WAL, ``synchronous=FULL`` (its rows guard side effects, so
    a committed outbox row must survive power loss), ``BEGIN IMMEDIATE`` transactions."""

    dialect = "sqlite"

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs.setdefault("pool_size", 1)
        engine_kwargs.setdefault("max_overflow", 0)
        if "poolclass" in engine_kwargs:
            engine_kwargs.pop("pool_size")
            engine_kwargs.pop("max_overflow")
        self.engine: Engine = sqlalchemy.create_engine(
            make_url(url).set(drivername="sqlite+pysqlite"),
            connect_args={"check_same_thread": False, "timeout": 30}, **engine_kwargs)
        self._worker = _PriorityWorker("sqlite", batch=self._group)

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn: Connection) -> None:
            # Take the write lock up front: a deferred transaction that upgrades to a writer
            # fails at once with SQLITE_BUSY when another process holds the lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    @property
    def group_limit(self) -> int:
        """The most urgent units of work committed together (1: group commit off)."""
        return self._worker.batch_limit

    @group_limit.setter
    def group_limit(self, value: int) -> None:
        self._worker.batch_limit = max(1, value)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return work(conn)

    def _group(self, calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """Group commit (see the module docstring): ``calls`` are ``partial(_transaction,
        work)``; their works run in one transaction, each in a savepoint."""
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.engine.begin() as conn:
                for call in calls:
                    savepoint = conn.begin_nested()
                    try:
                        outcomes.append((True, call.args[0](conn)))
                        savepoint.commit()
                    except Exception as exc:
                        savepoint.rollback()
                        outcomes.append((False, exc))
        except Exception as exc:  # the commit itself failed: nothing of the group holds
            return [(False, exc)] * len(calls)
        return outcomes

    async def run(self, work: Callable[[Connection], T]) -> T:
        """See :meth:`Database.run`. Work started under :func:`urgent` goes first, committed
        together with other urgent work queued at the same moment."""
        return await asyncio.wrap_future(
            self._worker.submit(partial(self._transaction, work), urgent=_URGENT.get()))

    async def aclose(self) -> None:
        """See :meth:`Database.aclose`."""
        await asyncio.wrap_future(self._worker.submit(self.engine.dispose, urgent=False))
        await asyncio.to_thread(self._worker.shutdown)


class PostgresDatabase(Database):
    """PostgreSQL through psycopg's async driver."""

    dialect = "postgresql"

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine: AsyncEngine = create_async_engine(
            make_url(url).set(drivername="postgresql+psycopg"), **engine_kwargs)

    async def run(self, work: Callable[[Connection], T]) -> T:
        """See :meth:`Database.run`."""
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def aclose(self) -> None:
        """See :meth:`Database.aclose`."""
        await self.engine.dispose()


def open_database(url: str, **engine_kwargs: Any) -> Database:
    """The database at ``url``: ``sqlite:///PATH`` or ``postgresql://...``."""
    driver = make_url(url).drivername
    if driver.startswith("sqlite"):
        return SqliteDatabase(url, **engine_kwargs)
    if driver.startswith(("postgresql", "postgres")):
        return PostgresDatabase(url, **engine_kwargs)
    raise ValueError(f"unsupported database URL scheme {driver!r}; "
                     "use sqlite:///PATH or postgresql://...")
