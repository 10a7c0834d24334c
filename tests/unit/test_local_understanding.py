"""The offline understander: accuracy on the labelled development set, slots, time parsing in
the operator's zone (across a DST change), and robustness to any input."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.understanding_dev import NOW, WEBHOOKS, ZONE
from bench.understanding import evaluate
from graph.local_understanding import LocalUnderstander
from graph.timeparse import cut, parse_when
from graph.understanding import INTENTS
from memory.embeddings import StaticEmbeddings

EMBEDDINGS = StaticEmbeddings()


def understander(now: datetime = NOW) -> LocalUnderstander:
    return LocalUnderstander(embeddings=EMBEDDINGS, webhooks=WEBHOOKS, timezone=ZONE,
                             now=lambda: now)


async def test_development_set_accuracy() -> None:
    result = await evaluate(understander())
    assert result["intent"] >= 0.9, result["misses"]
    assert result["slots"] >= 0.9, result["misses"]


@pytest.mark.parametrize(("text", "when", "rest"), [
    ("call Alice tomorrow at 9", "2026-11-23T09:00:00+01:00", "call Alice"),
    ("in 45 minutes stretch", "2026-11-22T10:45:00+01:00", "stretch"),
    ("on Friday at 3pm call Dana", "2026-11-27T15:00:00+01:00", "call Dana"),
    ("at 8 call mum", "2026-11-23T08:00:00+01:00", "call mum"),
    ("next Sunday at 11:30 brunch", "2026-11-29T11:30:00+01:00", "brunch"),
    ("2026-12-01 14:30 dentist", "2026-12-01T14:30:00+01:00", "dentist"),
    ("tonight take out the trash", "2026-11-22T20:00:00+01:00", "take out the trash"),
    ("call Bob on December 3rd", "2026-12-03T09:00:00+01:00", "call Bob"),
])
def test_time_expressions(text: str, when: str, rest: str) -> None:
    found = parse_when(text, now=NOW)
    assert found.at.isoformat() == when
    assert cut(text, found.spans) == rest


def test_times_keep_the_wall_clock_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before_spring = datetime(2027, 3, 27, 12, 0, tzinfo=berlin)  # clocks go forward that night
    assert parse_when("tomorrow at 9", now=before_spring).at.isoformat() == \
        "2027-03-28T09:00:00+02:00"
    # A duration is elapsed time: 24 hours later the wall clock shows 13:00.
    assert parse_when("in 24 hours", now=before_spring).at.astimezone(berlin).isoformat() == \
        "2027-03-28T13:00:00+02:00"


async def test_free_text_send_needs_a_known_webhook() -> None:
    result = await understander().understand("send the crm hook that invoice 42 is paid")
    assert (result.name, result.slots) == ("send", {"webhook": "crm",
                                                    "text": "invoice 42 is paid"})
    unsure = await understander().understand("what is Helix's invoice address")
    assert unsure.name != "send" or unsure.confidence < 0.9


async def test_unsure_means_asking_with_two_choices() -> None:
    result = await understander().understand("blorp zxq")
    assert result.name == "unknown" and len(result.slots["choices"]) == 2
    assert result.confidence < 0.45


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_and_names_are_fixed(text: str) -> None:
    import asyncio

    result = asyncio.run(understander().understand(text))
    assert result.name in INTENTS
    assert 0.0 <= result.confidence <= 1.0


@pytest.mark.parametrize("text", ["hi", "Hello there!", "thanks", "thank you so much 🙏",
                                  "good morning", "ok cool", "sure", "bye", "how are you?"])
async def test_greetings_and_thanks_are_small_talk_never_a_guess(text: str) -> None:
    intent = await understander().understand(text)
    assert intent.name == "smalltalk", intent
    assert "choices" not in intent.slots


@pytest.mark.parametrize(("text", "intent"), [("hi, remind me at 9 to call Bob", "remind"),
                                              ("thanks, note: invoice sent", "note"),
                                              ("note: hi", "note")])
async def test_a_request_after_a_greeting_is_still_the_request(text: str, intent: str) -> None:
    assert (await understander().understand(text)).name == intent
