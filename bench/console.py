"""Console page load times at scale: the queue with 500 pending cards, the ledger with 100,000
audit events (first page, a page deep in the middle, a filtered page, the CSV export of a
filter), against ``/healthz`` of the same listener in the same run (the baseline: the HTTP
round trip with no work).

The cards are made through the real path (``/send`` through the gate and the director, 500
times); the audit events are inserted in bulk. Times are whole requests over loopback as a
client sees them (server render + transfer), logged in; the browser's own painting is not in
them. Prints p50/p99 per page and the ratio to the baseline.

Usage (from the repository root): python -m bench.console [--cards 500] [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from aiohttp import web
from sqlalchemy import func, insert, select

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from bot.web import WebListener
from config import Settings
from memory.models import AuditEvent, utcnow

PASSWORD = "bench-console-password"
REPEATS = 20


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def receiver() -> tuple[web.AppRunner, str]:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})
    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"


async def add_audit_events(solo: SoloApp, count: int) -> None:
    start = utcnow() - timedelta(days=365)
    actors, decisions = ["111", "console", "system", "U42"], ["approved", "rejected",
                                                              "executed", "model.ok"]
    for first in range(0, count, 5000):
        rows = [{"at": start + timedelta(minutes=5 * i), "actor": actors[i % 4],
                 "channel": "telegram", "decision": decisions[i % 4],
                 "connector": "webhook:crm" if i % 4 == 2 else None,
                 "detail": {"n": i}} for i in range(first, min(count, first + 5000))]
        await solo.storage.db.run(lambda conn, r=rows: conn.execute(insert(AuditEvent), r))


async def timed(client: httpx.AsyncClient, url: str, headers: dict) -> list[float]:
    samples = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        answer = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    return samples


async def main(cards: int, events: int) -> None:
    hook_runner, hook_url = await receiver()
    with tempfile.TemporaryDirectory() as tmp:
        solo = await SoloApp.open(Settings.model_validate({
            "storage": {"data_dir": Path(tmp) / "data"},
            "connectors": {"webhooks": {"crm": {"url": hook_url}}}}))
        chat = InMemoryAdapter()
        await solo.add_adapter(chat, operators={"operator"})
        began = time.perf_counter()
        for i in range(cards):
            await chat.say(f"/send crm invoice {i} is paid")
        print(f"made {cards} pending cards through the director in "
              f"{time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        await add_audit_events(solo, events)
        total = await solo.storage.db.run(lambda conn: conn.execute(
            select(func.count()).select_from(AuditEvent)).scalar_one())
        middle = await solo.storage.db.run(lambda conn: conn.execute(
            select(func.max(AuditEvent.id))).scalar_one()) // 2
        print(f"audit log: {total} events ({time.perf_counter() - began:.1f} s to insert)")
        web_listener = WebListener(solo, "127.0.0.1", 0, password=PASSWORD)
        await web_listener.start()
        base = f"http://127.0.0.1:{web_listener.port}"
        try:
            async with httpx.AsyncClient(timeout=120) as client:
                login = await client.get(f"{base}/login")
                token = re.search(r"solo_console=([^;]+)", login.headers["set-cookie"])[1]
                csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)[1]
                answer = await client.post(f"{base}/login", data={
                    "csrf": csrf, "password": PASSWORD}, headers={
                    "cookie": f"solo_console={token}"})
                token = re.search(r"solo_console=([^;]+)", answer.headers["set-cookie"])[1]
                headers = {"cookie": f"solo_console={token}"}
                queue = (await client.get(f"{base}/", headers=headers)).text
                assert f"Waiting for you: {cards}" in queue, queue[:500]
                pages = [("/healthz (baseline)", "/healthz"),
                         (f"queue, {cards} pending (first 50 cards)", "/"),
                         ("queue, last page", f"/?offset={max(0, cards - 50)}"),
                         (f"ledger, {total} events, first page", "/ledger"),
                         ("ledger, a page in the middle", f"/ledger?before={middle}"),
                         ("ledger, filtered (actor, decision, dates)",
                          "/ledger?actor=console&decision=approved&since=2026-01-01"),
                         ("ledger CSV export of a filter (1/16 of the log)",
                          "/ledger.csv?actor=console&decision=approved"),
                         ("health", "/health"), ("spending chart", "/spending"),
                         ("metrics", "/metrics")]
                results = []
                for name, path in pages:
                    results.append((name, await timed(client, base + path, headers)))
        finally:
            await web_listener.stop()
            await solo.aclose()
    await hook_runner.cleanup()
    baseline = statistics.median(results[0][1])
    print(f"\n{'page':52} {'p50 ms':>9} {'p99 ms':>9} {'× baseline p50':>15}")
    for name, samples in results:
        p50 = statistics.median(samples)
        print(f"{name:52} {p50:9.1f} {percentile(samples, 0.99):9.1f} {p50 / baseline:15.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=500)
    parser.add_argument("--events", type=int, default=100_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.cards, arguments.events))
