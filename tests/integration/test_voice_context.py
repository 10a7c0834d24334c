"""A voice note naming a person the operator's memory knows is transcribed with that name: the
names remembered facts mention (read from the real store, on both backends) reach the decoder
as context, with the configured webhook and MCP server names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.voice import VoiceNotes, WhisperTranscriber
from bot.wiring import operator_vocabulary
from config import load_settings
from graph.events import Inbound
from memory.knowledge import Memory

CLIP = Path(__file__).resolve().parents[1] / "data" / "voice" / "named.ogg"
SAID = "remind me tomorrow to call Ines Kovac"  # en-us, 150 words a minute


class Recordings:
    """An adapter that delivers one recording (what Telegram's getFile would)."""

    async def download_file(self, file_id: str) -> bytes:
        assert file_id == "voice-1"
        return CLIP.read_bytes()


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> WhisperTranscriber:
    return WhisperTranscriber(models_dir=tmp_path_factory.mktemp("models"))


async def hear(memory: Memory, transcriber: WhisperTranscriber, tmp_path: Path) -> str:
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path}"\n'
                      '[connectors.webhooks.crm]\nurl = "http://127.0.0.1:9/hook"\n')
    notes = VoiceNotes(transcriber=transcriber, adapters={"telegram": Recordings()},
                       vocabulary=operator_vocabulary(load_settings(config), memory))
    voice = Inbound(channel="telegram", chat="1", actor="1", event_id="e1",
                    attachment={"kind": "voice", "file_id": "voice-1", "mime": "audio/ogg"})
    return (await notes.hear(voice)).text


async def test_a_remembered_name_is_heard_as_that_name(memory: Memory, tmp_path: Path,
                                                       transcriber: WhisperTranscriber) -> None:
    # Without the fact the decoder has never heard of her (the same clip, the same model).
    unknown = await hear(memory, transcriber, tmp_path)
    assert "ines kovac" not in unknown.lower(), unknown
    await memory.remember("Ines Kovac is the new buyer at Berger", id="f1", source="test")
    assert await memory.store.names() == ["Ines Kovac", "Berger"]
    known = await hear(memory, transcriber, tmp_path)
    assert "ines kovac" in known.lower(), known


async def test_names_come_from_active_facts_most_mentioned_first(memory: Memory) -> None:
    await memory.remember("Our bank is Sparkasse", id="f1", source="test")
    await memory.remember("Dana Reyes pays late", id="f2", source="test")
    await memory.remember("Dana Reyes prefers calls; Helix too", id="f3", source="test")
    await memory.remember("The studio opens at 8", id="f4", source="test")
    names = await memory.store.names()
    assert names[0] == "Dana Reyes" and set(names) == {"Dana Reyes", "Sparkasse", "Helix"}
    await memory.forget("f1")
    assert "Sparkasse" not in await memory.store.names()
