"""One contract for every vector index: the embedded numpy index on SQLite and PostgreSQL, and
Weaviate wherever ``WEAVIATE_URL`` points at a server (no Weaviate can be obtained on the
development machine or CI; the run is skipped there with that reason)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta

import numpy as np
import pytest

from memory.db import open_database
from memory.models import utcnow
from memory.vectors import SqliteNumpyIndex, VectorItem, WeaviateIndex

DIMS = 8
WEAVIATE_URL = os.environ.get("WEAVIATE_URL", "")


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIMS, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


@pytest.fixture(params=["numpy", pytest.param("weaviate", marks=pytest.mark.skipif(
    not WEAVIATE_URL, reason="WEAVIATE_URL not set: no Weaviate server here"))])
async def index(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[object]:
    if request.param == "numpy":
        db = open_database(database_url)
        await db.migrate()
        yield SqliteNumpyIndex(db, dims=DIMS)
        await db.aclose()
        return
    from urllib.parse import urlsplit

    import weaviate

    url = urlsplit(WEAVIATE_URL)
    client = weaviate.use_async_with_custom(
        http_host=url.hostname, http_port=url.port or 8080, http_secure=False,
        grpc_host=url.hostname, grpc_port=50051, grpc_secure=False)
    await client.connect()
    name = f"SoloTest{abs(hash(request.node.nodeid))}"
    yield WeaviateIndex(client, collection=name)
    await client.collections.delete(name)
    await client.close()


async def test_nearest_first_with_scores(index) -> None:
    now = utcnow()
    await index.upsert([VectorItem("a", unit(1, 0), "fact", now),
                        VectorItem("b", unit(1, 1), "note", now),
                        VectorItem("c", unit(0, 1), "note", now)])
    hits = await index.search(unit(1, 0.1), 3)
    assert [h[0] for h in hits] == ["a", "b", "c"]
    assert hits[0][1] > hits[1][1] > hits[2][1]
    assert await index.search(unit(1, 0), 0) == []


async def test_filters_by_kind_and_time(index) -> None:
    now = utcnow()
    await index.upsert([VectorItem("old", unit(1, 0), "fact", now - timedelta(days=10)),
                        VectorItem("new", unit(1, 0.2), "fact", now),
                        VectorItem("other", unit(1, 0.1), "note", now)])
    assert [h[0] for h in await index.search(unit(1, 0), 5, kinds=["fact"])] == ["old", "new"]
    recent = await index.search(unit(1, 0), 5, since=now - timedelta(days=1))
    assert {h[0] for h in recent} == {"new", "other"}
    early = await index.search(unit(1, 0), 5, until=now - timedelta(days=1))
    assert [h[0] for h in early] == ["old"]


async def test_upsert_replaces_and_delete_removes(index) -> None:
    now = utcnow()
    await index.upsert([VectorItem("x", unit(1, 0), "fact", now),
                        VectorItem("y", unit(0, 1), "fact", now)])
    await index.upsert([VectorItem("x", unit(0, 1), "fact", now)])
    assert {h[0] for h in (await index.search(unit(0, 1), 5)) if h[1] > 0.99} == {"x", "y"}
    await index.delete(["x", "missing"])
    assert [h[0] for h in await index.search(unit(0, 1), 5)] == ["y"]


async def test_a_second_instance_sees_writes_of_the_first(database_url: str) -> None:
    db = open_database(database_url)
    await db.migrate()
    first, second = SqliteNumpyIndex(db, dims=DIMS), SqliteNumpyIndex(db, dims=DIMS)
    now = utcnow()
    await first.upsert([VectorItem("a", unit(1, 0), "fact", now)])
    assert [h[0] for h in await second.search(unit(1, 0), 5)] == ["a"]
    await first.upsert([VectorItem("b", unit(1, 0.1), "fact", now)])
    await first.delete(["a"])
    assert [h[0] for h in await second.search(unit(1, 0), 5)] == ["b"]
    # Many appends grow the matrix in place.
    await second.upsert([VectorItem(f"n{i}", unit(0, 1, i), "note", now) for i in range(100)])
    assert len(await second.search(unit(0, 1), 200)) == 101
    assert len(await first.search(unit(0, 1), 200)) == 101
    await db.aclose()
