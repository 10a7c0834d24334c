"""Numbers and times as a voice note says them reach the parsers in digits: one test per form,
through the offline understander where a slot depends on it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from graph.local_understanding import LocalUnderstander
from graph.spoken_numbers import numbers_as_digits
from memory.embeddings import StaticEmbeddings

ZONE = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=ZONE)  # a Sunday


@pytest.mark.parametrize(("said", "written"), [
    ("remind me at ten to call the printer", "remind me at 10 to call the printer"),
    ("invoice forty two is paid", "invoice 42 is paid"),
    ("leave at two thirty", "leave at 2:30"),
    ("close at half past five", "close at 5:30"),
    ("call at quarter to six", "call at 5:45"),
    ("meet at eleven oh five", "meet at 11:05"),
    ("the gate code is four four seven one", "the gate code is 4471"),
    ("reply to twelve that it works", "reply to 12 that it works"),
    ("the rent is nine hundred euros", "the rent is 900 euros"),
    ("two hundred and fifty prints", "250 prints"),
    ("in forty five minutes", "in 45 minutes"),
    ("call at 2.30", "call at 2:30"),  # Whisper writes a clock time with a dot
])
def test_each_spoken_form_is_written_in_digits(said: str, written: str) -> None:
    assert numbers_as_digits(said) == written


@pytest.mark.parametrize("said", ["the one with Dana", "no one called", "I have two cats",
                                  "one more thing", "what do I know about the bakery?",
                                  # ids, addresses and spacing are left exactly as they are
                                  "ticket Q000:  forget f1a2b3c4, undo r284f26c56!",
                                  "mail ruth@acme.com re: https://x.example/a-1 (urgent)"])
def test_number_words_outside_a_numeric_setting_stay_words(said: str) -> None:
    assert numbers_as_digits(said) == said


@pytest.mark.parametrize(("said", "intent", "slot", "value"), [
    ("remind me at two thirty to leave for the shoot", "remind", "when",
     "2026-11-22T14:30:00+01:00"),
    ("remind me at half past five to close the shop", "remind", "when",
     "2026-11-22T17:30:00+01:00"),
    ("remind me tonight at eight to call my mother", "remind", "when",
     "2026-11-22T20:00:00+01:00"),
    ("reply to twelve that friday works", "reply", "id", "12"),
])
async def test_the_understander_reads_what_was_said(said: str, intent: str, slot: str,
                                                    value: str) -> None:
    understander = LocalUnderstander(embeddings=StaticEmbeddings(), timezone=ZONE,
                                     now=lambda: NOW)
    result = await understander.understand(numbers_as_digits(said))
    assert result.name == intent and result.slots[slot] == value, result
