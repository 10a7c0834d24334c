"""Slack: ack latency under a burst with a slow connector, and end-to-end messages/s, against a
bare bolt echo app on the same fake Slack in the same run; then the idle memory of ``solo serve``
with both Slack and Telegram configured.

1. Ack: 200 ``/send`` cards are prepared, then 200 Approve clicks arrive within one second
   (200/s, open loop) while the webhook connector takes 1 s per POST; each signed request's
   time to its HTTP answer. Baseline: 200 message events at 200/s to a bolt echo app.
2. End to end: 200 ``/note`` DMs at 200/s (200 channels) until every reply was posted; the
   baseline echoes each message.

Each burst runs ``--rounds`` times (default 3), the apps taking turns; ratios are given for
the pooled answers and as the median of the rounds.

Usage (from the repository root): python -m bench.slack [--events N] [--rounds R]
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

from bot.app import SoloApp, freeze_startup_heap
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
    freeze_startup_heap()  # as solo serve does once it is ready
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


async def main(n: int, rounds: int) -> None:
    apps = {"echo": "bolt echo (baseline), message events",
            "solo": "Solo OS, Approve clicks, connector 1 s",
            "single": "  the same without group commit"}
    acks: dict[str, list[float]] = {app: [] for app in apps}
    rates: dict[str, list[float]] = {app: [] for app in apps}
    p99s: list[dict[str, float]] = []  # per round
    with tempfile.TemporaryDirectory() as tmp:
        # Rounds interleave the apps, so a slow spell of the machine hits all of them; a p99 of
        # 200 samples is the second-worst answer, so the pooled p99 is the steadier figure.
        for r in range(rounds):
            runs = {"echo": await echo_app(n),
                    "solo": await solo_os(n, Path(tmp) / f"solo{r}"),
                    "single": await solo_os(n, Path(tmp) / f"single{r}", group_limit=1)}
            for app, (answers, rate) in runs.items():
                acks[app] += answers
                rates[app].append(rate)
            p99s.append({app: pct(answers, 0.99) for app, (answers, _) in runs.items()})
        rss = await idle_rss(Path(tmp))
    print(f"\nSlack, {rounds} rounds of bursts of {n} signed HTTP requests at {RATE:.0f}/s")
    print(f"{'app':<44}{'ack p50 ms':>11}{'ack p99 ms':>11}{'msg/s':>8}")
    for app, name in apps.items():
        print(f"{name:<44}{statistics.median(acks[app]) * 1e3:>11.1f}"
              f"{pct(acks[app], 0.99) * 1e3:>11.1f}{statistics.median(rates[app]):>8.1f}")
    for r, p99 in enumerate(p99s, 1):
        e, o, g = p99["echo"], p99["solo"], p99["single"]
        print(f"round {r}: ack p99 echo {e * 1e3:.1f} ms, Solo OS {o * 1e3:.0f} ms ({o / e:.1f}×), "
              f"without group commit {g * 1e3:.0f} ms ({g / e:.1f}×)")

    def ratio(app: str) -> float:
        return pct(acks[app], 0.99) / pct(acks["echo"], 0.99)

    def rate_ratio(app: str) -> float:
        return statistics.median(rates[app]) / statistics.median(rates["echo"])

    print(f"\nack p99 {pct(acks['solo'], 0.99) * 1e3:.0f} ms (target ≤ 200 ms; Slack retries "
          f"after 3 s); ack p99 ratio to echo {ratio('solo'):.2f} pooled, "
          f"{statistics.median(p['solo'] / p['echo'] for p in p99s):.2f} median of rounds; "
          f"end-to-end /note {statistics.median(rates['solo']):.0f} msg/s = "
          f"{rate_ratio('solo'):.2f} × echo; without group commit: ack p99 ratio "
          f"{ratio('single'):.2f} pooled, /note {rate_ratio('single'):.2f} × echo")
    print(f"idle solo serve RSS with Slack and Telegram: {rss:.0f} MiB (target ≤ 250 MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.rounds))
