"""Memory retrieval: quality on the labelled Juniper Studio set, then speed at scale.

1. Quality: MRR and recall@5 of keyword-only, vector-only and hybrid search over
   ``bench/data/juniper_memory.py`` (68 items, 64 labelled questions).
2. Scale: ingest rate and hybrid query latency (p50/p95) at 10k and 100k synthetic items
   (Zipf-distributed words over a 20k vocabulary, the labelled questions as queries), and the
   vector search of the exact numpy index against a brute-force baseline measured in the same
   run (the same exact search, but reading every vector from the database per query, which is
   what the index's cached matrix saves).

Usage (from the repository root): python -m bench.memory [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bench.data.juniper_memory import ITEMS, QUERIES
from memory.db import open_database
from memory.embeddings import StaticEmbeddings
from memory.knowledge import Memory
from memory.models import MemoryVector, utcnow
from memory.vectors import SqliteNumpyIndex

MODES = ("keyword", "vector", "hybrid")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_memory(path: Path, embeddings: StaticEmbeddings) -> Memory:
    db = open_database(f"sqlite:///{path}")
    await db.migrate()
    return Memory(db=db, index=SqliteNumpyIndex(db, dims=embeddings.dims), embeddings=embeddings)


async def quality(root: Path, embeddings: StaticEmbeddings) -> dict[str, tuple[float, float]]:
    memory = await open_memory(root / "juniper.sqlite3", embeddings)
    rng = random.Random(7)
    now = utcnow()
    await memory.add([{"id": i, "kind": kind, "text": text, "source": "seed",
                       "created_at": now - timedelta(days=rng.uniform(0, 120))}
                      for i, kind, text in ITEMS])
    results = {}
    for mode in MODES:
        reciprocal, recalled = [], []
        for query, relevant in QUERIES:
            ranked = [h.item.id for h in await memory.search(query, k=10, mode=mode)]
            first = next((r for r, i in enumerate(ranked) if i in relevant), None)
            reciprocal.append(0.0 if first is None else 1.0 / (first + 1))
            recalled.append(len(set(ranked[:5]) & set(relevant)) / len(relevant))
        results[mode] = (statistics.mean(reciprocal), statistics.mean(recalled))
    await memory.db.aclose()
    return results


def synthetic(n: int, rng: random.Random, embeddings: StaticEmbeddings) -> list[str]:
    """``n`` texts of 6–24 words drawn with a Zipf distribution (s = 1.1, like natural text)
    over the model's ~20k whole-word vocabulary (the seed set's words among them, at random
    ranks)."""
    embeddings.load()
    seed = [w.lower().strip(",.'") for _, _, t in ITEMS for w in t.split()]
    vocabulary = list(dict.fromkeys(seed + sorted(
        t for t in embeddings.tokenizer.get_vocab() if t.isalpha() and len(t) > 2)))
    random.Random(0).shuffle(vocabulary)
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.1
    cumulative = np.cumsum(weights / weights.sum())
    return [" ".join(vocabulary[i] for i in np.searchsorted(
        cumulative, [rng.random() for _ in range(rng.randint(6, 24))])) for _ in range(n)]


async def scale(root: Path, embeddings: StaticEmbeddings, n: int) -> dict[str, float]:
    rng = random.Random(n)
    memory = await open_memory(root / f"scale{n}.sqlite3", embeddings)
    texts = synthetic(n, rng, embeddings)
    now = utcnow()
    started = time.perf_counter()
    for start in range(0, n, 2000):
        await memory.add([{"id": f"s{i}", "kind": rng.choice(["note", "fact", "turn"]),
                           "text": texts[i], "source": "synthetic",
                           "created_at": now - timedelta(minutes=i)}
                          for i in range(start, min(start + 2000, n))])
    ingest = n / (time.perf_counter() - started)
    queries = [q for q, _ in QUERIES] * 3
    await memory.search(queries[0])  # load the matrix once, as a running service has
    hybrid = []
    for query in queries:
        t = time.perf_counter()
        await memory.search(query, k=5)
        hybrid.append(time.perf_counter() - t)
    vectors = as_query_vectors(embeddings, queries[:30])
    indexed, brute = [], []
    for vector in vectors:
        t = time.perf_counter()
        await memory.index.search(vector, 5)
        indexed.append(time.perf_counter() - t)
    for vector in vectors[:10]:
        t = time.perf_counter()
        rows = await memory.db.run(lambda conn: conn.execute(
            select(MemoryVector.id, MemoryVector.vector)).all())
        matrix = np.frombuffer(b"".join(r.vector for r in rows), dtype=np.float32).reshape(
            len(rows), -1)
        top = np.argsort(-(matrix @ vector))[:5]
        _ = [rows[i].id for i in top]
        brute.append(time.perf_counter() - t)
    await memory.db.aclose()
    return {"ingest": ingest, "p50": statistics.median(hybrid), "p95": pct(hybrid, 0.95),
            "index": statistics.median(indexed), "brute": statistics.median(brute)}


def as_query_vectors(embeddings: StaticEmbeddings, queries: list[str]) -> np.ndarray:
    return embeddings.embed(queries)


async def main(sizes: list[int]) -> None:
    embeddings = StaticEmbeddings()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scores = await quality(root, embeddings)
        print(f"\nRetrieval quality, {len(QUERIES)} labelled questions over {len(ITEMS)} items")
        print(f"{'mode':<10}{'MRR':>8}{'recall@5':>10}")
        for mode, (mrr, recall) in scores.items():
            print(f"{mode:<10}{mrr:>8.3f}{recall:>10.3f}")
        best_single = max(scores["keyword"][1], scores["vector"][1])
        verdict = "beats" if scores["hybrid"][1] > best_single else "does NOT beat"
        print(f"hybrid {verdict} both single methods on recall@5")
        print(f"\n{'items':>8}{'ingest/s':>10}{'hybrid p50 ms':>15}{'p95 ms':>9}"
              f"{'vector: index ms':>18}{'brute ms':>10}{'ratio':>8}")
        for n in sizes:
            r = await scale(root, embeddings, n)
            print(f"{n:>8}{r['ingest']:>10.0f}{r['p50'] * 1e3:>15.2f}{r['p95'] * 1e3:>9.2f}"
                  f"{r['index'] * 1e3:>18.2f}{r['brute'] * 1e3:>10.1f}"
                  f"{r['brute'] / r['index']:>8.1f}")
        print("target: hybrid p95 ≤ 20 ms at 100k items")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    asyncio.run(main(parser.parse_args().sizes))
