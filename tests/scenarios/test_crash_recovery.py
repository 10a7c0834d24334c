"""Kill the real ``solo chat`` process with SIGKILL at random points of the ``/send`` approve flow.

Each trial starts a fresh process on the same data directory. It first answers whatever the
previous crash left pending (as an operator would, pressing the old card again), then asks for a
new send, decides it, and is killed at a random point: before the decision, after it, while the
webhook receiver holds the POST, or just after the receiver answered. A final process recovers
the last crash and exits at end of input. Across all trials: an approved action is delivered
exactly once, a rejected one never, and no idempotency key is answered 2xx twice.

``SOLO_CRASH_TRIALS`` sets the number of trials (default 50); ``SOLO_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.fakes.webhooks import WebhookReceiver
from tests.support.crash_tally import CrashTally

pytestmark = pytest.mark.crash

SOLO = [sys.executable, "-m", "bot.cli"]
CARD = re.compile(r"^┌─ Approval (?P<id>[a-z2-7]{8}) ")
ASKED = re.compile(r'asked: "/send crm (?P<text>trial \d+ [a-z]+)"')
MODES = ("before_decision", "after_decision", "on_post", "after_post", "no_crash")


class SoloProcess:
    """A ``solo chat`` subprocess with line-wise access to its output."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._seen = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, config: Path) -> SoloProcess:
        proc = await asyncio.create_subprocess_exec(
            *SOLO, "--config", str(config), "chat", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2])
        return cls(proc)

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode().rstrip("\n"))
            self._seen.set()
        self._seen.set()

    async def write(self, text: str) -> None:
        self.proc.stdin.write(f"{text}\n".encode())
        await self.proc.stdin.drain()

    async def wait_for(self, pattern: str, *, start: int = 0, timeout: float = 180) -> int:
        """Index of the first line from ``start`` on that contains ``pattern``."""
        async def scan() -> int:
            while True:
                for i in range(start, len(self.lines)):
                    if pattern in self.lines[i]:
                        return i
                if self._reader.done():
                    raise AssertionError(f"solo exited before {pattern!r}:\n" +
                                         "\n".join(self.lines[-30:]))
                self._seen.clear()
                await self._seen.wait()
        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} within {timeout} s:\n" +
                                 "\n".join(self.lines[start - 5:])) from None

    async def sync(self) -> int:
        """Wait until every line written so far has been handled."""
        start = len(self.lines)
        await self.write("/status")
        return await self.wait_for("Plans:", start=start)

    def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    async def wait_dead(self) -> None:
        self.kill()
        await self.proc.wait()
        await self._reader


class KillOnPost:
    """A webhook receiver hook that kills the running ``solo`` when the next POST arrives
    (``on_post``: the target got it, the process never hears back) or just after it was
    answered (``after_post``). Armed for one POST at a time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.solo: SoloProcess | None = None
        self.mode: str | None = None

    async def __call__(self, key: str | None, body: dict) -> None:
        solo, mode = self.solo, self.mode
        if solo is None or mode is None:
            return
        self.mode = None
        if mode == "on_post":
            solo.kill()
        else:
            asyncio.get_running_loop().call_later(self.rng.uniform(0, 0.02), solo.kill)


async def recover(config: Path, answer: Callable[[SoloProcess], Awaitable[None]]
                  ) -> SoloProcess:
    """A last process that finishes what the last crash left (``answer`` presses the cards it
    shows) and exits cleanly at the end of its input."""
    final = await SoloProcess.start(config)
    await answer(final)
    final.proc.stdin.close()
    assert await asyncio.wait_for(final.proc.wait(), 60) == 0, "\n".join(final.lines[-20:])
    await final._reader
    return final


def unsettled(database: Path) -> tuple[int, int, int]:
    """Plans not done, outbox rows in flight, steps neither finished nor halted."""
    with sqlite3.connect(database) as db:
        return tuple(db.execute(query).fetchone()[0] for query in (
            "SELECT count(*) FROM plans WHERE status != 'done'",
            "SELECT count(*) FROM outbox WHERE status = 'in_flight'",
            "SELECT count(*) FROM plan_steps WHERE status IN "
            "('proposed', 'waiting', 'approved', 'running')"))


def pending_cards(lines: list[str], asked: re.Pattern[str] = ASKED) -> dict[str, str]:
    """approval id → what ``asked`` captured as ``text`` from the line under the card's head
    (the request), for every card printed with buttons."""
    found = {}
    for i, line in enumerate(lines):
        match = CARD.match(line)
        if match and i + 1 < len(lines) and (request := asked.search(lines[i + 1])):
            found[match["id"]] = request["text"]
    return found


async def answer_pending(solo: SoloProcess, decisions: dict[str, str],
                         asked: re.Pattern[str] = ASKED) -> None:
    """Press the intended button (``decisions[text]``) on every pending card the process
    showed at start."""
    end = await solo.sync()
    for approval_id, text in pending_cards(solo.lines[:end], asked).items():
        await solo.write(f"{decisions[text][0]} {approval_id}")
    await solo.sync()


async def test_sigkill_at_random_points_never_loses_or_doubles_an_action(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    trials = int(os.environ.get("SOLO_CRASH_TRIALS", "50"))
    seed = int(os.environ.get("SOLO_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash trials={trials} seed={seed} (SOLO_CRASH_SEED={seed} replays this run)")
    rng = random.Random(seed)
    data = tmp_path / "data"
    config = tmp_path / "solo.toml"
    config.write_text(f"""
