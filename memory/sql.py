"""Small SQL helpers every store shares (dialect-aware inserts, ORM reads inside a
transaction)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

T = TypeVar("T")


def dialect_insert(conn: Connection) -> Any:
    """The ``insert`` of the connection's dialect (for ``ON CONFLICT`` clauses)."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def insert_ignore(conn: Connection, model: type, values: dict[str, Any]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING <primary key>``.

    The result has a row only when the insert happened (rowcount is not reliable across drivers).
    """
    key = model.__mapper__.primary_key[0]
    return dialect_insert(conn)(model).values(**values).on_conflict_do_nothing().returning(key)


def inserted(conn: Connection, model: type, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless the primary key exists; whether the row is new."""
    result = conn.execute(insert_ignore(conn, model, values))
    new = result.first() is not None
    result.close()
    return new


def discard_result(conn: Connection, statement: Any) -> None:
    """Execute ``statement`` and discard its result (SQLite refuses to commit while a RETURNING
    result is still open)."""
    conn.execute(statement).close()


def read_orm(conn: Connection, query: Callable[[Session], T]) -> T:
    """Run an ORM query on ``conn``; the objects stay usable after the transaction."""
    with Session(bind=conn, expire_on_commit=False) as session:
        return query(session)
