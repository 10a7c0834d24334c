"""Engine set-up for SQLite (default) and PostgreSQL, and schema migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def sqlalchemy_url(url: str) -> str:
    """The async SQLAlchemy URL for ``url`` (``sqlite:///x`` or ``postgresql://...``)."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.drivername.startswith(("postgresql", "postgres")):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; "
                     "use sqlite:///PATH or postgresql://...")


def libpq_url(url: str) -> str:
    """The plain ``postgresql://`` form of a PostgreSQL URL, for psycopg and LangGraph's saver."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``.

    SQLite gets WAL, ``synchronous=FULL`` (its rows guard side effects, so a committed outbox row
    must survive power loss), a busy timeout, and ``BEGIN IMMEDIATE`` so that two writers queue
    on the lock instead of failing with a deadlock on upgrade.
    """
    engine = create_async_engine(sqlalchemy_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        database = make_url(sqlalchemy_url(url)).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _upgrade(connection: Connection) -> None:
    config = Config(str(_ALEMBIC_INI))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
