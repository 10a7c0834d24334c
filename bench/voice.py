"""Speech to text on the committed clips (espeak-ng speech as OGG/Opus voice notes): word error
rate and real-time factor per model and decoding option, on the clips decoding choices were
made on and on the held-out ones, so the gap between them is visible.

Clip sets (``scripts/make_voice_clips.py``):

  first      22 phrases, one voice, one speed; the original decoding settings were chosen here
  tune       24 phrases in four voices at four speeds (tests/data/voice/varied, split "tune")
  held-out   40 other phrases in six other voices (split "held-out"): the figure to report

Options: beam size; the operator's context (the names their facts mention, webhook names,
command words: :func:`bot.voice.context_for`) given to the decoder or not; the style prompt
(:data:`bot.voice.STYLE_PROMPT`) or not. WER counts words
after lower-casing, dropping punctuation and writing numbers in digits on both sides
(:func:`graph.spoken_numbers.numbers_as_digits`: "forty two" and "42" are the same word); the
real-time factor is compute time over audio time (the audio's duration is the baseline).

Usage (from the repository root): python -m bench.voice [--models base tiny.en]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import tempfile
import time
from pathlib import Path

from bot.voice import COMMAND_WORDS, WhisperTranscriber, context_for
from graph.spoken_numbers import numbers_as_digits

CLIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "voice"
NAMES = ["Dana", "Ines", "Berger", "Kovac", "Greenleaf", "Acme", "Omar", "Ruth", "Mara", "Luis",
         "Petra", "Helix", "Copper Kettle", "crm", "billing", "slack studio"]
"""What this operator's memory and configuration would hold: the people and companies the
clips name, and the webhook names."""
OPTIONS = {"beam 3": (3, False, False), "beam 3 + context": (3, True, False),
           "beam 3 + ctx + style": (3, True, True), "beam 5 + ctx + style": (5, True, True),
           "greedy + ctx + style": (1, True, True)}
"""Option → (beam size, context, style prompt); "beam 3 + context" is the shipped default."""


def words(text: str) -> list[str]:
    """Lower-case words, numbers in digits (Whisper writes "9" for "nine")."""
    return re.findall(r"[a-z0-9']+|\d+:\d+", numbers_as_digits(text).lower())


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word edits (substitutions + insertions + deletions) and reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1], len(ref)


def clip_sets() -> dict[str, dict[Path, str]]:
    """Set name → clip path → reference text."""
    first = json.loads((CLIPS / "transcripts.json").read_text())
    varied = json.loads((CLIPS / "varied" / "clips.json").read_text())
    sets: dict[str, dict[Path, str]] = {"first": {CLIPS / n: t for n, t in first.items()}}
    for split in ("tune", "held-out"):
        sets[split] = {CLIPS / "varied" / n: c["text"] for n, c in varied.items()
                       if c["split"] == split}
    return sets


async def main(models: list[str], show: bool) -> None:
    sets = clip_sets()
    context = context_for([*NAMES, *COMMAND_WORDS])
    print(f"\nSpeech to text: {', '.join(f'{k} {len(v)} clips' for k, v in sets.items())} "
          f"(espeak-ng, OGG/Opus)\ncontext: {context!r}")
    print(f"{'model':<9}{'option':<22}" + "".join(f"{k + ' WER':>14}" for k in sets)
          + f"{'RTF':>7}{'load s':>8}{'RSS MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for option, (beam, with_context, style) in OPTIONS.items():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                transcriber = WhisperTranscriber(model=model, models_dir=Path(tmp),
                                                 beam_size=beam, style=style)
                started = time.perf_counter()
                await transcriber.transcribe((CLIPS / "clip01.ogg").read_bytes(), "audio/ogg")
                load = time.perf_counter() - started
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
                rates, audio, compute = [], 0.0, 0.0
                for clips in sets.values():
                    edits = total = 0
                    for path, reference in clips.items():
                        started = time.perf_counter()
                        heard = await transcriber.transcribe(
                            path.read_bytes(), "audio/ogg",
                            context=context if with_context else "")
                        compute += time.perf_counter() - started
                        audio += heard.seconds
                        e, n = wer(reference, heard.text)
                        edits, total = edits + e, total + n
                        if show and e and option == "beam 3 + context":
                            print(f"  {path.name}: {reference!r} → {heard.text!r}")
                    rates.append(edits / total)
                print(f"{model:<9}{option:<22}" + "".join(f"{r:>14.1%}" for r in rates)
                      + f"{compute / audio:>7.2f}{load:>8.1f}{max(rss, 0):>8.0f}", flush=True)
    print("targets (default model and context, held out): WER ≤ 12%, real-time factor ≤ 0.5 "
          "(RSS: growth of the process's peak while the model loaded; 0 once an earlier row "
          "loaded the same model)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.models, args.show_errors))
