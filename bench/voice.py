"""Speech to text on the committed clips (espeak-ng speech as OGG/Opus voice notes): word error
rate and real-time factor per model, with the clip duration as the real-time baseline.

Usage (from the repository root): python -m bench.voice [--models base]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path

from bot.voice import WhisperTranscriber

CLIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "voice"
NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
           "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten", "42": "forty two",
           "3rd": "third"}


def words(text: str) -> list[str]:
    """Lower-case words, digits spelled out (Whisper writes "9" for "nine")."""
    out = []
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        out += NUMBERS.get(word, word).split()
    return out


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word edits (substitutions + insertions + deletions) and reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1], len(ref)


async def main(models: list[str]) -> None:
    transcripts = json.loads((CLIPS / "transcripts.json").read_text())
    print(f"\nSpeech to text, {len(transcripts)} clips (espeak-ng, OGG/Opus)")
    print(f"{'model':<10}{'WER':>8}{'RTF':>8}{'audio s':>9}{'compute s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            transcriber = WhisperTranscriber(model=model, models_dir=Path(tmp))
            first = next(iter(transcripts))
            await transcriber.transcribe((CLIPS / first).read_bytes(), "audio/ogg")  # load
            edits = total = 0
            audio = compute = 0.0
            for name, reference in transcripts.items():
                started = time.perf_counter()
                result = await transcriber.transcribe((CLIPS / name).read_bytes(), "audio/ogg")
                compute += time.perf_counter() - started
                audio += result.seconds
                e, n = wer(reference, result.text)
                edits, total = edits + e, total + n
            print(f"{model:<10}{edits / total:>8.1%}{compute / audio:>8.2f}{audio:>9.1f}"
                  f"{compute:>11.1f}")
    print("target (base): WER ≤ 10%, real-time factor ≤ 0.35")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    asyncio.run(main(parser.parse_args().models))
