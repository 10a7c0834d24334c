"""Kill the real ``solo chat`` process with SIGKILL at random points of three-step plans.

Each trial asks (through the model, a fake OpenAI-compatible server) for a plan of three risky
steps on one card: a note, a webhook post to ``crm`` that depends on the note, and an independent
post to ``books``. The operator decides the steps all at once or one by one, and the process is
killed before the decision, between two step decisions, after the decision, while the receiver
holds a POST, or just after it answered. Every new process first answers what the previous crash
left on the card, as an operator pressing the old buttons would. Across all trials: a done step
never repeats (one note file, one 2xx per key), an approved step is never lost, and a step that
was rejected — or depends on one — never runs.

``SOLO_CRASH_TRIALS`` sets the number of trials (default 50, the same variable as the one-step
campaign); ``SOLO_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.webhooks import WebhookReceiver
from tests.scenarios.test_crash_recovery import (
    CARD,
    KillOnPost,
    SoloProcess,
    pending_cards,
    recover,
    unsettled,
)
from tests.support.crash_tally import CrashTally

pytestmark = pytest.mark.crash

ASKED = re.compile(r'asked: "(?P<text>trial \d+):')
MODES = ("before_decision", "between_steps", "after_decision", "on_post", "after_post",
         "no_crash")


def plan_for(body: dict) -> dict:
    """The model's answer: the same three steps for the same trial, however often it is asked."""
    asked = " ".join(str(m.get("content")) for m in body["messages"] if m.get("role") == "user")
    trial = re.findall(r"trial \d+", asked)[-1]
    return {"intent": "send", "slots": {}, "confidence": 0.9, "steps": [
        {"action": "note.create", "text": f"{trial} note"},
        {"action": "webhook.post", "webhook": "crm", "text": f"{trial} crm",
         "depends_on": [0]},
        {"action": "webhook.post", "webhook": "books", "text": f"{trial} books",
         "depends_on": []}]}


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(respond=plan_for)
    await server.start()
    yield server
    await server.stop()


async def answer_pending(solo: SoloProcess, decisions: dict[str, list[str]]) -> None:
    """Press, step by step, the intended button on every card the process showed at start
    (a step decided before the crash just answers that it is decided)."""
    end = await solo.sync()
    for approval_id, trial in pending_cards(solo.lines[:end], ASKED).items():
        for number, decision in enumerate(decisions[trial], 1):
            await solo.write(f"{decision[0]} {approval_id} {number}")
    await solo.sync()


async def test_sigkill_inside_multi_step_plans_never_repeats_loses_or_runs_a_halted_step(
        tmp_path: Path, receiver: WebhookReceiver, model: FakeOpenAI) -> None:
    trials = int(os.environ.get("SOLO_CRASH_TRIALS", "50"))
    seed = int(os.environ.get("SOLO_CRASH_SEED", random.randrange(1 << 30)))
    print(f"multi-step crash trials={trials} seed={seed}")
    rng = random.Random(seed)
    data, config = tmp_path / "data", tmp_path / "solo.toml"
    config.write_text(f"""
[storage]
data_dir = "{data}"
[llm]
model = "openai:gpt-test"
base_url = "{model.base_url}"
api_key = "sk-test"
[policy]
risk = {{ "note.create" = "high" }}
[connectors.webhooks.crm]
url = "{receiver.url}"
[connectors.webhooks.books]
url = "{receiver.url}"
[connectors.retry]
attempts = 3
wait_initial_seconds = 0.05
wait_max_seconds = 0.2
wait_jitter_seconds = 0.01
""")
    decisions: dict[str, list[str]] = {}
    killer = receiver.on_post = KillOnPost(rng)
    for trial in range(trials):
        solo = killer.solo = await SoloProcess.start(config)
        try:
            await answer_pending(solo, decisions)
            name = f"trial {trial}"
            chosen = [rng.choice(["approve", "approve", "reject"]) for _ in range(3)]
            decisions[name] = chosen
            mode = rng.choice(MODES)
            start = len(solo.lines)
            await solo.write(f"{name}: log it, tell the crm and book it")
            if mode == "before_decision":
                await asyncio.sleep(rng.uniform(0, 0.3))
                solo.kill()
                continue
            card = CARD.match(solo.lines[await solo.wait_for("┌─ Approval", start=start)])["id"]
            posting = mode in ("on_post", "after_post") and chosen[2] == "approve"
            if posting:
                killer.mode = mode
            presses = [f"{d[0]} {card} {n}" for n, d in enumerate(chosen, 1)]
            if len(set(chosen)) == 1 and rng.random() < 0.5:
                presses = [f"{chosen[0][0]} {card}"]  # the whole card at once
            cut = rng.randrange(1, len(presses) + 1) if mode == "between_steps" else None
            for index, press in enumerate(presses):
                await solo.write(press)
                if cut == index + 1:
                    await asyncio.sleep(rng.uniform(0, 0.1))
                    solo.kill()
                    break
            if cut is not None:
                continue
            if mode == "after_decision":
                await asyncio.sleep(rng.uniform(0, 0.15))
                solo.kill()
            elif posting:
                await asyncio.wait_for(solo.proc.wait(), 60)
            else:
                await solo.sync()
        finally:
            killer.mode = None
            await solo.wait_dead()

    await recover(config, lambda solo: answer_pending(solo, decisions))

    notes = [p.read_text() for p in (data / "notes").glob("*.md")] \
        if (data / "notes").is_dir() else []
    tally = CrashTally("multi-step plan", seed, trials=trials)
    counts = {"steps_run": 0, "steps_halted": 0, "unasked": 0}
    for name, chosen in decisions.items():
        note_runs = sum(f"{name} note\n" in text for text in notes)
        crm, books = receiver.deliveries_of(f"{name} crm"), receiver.deliveries_of(f"{name} books")
        if note_runs == crm == books == 0 and not _recorded(data, name):
            counts["unasked"] += 1  # killed before the message was recorded: nothing promised
            continue
        expected = [chosen[0] == "approve",
                    chosen[0] == "approve" and chosen[1] == "approve",
                    chosen[2] == "approve"]
        for step, got, due in zip(("note", "crm", "books"), (note_runs, crm, books), expected,
                                  strict=True):
            tally.check(f"{name} {step}", expected=int(due), got=got)
        counts["steps_run"] += sum(expected)
        counts["steps_halted"] += 3 - sum(expected)
    for key in {p.key for p in receiver.posts}:
        if receiver.ok_count(key) > 1:
            tally.doubled.append(f"key {key}")
    tally.report()
    assert unsettled(data / "solo.sqlite3") == (0, 0, 0)
    print(f"trials={trials} {counts} posts={len(receiver.posts)}")
    assert counts["steps_run"] > 0 and counts["steps_halted"] > 0


def _recorded(data: Path, name: str) -> bool:
    """Whether the request of trial ``name`` reached the state database."""
    with sqlite3.connect(data / "solo.sqlite3") as db:
        return db.execute("SELECT count(*) FROM plans WHERE json_extract(inbound, '$.text') "
                          "LIKE ?", (f"{name}:%",)).fetchone()[0] > 0
