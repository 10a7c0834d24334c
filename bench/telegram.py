"""Telegram: Solo OS against a bare python-telegram-bot echo bot, same fake Bot API, same run.

For each bot: latency (update injected → reply received by the server) over sequential
messages, p50/p99; throughput (a burst spread over 10 chats, until every reply arrived), msg/s.
Solo OS handles ``/note`` with durable SQLite storage (inbox, plan, outbox, receipt, audit,
checkpoint, delivery queue) and writes a note file per message. Then the resident memory of an
idle ``solo serve`` process with Telegram configured.

Usage (from the repository root): python -m bench.telegram [--messages N] [--burst N]
"""

from __future__ import annotations

import sys

if not __package__:  # as a script, this file would shadow the `telegram` package
    sys.exit("run it as a module from the repository root: python -m bench.telegram")

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.app import SoloApp, freeze_startup_heap
from bot.wiring import build_adapters
from config import Settings
from tests.fakes.telegram import FakeTelegramServer
from tests.support.processes import idle_rss_mib

CHATS = list(range(1000, 1010))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(server: FakeTelegramServer, n: int, burst: int) -> tuple[list[float], float]:
    latencies = []
    for i in range(n):
        before = len(server.sent())
        pushed = time.monotonic()
        server.message(f"/note latency probe {i}", user=CHATS[0])
        await server.wait_for(lambda b=before: len(server.sent()) > b, timeout=30)
        reply = next(c for c in server.calls[::-1] if c.method == "sendMessage")
        latencies.append(reply.at - pushed)
    before = len(server.sent())
    started = time.monotonic()
    for i in range(burst):
        server.message(f"/note burst {i}", user=CHATS[i % len(CHATS)])
    await server.wait_for(lambda: len(server.sent()) >= before + burst, timeout=300)
    return latencies, burst / (time.monotonic() - started)


async def echo_bot(n: int, burst: int) -> tuple[list[float], float]:
    server = FakeTelegramServer()
    await server.start()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(update.message.text)

    app = (Application.builder().token(server.token).base_url(server.base_url)
           .base_file_url(server.base_file_url).concurrent_updates(True).build())
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    await app.updater.start_polling(poll_interval=0, timeout=10)
    await app.start()
    try:
        await measure(server, 10, 20)  # warm-up
        return await measure(server, n, burst)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await server.stop()


async def solo_os(n: int, burst: int, data: Path, rate: float,
                  group_limit: int = 64) -> tuple[list[float], float]:
    """``group_limit``: the most admits committed together (1: group commit off)."""
    server = FakeTelegramServer()
    await server.start()
    settings = Settings.model_validate({
        "storage": {"data_dir": data},
        "telegram": {"token": server.token, "base_url": server.base_url,
                     "base_file_url": server.base_file_url, "operators": CHATS,
                     "poll_timeout_seconds": 10, "max_messages_per_second": rate}})
    app = await SoloApp.open(settings)
    app.storage.db.group_limit = group_limit
    for adapter in build_adapters(settings, timezone=app.timezone):
        await app.add_adapter(adapter)
    freeze_startup_heap()  # as solo serve does once it is ready
    try:
        await measure(server, 10, 20)  # warm-up
        return await measure(server, n, burst)
    finally:
        await app.aclose()
        await server.stop()


async def idle_rss(data: Path) -> float:
    server = FakeTelegramServer()
    await server.start()
    config = data / "serve.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n'
                      f'{server.config_section(operators="[1000]")}')
    try:
        return await idle_rss_mib(config, data / "serve.log")
    finally:
        await server.stop()


async def main(n: int, burst: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        echo_lat, echo_rate = await echo_bot(n, burst)
        # Like the echo bot, no outbound throttle: this measures what Solo OS adds.
        solo_lat, solo_rate = await solo_os(n, burst, Path(tmp) / "solo", rate=0)
        single_lat, single_rate = await solo_os(n, burst, Path(tmp) / "single", rate=0,
                                                group_limit=1)
        # As shipped: throttled to Telegram's flood limit of about 30 messages/s.
        capped_lat, capped_rate = await solo_os(n, burst, Path(tmp) / "capped", rate=30)
        rss = await idle_rss(Path(tmp))
    print(f"\nTelegram, {n} sequential messages, burst of {burst} over {len(CHATS)} chats")
    print(f"{'bot':<34}{'p50 ms':>9}{'p99 ms':>9}{'msg/s':>9}")
    for name, lat, rate in (("PTB echo (baseline)", echo_lat, echo_rate),
                            ("Solo OS /note, no throttle", solo_lat, solo_rate),
                            ("  the same without group commit", single_lat, single_rate),
                            ("Solo OS /note, 30 msg/s throttle", capped_lat, capped_rate)):
        print(f"{name:<34}{statistics.median(lat) * 1e3:>9.1f}{pct(lat, 0.99) * 1e3:>9.1f}"
              f"{rate:>9.1f}")
    added = (statistics.median(solo_lat) - statistics.median(echo_lat)) * 1e3
    print(f"\nSolo OS adds {added:.1f} ms p50 over the echo bot (target ≤ 15 ms); "
          f"{solo_rate:.0f} msg/s = {solo_rate / echo_rate:.2f} × the echo bot "
          f"(target ≥ 60 msg/s); without group commit {single_rate:.0f} msg/s = "
          f"{single_rate / echo_rate:.2f} × the echo bot")
    print(f"idle solo serve RSS with Telegram: {rss:.0f} MiB (target ≤ 200 MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.burst))
