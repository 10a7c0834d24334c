"""Slash commands parse into the fixed intent and slot names; nothing makes the parser raise."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph.understanding import INTENTS, CommandUnderstander, parse_command


@pytest.mark.parametrize(("text", "intent", "slots"), [
    ("/note pricing call went well", "note", {"text": "pricing call went well"}),
    ("/note@solo_bot multi\nline", "note", {"text": "multi\nline"}),
    ("/send CRM Invoice 42 is paid", "send", {"webhook": "crm", "text": "Invoice 42 is paid"}),
    ('/send crm "quoted text"', "send", {"webhook": "crm", "text": "quoted text"}),
    ("/HELP", "help", {}),
    ("/start", "help", {"command": "start"}),
    ("/status", "status", {}),
    ("/approvals", "approvals", {}),
    ("/audit", "audit", {}),
    ("/memory alice", "recall", {"command": "memory", "query": "alice"}),
    ("/forget f12", "forget", {"command": "forget", "id": "f12"}),
])
async def test_commands(text: str, intent: str, slots: dict) -> None:
    result = await CommandUnderstander().understand(text)
    assert (result.name, result.slots, result.confidence) == (intent, slots, 1.0)


@pytest.mark.parametrize(("text", "error"), [
    ("/note", "Usage: /note TEXT"),
    ("/note   ", "Usage: /note TEXT"),
    ("/send", "Usage: /send NAME TEXT"),
    ("/send crm", "Usage: /send NAME TEXT"),
    ("/nope", "Unknown command /nope. Try /help."),
])
async def test_malformed_commands_say_how_to_write_them(text: str, error: str) -> None:
    result = await CommandUnderstander().understand(text)
    assert result.name == "unknown" and result.slots["error"].startswith(error)


async def test_free_text_is_unknown_with_zero_confidence() -> None:
    result = await CommandUnderstander().understand("  remind me to call Alice  ")
    assert result.to_dict() == {"intent": "unknown", "slots": {"text": "remind me to call Alice"},
                                "confidence": 0.0}


@given(st.text(max_size=300))
def test_parser_never_raises_and_uses_only_fixed_intents(text: str) -> None:
    intent = parse_command(text)
    assert intent is None or intent.name in INTENTS
    if re.match(r"/[A-Za-z_]+(\s|$)", text.strip()):
        assert intent is not None