[storage]
data_dir = "{data}"
[connectors.webhooks.crm]
url = "{receiver.url}"
risk = "high"
[connectors.retry]
attempts = 3
wait_initial_seconds = 0.05
wait_max_seconds = 0.2
wait_jitter_seconds = 0.01
""")
    decisions: dict[str, str] = {}  # trial text -> approve | reject
    killer = receiver.on_post = KillOnPost(rng)
    modes_used: dict[str, int] = dict.fromkeys(MODES, 0)
    for trial in range(trials):
        solo = killer.solo = await SoloProcess.start(config)
        try:
            await answer_pending(solo, decisions)
            text = f"trial {trial} {rng.choice(['alpha', 'bravo', 'charlie', 'delta'])}"
            decision = "approve" if rng.random() < 0.75 else "reject"
            decisions[text] = decision
            mode = rng.choice(MODES)
            modes_used[mode] += 1
            start = len(solo.lines)
            await solo.write(f"/send crm {text}")
            if mode == "before_decision":
                await asyncio.sleep(rng.uniform(0, 0.15))
                solo.kill()
            else:
                card_line = await solo.wait_for("┌─ Approval", start=start)
                approval_id = CARD.match(solo.lines[card_line])["id"]
                killed_by_receiver = mode in ("on_post", "after_post") and decision == "approve"
                if killed_by_receiver:
                    killer.mode = mode
                await solo.write(f"{decision[0]} {approval_id}")
                if mode == "after_decision":
                    await asyncio.sleep(rng.uniform(0, 0.12))
                    solo.kill()
                elif killed_by_receiver:
                    await asyncio.wait_for(solo.proc.wait(), 60)
                else:
                    await solo.sync()
        finally:
            killer.mode = None
            await solo.wait_dead()

    final = await recover(config, lambda solo: answer_pending(solo, decisions))

    with sqlite3.connect(data / "solo.sqlite3") as db:
        statuses = dict(db.execute(
            "SELECT json_extract(inbound, '$.text'), a.status FROM approvals a "
            "JOIN plans p ON p.id = a.plan_id").fetchall())
    tally = CrashTally("webhook send", seed, trials=trials)
    approved = rejected = never_recorded = 0
    for text, decision in decisions.items():
        status = statuses.get(f"/send crm {text}")
        delivered = receiver.deliveries_of(text)
        if status is None:  # killed before the message was recorded: nothing was promised
            never_recorded += 1
            tally.check(text, expected=0, got=delivered)
        elif decision == "approve":
            approved += 1
            assert status == "approved", (text, status)
            tally.check(text, expected=1, got=delivered)
        else:
            rejected += 1
            assert status == "rejected", (text, status)
            tally.check(text, expected=0, got=delivered)
    for key in {p.key for p in receiver.posts}:
        if receiver.ok_count(key) > 1:
            tally.doubled.append(f"key {key}")
    tally.report()
    assert unsettled(data / "solo.sqlite3") == (0, 0, 0)
    assert not pending_cards(final.lines) or all(
        decisions[t] for t in pending_cards(final.lines).values())
    print(f"approved={approved} rejected={rejected} never_recorded={never_recorded} "
          f"posts={len(receiver.posts)} duplicates_refused="
          f"{sum(1 for p in receiver.posts if p.status == 409)} modes={modes_used}")
    assert approved > 0 and rejected + approved + never_recorded == trials
    _ = signal  # SIGKILL is what proc.kill() sends on POSIX
