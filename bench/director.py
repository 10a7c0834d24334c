"""The ``/note`` path (command → plan → execute → receipt): what durability costs.

Measured in one run, same graph, same notes vault on disk (its file write and fsync are the
effect itself and identical everywhere):

  bare        graph.ainvoke, no checkpointer, state tables in an in-memory SQLite
  +checkpoint the same with LangGraph's SQLite checkpointer on a file
  durable     the full path: Director.handle (inbox row + plan row in one transaction,
              outbox row before the effect, receipt + audit after, checkpoint, plan done),
              SQLite file with synchronous=FULL
  postgres    the full path on PostgreSQL (when SOLO_TEST_POSTGRES_URL is set)

Prints p50/p99 per message, the ratio to bare, and the added cost per layer.
Usage (from the repository root): python -m bench.director [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy.pool import StaticPool

from connectors.notes import NotesVaultConnector
from graph.builder import build_graph
from graph.checkpoints import postgres_checkpointer, sqlite_checkpointer
from graph.director import Director
from graph.events import Inbound
from graph.policy import Policy
from graph.state import DirectorDeps
from graph.understanding import CommandUnderstander
from memory.db import open_database
from memory.stores import Storage


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def storage_at(url: str, **kwargs) -> Storage:
    db = open_database(url, **kwargs)
    await db.migrate()
    return Storage(db)


def deps_for(storage: Storage, vault: Path) -> DirectorDeps:
    return DirectorDeps(storage=storage, connectors={"notes": NotesVaultConnector(path=vault)},
                        webhooks={}, policy=Policy(risk={"note.create": "low"}),
                        understander=CommandUnderstander())


def inbound(i: int, tag: str) -> Inbound:
    return Inbound(channel="bench", chat="c", actor="op", event_id=f"{tag}-{i}",
                   text=f"/note benchmark note {i} about the {tag} path")


async def time_graph(graph, deps: DirectorDeps, n: int, tag: str) -> list[float]:
    samples = []
    for i in range(n):
        message = inbound(i, tag)
        state = {"plan_id": f"{tag}-{i}", "inbound": message.to_dict()}
        config = {"configurable": {"thread_id": f"{tag}-{i}"}}
        started = time.perf_counter()
        durability = "exit" if graph.checkpointer else None
        result = await graph.ainvoke(state, config, context=deps, durability=durability)
        samples.append(time.perf_counter() - started)
        assert result["results"][0]["status"] == "done"
    return samples


async def time_director(director: Director, n: int, tag: str) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        replies = await director.handle(inbound(i, tag))
        samples.append(time.perf_counter() - started)
        assert replies and "receipt" in replies[0].text, replies
    return samples


async def main(n: int, warmup: int) -> None:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        memory = await storage_at("sqlite:///:memory:", poolclass=StaticPool)
        deps = deps_for(memory, root / "vault-bare")
        bare = build_graph(checkpointer=None)
        await time_graph(bare, deps, warmup, "warm-bare")
        results["bare"] = await time_graph(bare, deps, n, "bare")

        async with sqlite_checkpointer(root / "cp.sqlite3") as saver:
            graph = build_graph(checkpointer=saver)
            deps = deps_for(memory, root / "vault-cp")
            await time_graph(graph, deps, warmup, "warm-cp")
            results["+checkpoint"] = await time_graph(graph, deps, n, "cp")
        await memory.aclose()

        durable = await storage_at(f"sqlite:///{root / 'state.sqlite3'}")
        async with sqlite_checkpointer(root / "cp-durable.sqlite3") as saver:
            director = Director(deps=deps_for(durable, root / "vault-durable"),
                                checkpointer=saver)
            await time_director(director, warmup, "warm-durable")
            results["durable"] = await time_director(director, n, "durable")
        await durable.aclose()

        pg_url = os.environ.get("SOLO_TEST_POSTGRES_URL")
        if pg_url:
            pg = await storage_at(pg_url)
            async with postgres_checkpointer(pg_url) as saver:
                director = Director(deps=deps_for(pg, root / "vault-pg"), checkpointer=saver)
                tag = f"pg{os.getpid()}{int(time.time())}"
                await time_director(director, warmup, f"warm-{tag}")
                results["postgres"] = await time_director(director, n, tag)
            await pg.aclose()
        else:
            print("postgres: skipped (set SOLO_TEST_POSTGRES_URL to include it)")

    base = statistics.median(results["bare"])
    print(f"\n/note path, {n} messages each after {warmup} warm-up, {os.cpu_count()} cores")
    print(f"{'config':<13}{'p50 ms':>9}{'p99 ms':>9}{'× bare p50':>12}")
    for name, samples in results.items():
        p50 = statistics.median(samples)
        print(f"{name:<13}{p50 * 1e3:>9.2f}{percentile(samples, 0.99) * 1e3:>9.2f}"
              f"{p50 / base:>12.2f}")
    cp = statistics.median(results["+checkpoint"]) - base
    full = statistics.median(results["durable"]) - statistics.median(results["+checkpoint"])
    print(f"\nadded per message: checkpoint write {cp * 1e3:.2f} ms; inbox + plan + outbox + "
          f"receipt/audit rows on disk (synchronous=FULL) {full * 1e3:.2f} ms")
    target = statistics.median(results["durable"]) * 1e3
    print(f"target: durable p50 ≤ 25 ms → {target:.2f} ms ({'met' if target <= 25 else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.warmup))
