"""Admits first: a lone event is processed as soon as it is admitted; in a burst (a second admit
while one is in flight) no event is processed until the last admit of the burst is done, and
within one chat events are still processed in arrival order. The real app admits and
processes; the test only holds admits open to make a burst and notes when each step ran."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from bot.adapters.base import Admitted, ChatProcessing
from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from graph.events import Inbound
from tests.support.waiting import poll_until

GENEROUS = 60.0


class HeldSink:
    """The app as the sink, with each admit held until released and every step noted."""

    def __init__(self, app: SoloApp) -> None:
        self.app = app
        self.steps: list[str] = []
        self.held: dict[str, asyncio.Event] = {}
        """Admits held until their event is set (none held by default)."""
        self.processed = asyncio.Condition()

    async def admit(self, inbound: Inbound) -> Admitted:
        self.steps.append(f"admitting {inbound.event_id}")
        if inbound.event_id in self.held:
            await self.held[inbound.event_id].wait()
        admitted = await self.app.admit(inbound)
        self.steps.append(f"admitted {inbound.event_id}")
        return admitted

    async def process(self, admitted: Admitted) -> None:
        self.steps.append(f"processing {admitted.inbound.event_id}")
        await self.app.process(admitted)
        async with self.processed:
            self.steps.append(f"processed {admitted.inbound.event_id}")
            self.processed.notify_all()

    async def wait_processed(self, count: int) -> None:
        async with asyncio.timeout(GENEROUS), self.processed:
            await self.processed.wait_for(
                lambda: sum(s.startswith("processed") for s in self.steps) >= count)


async def until(condition: Callable[[], bool], within: float = GENEROUS) -> None:
    await poll_until(condition, timeout=within, describe=lambda: "", every=0.01)


def note(event_id: str, chat: str = "chat-1") -> Inbound:
    return Inbound(channel="memory", chat=chat, actor="operator", event_id=event_id,
                   text=f"/note {event_id}")


async def test_a_lone_event_is_processed_at_once_and_a_burst_after_its_last_admit(
        tmp_path: Path) -> None:
    app = await SoloApp.open(Settings.model_validate({"storage": {"data_dir": tmp_path}}))
    await app.add_adapter(InMemoryAdapter(), operators={"operator"})
    sink, processing = HeldSink(app), ChatProcessing()
    try:
        await processing.admit(sink, note("lone"))
        await sink.wait_processed(1)
        assert sink.steps == ["admitting lone", "admitted lone", "processing lone",
                              "processed lone"]
        await asyncio.sleep(0.1)  # past the burst window, so the next admit starts afresh
        sink.steps.clear()
        sink.held = {f"b{i}": asyncio.Event() for i in range(6)}
        burst = [asyncio.create_task(processing.admit(sink, note(f"b{i}", chat=f"c{i % 2}")))
                 for i in range(6)]
        await until(lambda: sum(s.startswith("admitting") for s in sink.steps) == 6)
        sink.held["b0"].set()  # the first one is admitted while the rest are still in flight
        await until(lambda: "admitted b0" in sink.steps)
        # Its processing would start now; it waits for the burst (up to 2 s: look for 1 s).
        with contextlib.suppress(AssertionError):
            await until(lambda: "processing b0" in sink.steps, within=1.0)
        for held in sink.held.values():
            held.set()
        await asyncio.gather(*burst)
        await sink.wait_processed(6)
        last_admit = max(i for i, s in enumerate(sink.steps) if s.startswith("admitted"))
        first_process = min(i for i, s in enumerate(sink.steps) if s.startswith("processing"))
        assert last_admit < first_process, sink.steps
        for chat in ("c0", "c1"):  # arrival order within a chat
            mine = [s.split()[1] for s in sink.steps if s.startswith("processing")
                    and int(s.split()[1][1:]) % 2 == int(chat[1])]
            assert mine == sorted(mine, key=lambda e: int(e[1:])), sink.steps
        notes = sorted(p.read_text() for p in (tmp_path / "notes").glob("*.md"))
        assert len(notes) == 7
    finally:
        await processing.wait(15)
        await app.aclose()
