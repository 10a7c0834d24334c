"""Kill the real ``solo chat`` process with SIGKILL at random moments after an event was
approved (before, during or after the PUT to a real Radicale), restart it, and check that every
approved event exists exactly once: the UID comes from the idempotency key, creation uses
``If-None-Match: *``, and reconcile asks for the UID.

``SOLO_CRASH_TRIALS`` sets the number of trials (default 50; at most 30 run here, as each trial
is one booking); ``SOLO_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from icalendar import Calendar

from tests.scenarios.test_crash_recovery import (
    CARD,
    SoloProcess,
    pending_cards,
    recover,
    unsettled,
)
from tests.support.crash_tally import CrashTally
from tests.support.mailrig import MailRig

pytestmark = pytest.mark.crash

ASKED = re.compile(r'asked: "/event tomorrow \d+:00 (?P<text>Trial \d+)"')


async def approve_pending(solo: SoloProcess) -> None:
    end = await solo.sync()
    for approval_id in pending_cards(solo.lines[:end], ASKED):
        await solo.write(f"a {approval_id}")
    await solo.sync()


async def test_sigkill_around_booking_never_makes_two_events_or_loses_one(
        tmp_path: Path, caldav_rig: MailRig) -> None:
    trials = min(int(os.environ.get("SOLO_CRASH_TRIALS", "50")), 30)
    seed = int(os.environ.get("SOLO_CRASH_SEED", random.randrange(1 << 30)))
    print(f"event crash trials={trials} seed={seed} (SOLO_CRASH_SEED={seed} replays this run)")
    rng = random.Random(seed)
    user = caldav_rig.add_user()
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      + caldav_rig.calendar_section(user))
    asked: list[str] = []
    for trial in range(trials):
        solo = await SoloProcess.start(config)
        try:
            await approve_pending(solo)
            title = f"Trial {trial}"
            start = len(solo.lines)
            await solo.write(f"/event tomorrow {8 + trial % 10}:00 {title}")
            line = await solo.wait_for("┌─ Approval", start=start)
            asked.append(title)
            await solo.write(f"a {CARD.match(solo.lines[line])['id']}")
            await asyncio.sleep(rng.uniform(0, 0.3))
        finally:
            await solo.wait_dead()
    await recover(config, approve_pending)

    titles = Counter(str(event.get("summary"))
                     for text in caldav_rig.calendar_objects(user)
                     for event in Calendar.from_ical(text).walk("VEVENT"))
    tally = CrashTally("calendar event", seed, trials=trials)
    for title in asked:
        tally.check(title, expected=1, got=titles[title])
    tally.report()
    assert unsettled(tmp_path / "data" / "solo.sqlite3") == (0, 0, 0)
