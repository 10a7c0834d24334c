"""Speech to text: decoding limits and errors, bundled weights checked, a real transcription."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from bot.voice import (
    COMMAND_WORDS,
    MAX_CONTEXT_CHARS,
    WhisperTranscriber,
    bundled_model,
    context_for,
    decode,
)
from graph.events import VoiceError

CLIPS = Path(__file__).resolve().parents[1] / "data" / "voice"


def silent_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * int(16000 * seconds))
    return buffer.getvalue()


def test_decodes_ogg_opus_to_16k_mono() -> None:
    samples = decode((CLIPS / "clip01.ogg").read_bytes())
    assert 1.0 < samples.size / 16000 < 5.0 and samples.dtype.name == "float32"


@pytest.mark.parametrize(("audio", "limit", "message"), [
    (b"definitely not audio", 180.0, "does not look like audio"),
    (b"", 180.0, "does not look like audio"),
    (silent_wav(3.0), 1.0, "longer than 1 seconds"),
])
def test_bad_audio_is_refused_with_a_reason(audio: bytes, limit: float, message: str) -> None:
    with pytest.raises(VoiceError, match=message):
        decode(audio, max_seconds=limit)


async def test_transcribes_a_clip_and_refuses_silence(tmp_path: Path) -> None:
    transcriber = WhisperTranscriber(models_dir=tmp_path)
    heard = await transcriber.transcribe((CLIPS / "clip01.ogg").read_bytes(), "audio/ogg")
    assert "logo" in heard.text.lower() and 0 < heard.confidence <= 1
    with pytest.raises(VoiceError, match="silent"):
        await transcriber.transcribe(silent_wav(2.0), "audio/wav")


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    directory = bundled_model("tiny.en", tmp_path)
    with (directory / "config.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(VoiceError, match="does not match"):
        bundled_model("tiny.en", tmp_path)


def test_the_decoder_context_is_bounded_and_keeps_the_first_words() -> None:
    names = ["Ines Kovac", "ines kovac", "Berger", *(f"Name{i}" for i in range(200))]
    context = context_for([*names, *COMMAND_WORDS])
    assert context.startswith("Ines Kovac, Berger, Name0")  # each once, the first kept
    assert len(context) <= MAX_CONTEXT_CHARS and not context.endswith(",")
    assert context_for(["  Copper   Kettle ", ""]) == "Copper Kettle"
