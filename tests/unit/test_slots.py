"""Slots once the intent is known: what is kept, searched, answered or run is the operator's
words without the request around them. Messages here are not in the corpus."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from graph.slots import SlotReader

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
READER = SlotReader(webhooks=["crm"], now=lambda: NOW)


@pytest.mark.parametrize(("intent", "text", "slot", "value"), [
    # a short lead of keeping words, ended by a colon, a comma, a dash or "that"
    ("note", "pop this into my journal, the kiln runs hot", "text", "the kiln runs hot"),
    ("note", "a thought for the notebook - sell gift cards", "text", "sell gift cards"),
    ("remember", "please file in your memory that Ines is the new buyer", "text",
     "Ines is the new buyer"),
    ("remember", "a fact for you: the loading dock closes at 6", "text",
     "the loading dock closes at 6"),
    # when a fact starts holding is not part of it
    ("remember", "from today on the shop opens at 9", "text", "the shop opens at 9"),
    ("remember", "as of this month the cleaner comes on thursdays", "text",
     "the cleaner comes on thursdays"),
    # the work, not the obligation
    ("task", "I have to repaint the sign", "text", "repaint the sign"),
    ("task", "gotta call the landlord", "text", "call the landlord"),
    ("task", "add a todo for sorting the cables", "text", "sorting the cables"),
    # the thing asked about, not the question around it
    ("recall", "the landlord's number, anything saved?", "query", "the landlord's number"),
    ("recall", "I can't remember the alarm code", "query", "the alarm code"),
    ("recall", "details on the Berger order please", "query", "the Berger order"),
    # what to answer, after whom it answers
    ("reply", "write back to Ines sounds great", "text", "sounds great"),
    ("reply", "answer the last mail yes we can", "text", "yes we can"),
    ("reply", "re: 42 will do", "id", "42"),
    # "that" pointing at the mail is not what to say
    ("reply", "reply to that message: works for me", "text", "works for me"),
    # the opening goes on for a few words, in any inflection
    ("remember", "store the fact that the kiln is gas-fired", "text", "the kiln is gas-fired"),
    ("remember", "just telling you, the cleaner has a key", "text", "the cleaner has a key"),
    ("remember", "no wait, the kiln is electric", "text", "the kiln is electric"),
    ("note", "note a thought, a stall at the flea market", "text", "a stall at the flea market"),
    # politeness and asides between the request and the words
    ("note", "I'd like a note saying the glaze batch failed", "text", "the glaze batch failed"),
    ("note", "note for me please the kiln is fixed", "text", "the kiln is fixed"),
    ("task", "new task please, sweep the yard", "text", "sweep the yard"),
    ("remember", "make sure you remember the yard gate sticks", "text", "the yard gate sticks"),
    # the list it goes on is not part of the work
    ("task", "add sweep the yard to my chores", "text", "sweep the yard"),
    ("task", "stick water the ferns on the todo list", "text", "water the ferns"),
    ("task", "I still need to book the van, add it as a task", "text", "book the van"),
    # a subject of several words ends where the body starts
    ("email", "mail ines@lumen.studio with subject Spring prices saying see attached",
     "subject", "Spring prices"),
    ("email", "email ines@lumen.studio asking for the spring prices", "text",
     "asking for the spring prices"),
    ("email", "email ines@lumen.studio the spring prices", "text", "the spring prices"),
])
def test_the_request_around_the_words_is_left_out(intent: str, text: str, slot: str,
                                                  value: str) -> None:
    assert READER.read(intent, text).get(slot) == value


@pytest.mark.parametrize(("text", "name"), [
    ("could you kick off the quarterly taxes routine right now", "quarterly taxes"),
    ("the stock count, pause it for a while", "stock count"),
    ("strat the stock count", "stock count"),  # a typo in the verb
    ("show me the versions of playbook stock count", "stock count"),
])
def test_a_playbook_name_is_what_is_left_of_the_request(text: str, name: str) -> None:
    assert READER.read("playbook", text) == {"text": name}


@pytest.mark.parametrize("text", ["list my playbooks", "which playbooks do I have", "playbooks"])
def test_asking_for_the_list_names_no_playbook(text: str) -> None:
    assert READER.read("playbook", text) == {}


def test_a_statement_without_a_lead_is_kept_whole() -> None:
    # no keeping word before the comma: the comma is part of what is kept
    said = "Ines, the buyer, prefers calls"
    assert READER.read("remember", said)["text"] == said


@pytest.mark.parametrize(("intent", "text", "value"), [
    ("note", "journal entry: slow day, finished the mockups", "slow day, finished the mockups"),
    ("note", "slow day, finished the mockups", "slow day, finished the mockups"),
    ("note", "wirte down slow day at the fair", "slow day at the fair"),
    ("remember", "remmeber that slow payers get a second reminder",
     "slow payers get a second reminder"),
])
def test_a_word_one_letter_from_a_command_word_stays_as_said(intent: str, text: str,
                                                              value: str) -> None:
    """Typos of command words are corrected to find the request's opening ("wirte down"),
    never in what is kept: "slow" is one letter from "show" and stays "slow"."""
    assert READER.read(intent, text)["text"] == value


@pytest.mark.parametrize(("text", "when", "rest"), [
    ("remind me tomorrow at nine to call Ines", "2026-11-23T09:00:00+01:00", "call Ines"),
    ("remind me tomorrow 10 o'clock about the kiln", "2026-11-23T10:00:00+01:00", "the kiln"),
    # said on a Sunday morning: the first Sunday evening is tonight, the first morning next week
    ("every sunday at 8pm remind me to plan the week", "2026-11-22T20:00:00+01:00",
     "plan the week"),
    ("every sunday at 8am remind me to plan the week", "2026-11-29T08:00:00+01:00",
     "plan the week"),
])
def test_spoken_and_repeating_times(text: str, when: str, rest: str) -> None:
    slots = READER.read("remind", text)
    assert (slots["when"], slots["text"]) == (when, rest)


@pytest.mark.parametrize(("intent", "text", "slots"), [
    # the scene first, then the request: its time and id are in the request
    ("remind", "the glaze order ships friday, remind me thursday at 4 to check it",
     {"when": "2026-11-26T16:00:00+01:00", "text": "check it"}),
    ("remind", "the kiln cools by 3 so remind me at 2:45 to open the vents",
     {"when": "2026-11-22T14:45:00+01:00", "text": "open the vents"}),
    ("reply", "Ines wants a date, answer 7 that monday works", {"id": "7", "text": "monday works"}),
    ("note", "back from the fair, note that the blue mugs sold out",
     {"text": "the blue mugs sold out"}),
    # a request that points back at the scene keeps the scene as its words
    ("remember", "the kiln needs 4 hours to cool, keep that in mind",
     {"text": "the kiln needs 4 hours to cool"}),
])
def test_a_request_after_a_preamble(intent: str, text: str, slots: dict[str, str]) -> None:
    got = READER.read(intent, text)
    assert {k: got.get(k) for k in slots} == slots
