"""The vector index seam and its two implementations.

- :class:`SqliteNumpyIndex` (default): vectors as float32 BLOBs in the state database, searched
  exactly with numpy over a matrix loaded lazily on first search and kept in step with writes.
  A version counter in ``memory_meta`` tells when another process wrote, and the matrix is
  reloaded. Works on SQLite and PostgreSQL alike.
- :class:`WeaviateIndex`: a Weaviate collection through weaviate-client v4, for scale.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from memory.db import Database
from memory.models import MemoryMeta, MemoryVector
from memory.sql import dialect_insert

VERSION_KEY = "vectors_version"


@dataclass(frozen=True, slots=True)
class VectorItem:
    """One vector to index, with what searches filter on."""

    id: str
    vector: np.ndarray
    kind: str
    created_at: datetime


class VectorIndex(Protocol):
    """Nearest-neighbour search over item vectors (cosine; vectors are normalised)."""

    async def upsert(self, items: Sequence[VectorItem]) -> None:
        """Insert or replace ``items``."""
        ...

    async def delete(self, ids: Sequence[str]) -> None:
        """Remove ``ids`` (unknown ids are ignored)."""
        ...

    async def search(self, vector: np.ndarray, k: int, *, kinds: Sequence[str] | None = None,
                     since: datetime | None = None,
                     until: datetime | None = None) -> list[tuple[str, float]]:
        """The ``k`` best ``(id, score)``, best first, among items matching the filters."""
        ...


def _bump(conn: Connection) -> int:
    current = conn.execute(select(MemoryMeta.value).where(MemoryMeta.key == VERSION_KEY)).scalar()
    version = int(current or 0) + 1
    conn.execute(dialect_insert(conn)(MemoryMeta).values(key=VERSION_KEY, value=str(version))
                 .on_conflict_do_update(index_elements=[MemoryMeta.key],
                                        set_={"value": str(version)}))
    return version


class SqliteNumpyIndex:
    """Exact search over vectors stored in the state database (see the module docstring).

    Args:
        db: the state database.
        dims: vector dimensions; None to learn them from the first vector seen (a model behind
            an API need not be asked at start-up).
    """

    def __init__(self, db: Database, *, dims: int | None) -> None:
        self._db = db
        self.dims = dims
        self._loaded_version: int | None = None
        self._matrix = np.zeros((0, dims or 0), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._kinds = np.zeros(0, dtype=object)
        self._times = np.zeros(0, dtype=np.float64)

    async def upsert(self, items: Sequence[VectorItem]) -> None:
        """See :class:`VectorIndex`."""
        if not items:
            return
        self.dims = self.dims or len(items[0].vector)
        rows = [{"id": item.id, "kind": item.kind, "created_at": item.created_at,
                 "vector": np.asarray(item.vector, dtype=np.float32).tobytes()} for item in items]

        def work(conn: Connection) -> int:
            insert = dialect_insert(conn)(MemoryVector)
            conn.execute(insert.on_conflict_do_update(
                index_elements=[MemoryVector.id],
                set_={c: insert.excluded[c] for c in ("kind", "created_at", "vector")}), rows)
            return _bump(conn)

        version = await self._db.run(work)
        if self._loaded_version is not None and version == self._loaded_version + 1:
            for item in items:
                self._put(item.id, np.asarray(item.vector, dtype=np.float32), item.kind,
                          item.created_at.timestamp())
            self._loaded_version = version
        else:
            self._loaded_version = None  # someone else wrote too: reload on the next search

    async def delete(self, ids: Sequence[str]) -> None:
        """See :class:`VectorIndex`."""
        if not ids:
            return

        def work(conn: Connection) -> int:
            conn.execute(delete(MemoryVector).where(MemoryVector.id.in_(list(ids))))
            return _bump(conn)

        version = await self._db.run(work)
        if self._loaded_version is not None and version == self._loaded_version + 1:
            for item_id in ids:
                self._remove(item_id)
            self._loaded_version = version
        else:
            self._loaded_version = None

    async def search(self, vector: np.ndarray, k: int, *, kinds: Sequence[str] | None = None,
                     since: datetime | None = None,
                     until: datetime | None = None) -> list[tuple[str, float]]:
        """See :class:`VectorIndex`."""
        self.dims = self.dims or len(vector)
        await self._refresh()
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        matrix = self._matrix[:n]
        query = np.asarray(vector, dtype=np.float32)
        # numpy releases the GIL for the product: off the event loop, beside other work.
        scores = await asyncio.to_thread(matrix.__matmul__, query) if n > 20_000 \
            else matrix @ query
        if kinds is None and since is None and until is None:
            candidates = np.arange(n)
        else:
            mask = np.ones(n, dtype=bool)
            if kinds is not None:
                mask &= np.isin(self._kinds[:n], list(kinds))
            if since is not None:
                mask &= self._times[:n] >= since.timestamp()
            if until is not None:
                mask &= self._times[:n] < until.timestamp()
            candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        chosen = scores[candidates]
        if candidates.size > k:
            top = np.argpartition(-chosen, k)[:k]
            candidates, chosen = candidates[top], chosen[top]
        order = np.argsort(-chosen, kind="stable")
        return [(self._ids[candidates[i]], float(chosen[i])) for i in order]

    async def _refresh(self) -> None:
        version = await self._db.run(lambda conn: conn.execute(
            select(MemoryMeta.value).where(MemoryMeta.key == VERSION_KEY)).scalar())
        version = int(version or 0)
        if version == self._loaded_version:
            return
        rows = await self._db.run(lambda conn: conn.execute(select(
            MemoryVector.id, MemoryVector.kind, MemoryVector.created_at,
            MemoryVector.vector)).all())
        n = len(rows)
        self._matrix = np.zeros((max(n, 16), self.dims), dtype=np.float32)
        if n:
            self._matrix[:n] = np.frombuffer(b"".join(r.vector for r in rows),
                                             dtype=np.float32).reshape(n, self.dims)
        self._ids = [r.id for r in rows]
        self._rows = {item_id: i for i, item_id in enumerate(self._ids)}
        self._kinds = np.empty(max(n, 16), dtype=object)
        self._kinds[:n] = [r.kind for r in rows]
        self._times = np.zeros(max(n, 16), dtype=np.float64)
        self._times[:n] = [r.created_at.timestamp() for r in rows]
        self._loaded_version = version

    def _put(self, item_id: str, vector: np.ndarray, kind: str, when: float) -> None:
        row = self._rows.get(item_id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:  # grow by doubling: amortised O(1) appends
                grow = max(16, row)
                self._matrix = np.vstack([self._matrix,
                                          np.zeros((grow, self.dims), dtype=np.float32)])
                self._kinds = np.concatenate([self._kinds, np.empty(grow, dtype=object)])
                self._times = np.concatenate([self._times, np.zeros(grow)])
            self._ids.append(item_id)
            self._rows[item_id] = row
        self._matrix[row] = vector
        self._kinds[row] = kind
        self._times[row] = when

    def _remove(self, item_id: str) -> None:
        row = self._rows.pop(item_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:  # move the last row into the hole
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._kinds[row] = self._kinds[last]
            self._times[row] = self._times[last]
            self._ids[row] = moved
            self._rows[moved] = row
        self._ids.pop()


class WeaviateIndex:
    """A Weaviate collection (weaviate-client v4, async). Item ids map to UUIDv5.

    Args:
        client: a connected ``weaviate.WeaviateAsyncClient``.
        collection: the collection name (created on first use, vectors supplied by us).
    """

    def __init__(self, client: Any, *, collection: str = "SoloMemory") -> None:
        self._client = client
        self._name = collection
        self._collection: Any = None

    @staticmethod
    def _uuid(item_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"solo-memory:{item_id}"))

    async def _ensure(self) -> Any:
        if self._collection is None:
            from weaviate.classes.config import Configure, DataType, Property

            if not await self._client.collections.exists(self._name):
                await self._client.collections.create(
                    self._name, vector_config=Configure.Vectors.self_provided(),
                    properties=[Property(name="item_id", data_type=DataType.TEXT),
                                Property(name="kind", data_type=DataType.TEXT),
                                Property(name="created_at", data_type=DataType.DATE)])
            self._collection = self._client.collections.get(self._name)
        return self._collection

    async def upsert(self, items: Sequence[VectorItem]) -> None:
        """See :class:`VectorIndex`."""
        from weaviate.classes.data import DataObject

        collection = await self._ensure()
        objects = [DataObject(uuid=self._uuid(i.id), vector=np.asarray(i.vector).tolist(),
                              properties={"item_id": i.id, "kind": i.kind,
                                          "created_at": i.created_at})
                   for i in items]
        if objects:
            result = await collection.data.insert_many(objects)
            if result.has_errors:
                raise RuntimeError(f"weaviate insert failed: {result.errors}")

    async def delete(self, ids: Sequence[str]) -> None:
        """See :class:`VectorIndex`."""
        collection = await self._ensure()
        for item_id in ids:
            await collection.data.delete_by_id(self._uuid(item_id))

    async def search(self, vector: np.ndarray, k: int, *, kinds: Sequence[str] | None = None,
                     since: datetime | None = None,
                     until: datetime | None = None) -> list[tuple[str, float]]:
        """See :class:`VectorIndex`."""
        from weaviate.classes.query import Filter, MetadataQuery

        collection = await self._ensure()
        filters = []
        if kinds is not None:
            filters.append(Filter.by_property("kind").contains_any(list(kinds)))
        if since is not None:
            filters.append(Filter.by_property("created_at").greater_or_equal(since))
        if until is not None:
            filters.append(Filter.by_property("created_at").less_than(until))
        combined = Filter.all_of(filters) if filters else None
        response = await collection.query.near_vector(
            near_vector=np.asarray(vector).tolist(), limit=k, filters=combined,
            return_metadata=MetadataQuery(distance=True))
        return [(o.properties["item_id"], 1.0 - float(o.metadata.distance))
                for o in response.objects]



