"""The local understander on the labelled development set: intent accuracy, slot accuracy and
latency per message, with the slash-command parser alone as the baseline in the same run.

Slot accuracy counts each expected slot: text slots match ignoring case and surrounding
punctuation; ``when`` matches to the minute in the operator's zone.

Usage (from the repository root): python -m bench.understanding [--show-errors]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.data.understanding_dev import DEV, NOW, WEBHOOKS, ZONE
from graph.local_understanding import LocalUnderstander
from graph.understanding import CommandUnderstander
from memory.embeddings import StaticEmbeddings


def same(expected: Any, got: Any) -> bool:
    """Whether a slot value matches (see the module docstring)."""
    if got is None:
        return False
    return str(expected).strip(" .,?!\"").lower() == str(got).strip(" .,?!\"").lower()


async def evaluate(understander: Any) -> dict[str, Any]:
    """Intent accuracy, slot accuracy, latencies and the misses of ``understander`` on DEV."""
    right = slots_total = slots_right = 0
    latencies, misses = [], []
    for text, intent, slots in ((d[0], d[1], d[2] if len(d) > 2 else {}) for d in DEV):
        started = time.perf_counter()
        result = await understander.understand(text)
        latencies.append(time.perf_counter() - started)
        right += result.name == intent
        for key, value in slots.items():
            slots_total += 1
            slots_right += same(value, result.slots.get(key))
        if result.name != intent or not all(same(v, result.slots.get(k))
                                            for k, v in slots.items()):
            misses.append((text, intent, slots, result.to_dict()))
    return {"intent": right / len(DEV), "slots": slots_right / max(slots_total, 1),
            "p50": statistics.median(latencies), "misses": misses}


async def main(show_errors: bool) -> None:
    local = LocalUnderstander(embeddings=StaticEmbeddings(), webhooks=WEBHOOKS, timezone=ZONE,
                              now=lambda: NOW)
    await local.understand("warm up")  # loads the model and embeds the examples once
    results = {"commands only (baseline)": await evaluate(CommandUnderstander()),
               "local understander": await evaluate(local)}
    print(f"\nUnderstanding, {len(DEV)} labelled messages")
    print(f"{'understander':<28}{'intent':>8}{'slots':>8}{'p50 ms':>9}")
    for name, r in results.items():
        print(f"{name:<28}{r['intent']:>8.1%}{r['slots']:>8.1%}{r['p50'] * 1e3:>9.2f}")
    r = results["local understander"]
    print(f"target: intent ≥ 90% ({r['intent']:.1%}), p50 ≤ 5 ms ({r['p50'] * 1e3:.2f} ms)")
    if show_errors:
        for text, intent, slots, got in r["misses"]:
            print(f"- {text!r}: want {intent} {slots}, got {got}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-errors", action="store_true")
    asyncio.run(main(parser.parse_args().show_errors))
