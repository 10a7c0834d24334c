"""Slack: ack latency under a burst with a slow connector, and end-to-end messages/s, against a
bare bolt echo app on the same fake Slack in the same run; then the idle memory of ``solo serve``
with both Slack and Telegram configured.

1. Ack: 200 ``/send`` cards are prepared, then 200 Approve clicks arrive within one second
   (200/s, open loop) while the webhook connector takes 1 s per POST; each signed request's
   time to its HTTP answer. Baseline: 200 message events at 200/s to a bolt echo app.
2. End to end: 200 ``/note`` DMs at 200/s (200 channels) until every reply was posted; the
   baseline echoes each message.

Usage (from the repository root): python -m bench.slack [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import SoloApp
from bot.wiring import build_adapters
from config import Settings
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.processes import idle_rss_mib


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


RATE = 200.0  # requests per second in a burst (open loop: arrivals do not wait for answers)


async def burst(slack: FakeSlack, url: str, payloads: list[dict]) -> list[float]:
    """Send ``payloads`` at :data:`RATE` per second; the time each took to be answered."""
    tasks = []
    for payload in payloads:
        tasks.append(asyncio.create_task(slack.deliver(url, payload)))
        await asyncio.sleep(1 / RATE)
    deliveries = await asyncio.gather(*tasks)
    assert all(d.status == 200 for d in deliveries), {d.status for d in deliveries}
    return [d.seconds for d in deliveries]


async def echo_app(n: int) -> tuple[list[float], float]:
    slack = FakeSlack()
    await slack.start()
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    app = AsyncApp(client=client, signing_secret=slack.signing_secret)

    @app.event("message")
    async def echo(event: dict, say) -> None:
        await say(event["text"])

    runner = web.AppRunner(app.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events"
    try:
        await burst(slack, url, [slack.message_event(f"warm {i}") for i in range(20)])
        await slack.wait_for(lambda: len(slack.sent()) >= 20)
        before = len(slack.sent())
        started = time.monotonic()
        acks = await burst(slack, url, [slack.message_event(f"hello {i}", channel=f"D{i}")
                                        for i in range(n)])
        await slack.wait_for(lambda: len(slack.sent()) >= before + n, timeout=120)
        return acks, n / (time.monotonic() - started)
    finally:
        await runner.cleanup()
        await slack.stop()


async def solo_os(n: int, data: Path, group_limit: int = 64) -> tuple[list[float], float]:
    """``group_limit``: the most admits committed together (1: group commit off)."""
    slack, receiver = FakeSlack(), WebhookReceiver(delay=1.0)
    await slack.start()
    await receiver.start()
    users = [f"U{i}" for i in range(n)]
    settings = Settings.model_validate({
        "storage": {"data_dir": data},
        "slack": {"bot_token": slack.bot_token, "signing_secret": slack.signing_secret,
                  "base_url": slack.api_url, "port": 0, "operators": users},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}}})
    app = await SoloApp.open(settings)
    app.storage.db.group_limit = group_limit
    (adapter,) = build_adapters(settings, timezone=app.timezone)
    await app.add_adapter(adapter)
    url = f"http://127.0.0.1:{adapter.bound_port}/slack/events"
    try:
        await burst(slack, url, [slack.message_event(f"/send crm card {i}", user=users[i],
                                                     channel=f"D{i}") for i in range(n)])
        cards = await slack.wait_for(lambda: len(slack.cards()) >= n and slack.cards(),
                                     timeout=120)
        clicks = [slack.click(slack.button_values(c)[0], message=c,
                              user=c["channel"].replace("D", "U")) for c in cards]
        acks = await burst(slack, url, clicks)
        await slack.wait_for(lambda: len(slack.sent("chat.update")) >= n, timeout=300)
        assert len(receiver.posts) == n

        before = len(slack.sent())
        started = time.monotonic()
        await burst(slack, url, [slack.message_event(f"/note burst {i}", user=users[i],
                                                     channel=f"N{i}") for i in range(n)])
        await slack.wait_for(lambda: len(slack.sent()) >= before + n, timeout=120)
        return acks, n / (time.monotonic() - started)
    finally:
        await app.aclose()
        await receiver.stop()
        await slack.stop()


async def idle_rss(data: Path) -> float:
    slack, telegram = FakeSlack(), FakeTelegramServer()
    await slack.start()
    await telegram.start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = data / "both.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data}"\n'
        f'{telegram.config_section(operators="[1]")}'
        f'[slack]\nbot_token = "{slack.bot_token}"\nsigning_secret = "{slack.signing_secret}"\n'
        f'base_url = "{slack.api_url}"\nport = {port}\noperators = ["U1"]\n')
    try:
        return await idle_rss_mib(config, data / "serve.log")
    finally:
        await slack.stop()
        await telegram.stop()


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        echo_acks, echo_rate = await echo_app(n)
        solo_acks, solo_rate = await solo_os(n, Path(tmp) / "solo")
        single_acks, single_rate = await solo_os(n, Path(tmp) / "single", group_limit=1)
        rss = await idle_rss(Path(tmp))
    print(f"\nSlack, bursts of {n} signed HTTP requests at {RATE:.0f}/s")
    print(f"{'app':<44}{'ack p50 ms':>11}{'ack p99 ms':>11}{'msg/s':>8}")
    print(f"{'bolt echo (baseline), message events':<44}"
          f"{statistics.median(echo_acks) * 1e3:>11.1f}{pct(echo_acks, 0.99) * 1e3:>11.1f}"
          f"{echo_rate:>8.1f}")
    for name, acks, rate in (("Solo OS, Approve clicks, connector 1 s", solo_acks, solo_rate),
                             ("  the same without group commit", single_acks, single_rate)):
        print(f"{name:<44}{statistics.median(acks) * 1e3:>11.1f}{pct(acks, 0.99) * 1e3:>11.1f}"
              f"{rate:>8.1f}")
    print(f"\nack p99 {pct(solo_acks, 0.99) * 1e3:.0f} ms (target ≤ 200 ms; Slack retries after "
          f"3 s); ack p99 ratio to echo {pct(solo_acks, 0.99) / pct(echo_acks, 0.99):.2f}; "
          f"end-to-end /note {solo_rate:.0f} msg/s = {solo_rate / echo_rate:.2f} × echo; "
          f"without group commit: ack p99 ratio "
          f"{pct(single_acks, 0.99) / pct(echo_acks, 0.99):.2f}, /note "
          f"{single_rate / echo_rate:.2f} × echo")
    print(f"idle solo serve RSS with Slack and Telegram: {rss:.0f} MiB (target ≤ 250 MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    asyncio.run(main(parser.parse_args().events))
