"""Kill the real ``solo chat`` process with SIGKILL at random points of sending an approved mail
through real servers (aiosmtpd delivering into Dovecot; an SMTP proxy in this process marks the
points): before the decision, after it, when the client says MAIL FROM, when it ends DATA, when
the server accepted the message but the client has not heard it, just after the client heard it.

Each trial starts a fresh process on the same data directory, first presses whatever card the
previous crash left, then asks for one mail. A final process recovers the last crash. Across all
trials: every approved mail is in the recipient's mailbox exactly once and in Sent exactly once;
a rejected one never arrives.

``SOLO_CRASH_TRIALS`` sets the number of trials (default 50; CI runs 50); ``SOLO_CRASH_SEED``
replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.scenarios.test_crash_recovery import (
    CARD,
    SoloProcess,
    answer_pending,
    recover,
    unsettled,
)
from tests.support.crash_tally import CrashTally
from tests.support.mailrig import MailRig
from tests.support.smtp_proxy import SmtpProxy

pytestmark = pytest.mark.crash

ASKED = re.compile(r'asked: "/email \S+ (?P<text>trial \d+ [a-z]+)"')
MODES = ("before_decision", "after_decision", "mail_from", "end_of_data", "accepted",
         "forwarded", "no_crash")
POINTS = {"mail_from", "end_of_data", "accepted", "forwarded"}


def subjects(raws: list[bytes]) -> Counter:
    return Counter(str(message_from_bytes(raw)["Subject"]) for raw in raws)


async def test_sigkill_while_sending_mail_never_loses_or_doubles_one(
        tmp_path: Path, mail_rig: MailRig) -> None:
    trials = int(os.environ.get("SOLO_CRASH_TRIALS", "50"))
    seed = int(os.environ.get("SOLO_CRASH_SEED", random.randrange(1 << 30)))
    print(f"email crash trials={trials} seed={seed} (SOLO_CRASH_SEED={seed} replays this run)")
    rng = random.Random(seed)
    me, client = mail_rig.add_user(), mail_rig.add_user()
    proxy = await SmtpProxy(mail_rig.smtp_port).start()
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      + mail_rig.email_section(me, smtp_port=proxy.port)
                      + "[connectors.retry]\nattempts = 3\nwait_initial_seconds = 0.05\n"
                        "wait_max_seconds = 0.2\nwait_jitter_seconds = 0.01\n")
    decisions: dict[str, str] = {}
    used: Counter = Counter()
    armed: dict[str, object] = {}

    def on_point(point: str) -> None:
        if armed.get("point") == point:
            armed.pop("point")
            armed["solo"].kill()

    proxy.on_point = on_point
    try:
        for trial in range(trials):
            solo = await SoloProcess.start(config)
            try:
                await answer_pending(solo, decisions, ASKED)
                text = f"trial {trial} {rng.choice(['alpha', 'bravo', 'charlie'])}"
                decision = "approve" if rng.random() < 0.8 else "reject"
                decisions[text] = decision
                mode = rng.choice(MODES)
                used[mode] += 1
                start = len(solo.lines)
                await solo.write(f"/email {mail_rig.address(client)} {text}")
                if mode == "before_decision":
                    await asyncio.sleep(rng.uniform(0, 0.15))
                    solo.kill()
                    continue
                line = await solo.wait_for("┌─ Approval", start=start)
                approval_id = CARD.match(solo.lines[line])["id"]
                by_proxy = mode in POINTS and decision == "approve"
                if by_proxy:
                    armed.update(point=mode, solo=solo)
                await solo.write(f"{decision[0]} {approval_id}")
                if mode == "after_decision":
                    await asyncio.sleep(rng.uniform(0, 0.12))
                    solo.kill()
                elif by_proxy:
                    await asyncio.wait_for(solo.proc.wait(), 120)
                else:
                    await solo.sync()
            finally:
                armed.clear()
                await solo.wait_dead()
        final = await recover(config, lambda solo: answer_pending(solo, decisions, ASKED))
        assert final.proc.returncode == 0
    finally:
        await proxy.stop()

    received = subjects(mail_rig.messages(client))
    sent = subjects(mail_rig.messages(me, "Sent"))
    outcome: Counter = Counter()
    with sqlite3.connect(tmp_path / "data" / "solo.sqlite3") as db:
        statuses = dict(db.execute(
            "SELECT json_extract(inbound, '$.text'), a.status FROM approvals a "
            "JOIN plans p ON p.id = a.plan_id").fetchall())
    tally = CrashTally("email", seed, trials=trials)
    for text, decision in decisions.items():
        subject = text[:1].upper() + text[1:]
        status = statuses.get(f"/email {mail_rig.address(client)} {text}")
        due = int(status is not None and decision == "approve")
        tally.check(text, expected=due, got=received[subject])
        tally.check(f"{text} (Sent copy)", expected=due, got=sent[subject])
        if status is None:  # killed before the message was recorded: nothing was promised
            outcome["never_recorded"] += 1
        elif decision == "reject":
            assert status == "rejected", (text, status)
            outcome["rejected"] += 1
        else:
            assert status == "approved", (text, status)
            outcome["delivered_once"] += received[subject] == 1
    tally.report()
    assert unsettled(tmp_path / "data" / "solo.sqlite3") == (0, 0, 0)
    assert not [s for s in subjects(mail_rig.messages(me)) if s.startswith("Trial")], \
        "an own copy stayed in INBOX instead of being filed in Sent"
    print(f"outcome={dict(outcome)} modes={dict(used)} accepted_by_server={proxy.accepted}")
    assert outcome["delivered_once"] > 0
