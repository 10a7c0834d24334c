"""A real small model behind a real OpenAI-compatible server, on the held-out families.

Starts llama-cpp-python's server (``--server-python``: a Python with ``llama-cpp-python[server]``;
``--model``: a GGUF file; ``.ci/local_model.sh`` prepares both) on 127.0.0.1 and compares, on the
first ``--per-family`` messages of every family of the corpus:

  classifier, held out   the offline classifier trained without the message's family (baseline)
  model                  the model alone (``[llm] order = "model_first"``; the model never saw the
                         corpus, so every family is held out for it)
  local_first            the classifier, and the model only where the classifier is below
                         ``--local-confidence`` (``[llm] order = "local_first"``)

Printed: intent accuracy, slot accuracy, seconds per message (p50), how many model calls.
The clock is pinned to the corpus's reference time for the whole run.

Usage: python -m bench.local_model --server-python PY --model FILE [--per-family N] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import time_machine
from langchain.chat_models import init_chat_model

from bench.understanding import NOW, WEBHOOKS, ZONE, folds_of, score
from graph.budget import BudgetMeter, Caps, Prices
from graph.intent_model import Example, IntentModel, features, load_corpus
from graph.llm import LLMUnderstander
from graph.local_understanding import LocalUnderstander
from graph.understanding import Intent
from memory.db import open_database
from memory.embeddings import StaticEmbeddings
from memory.stores import Storage
from tests.support.local_model import start_model_server


async def main(args: argparse.Namespace) -> None:
    examples = load_corpus()
    embeddings = StaticEmbeddings()
    x = features([e.text for e in examples], embeddings)
    fold = folds_of(examples, 4)
    now = lambda: NOW  # noqa: E731 - the corpus's clock
    held_out = {}
    for k in range(4):
        train = [i for i, e in enumerate(examples) if fold[e.family] != k]
        held_out[k] = LocalUnderstander(
            embeddings=embeddings, webhooks=WEBHOOKS, timezone=ZONE, now=now,
            model=IntentModel.train(x[train], [examples[i].intent for i in train]))
    seen: dict[str, int] = {}
    sample: list[Example] = []
    for example in examples:
        if seen.get(example.family, 0) < args.per_family:
            seen[example.family] = seen.get(example.family, 0) + 1
            sample.append(example)
    if args.limit and len(sample) > args.limit:
        step = len(sample) / args.limit
        sample = [sample[int(i * step)] for i in range(args.limit)]

    scratch = Path(tempfile.mkdtemp(prefix="solo-bench-model-"))
    db = open_database(f"sqlite:///{scratch / 'audit.sqlite3'}")
    await db.migrate()
    proc, base = start_model_server(args.server_python, args.model, scratch / "server.log")
    try:
        meter = BudgetMeter(storage=Storage(db), timezone=ZONE, prices=Prices(0, 0),
                            caps=Caps(1e9, 1e9, 1e9))
        model = init_chat_model("openai:local", base_url=base, api_key="local", timeout=300,
                                max_retries=0, max_tokens=600, temperature=0)
        llm = LLMUnderstander(model=model, model_name="local", meter=meter, webhooks=WEBHOOKS,
                              zone=ZONE.key, breaker_failures=10**6)
        calls = {"model": 0, "local_first": 0}

        async def by_model(example: Example) -> Any:
            calls["model"] += 1
            try:
                return await llm.understand(example.text)
            except Exception as exc:  # a failed call is a wrong answer here, not a crash
                return Intent("unknown", {"error": str(exc)[:100]}, 0.0)

        async def local_first(example: Example) -> Any:
            local = await held_out[fold[example.family]].understand(example.text)
            if local.confidence >= args.local_confidence:
                return local
            calls["local_first"] += 1
            calls["model"] -= 1
            return await by_model(example)

        with time_machine.travel(NOW, tick=False):
            results = {
                "classifier, held out": await score(
                    sample, lambda e: held_out[fold[e.family]].understand(e.text)),
                "model": await score(sample, by_model),
                "local_first": await score(sample, local_first),
            }
    finally:
        proc.kill()
        await db.aclose()
    print(f"\n{len(sample)} messages (at most {args.per_family} per family, of {len(seen)} "
          "families), "
          f"model {os.path.basename(args.model)}, structured output: {llm.method}")
    print(f"{'understander':<24}{'intent':>8}{'chat≡':>8}{'slots':>8}{'p50 s':>8}{'calls':>7}")
    for name, r in results.items():
        n_calls = {"model": len(sample), "local_first": calls["local_first"]}.get(name, 0)
        print(f"{name:<24}{r['intent']:>8.1%}{r['lenient']:>8.1%}{r['slots']:>8.1%}"
              f"{r['p50']:>8.2f}{n_calls:>7}")
    base_intent = results["classifier, held out"]["intent"]
    for name in ("model", "local_first"):
        print(f"{name}: intent ×{results[name]['intent'] / max(base_intent, 1e-9):.2f} "
              "the held-out classifier")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-python", default=os.environ.get("SOLO_TEST_LLAMA_PYTHON"))
    parser.add_argument("--model", default=os.environ.get("SOLO_TEST_LLAMA_MODEL"))
    parser.add_argument("--per-family", type=int, default=1)
    parser.add_argument("--local-confidence", type=float, default=0.9)
    parser.add_argument("--limit", type=int, default=0,
                        help="at most this many messages, spread evenly over the families")
    parsed = parser.parse_args()
    if not parsed.server_python or not parsed.model:
        print("bench.local_model not run: it needs --server-python and --model (or "
              "SOLO_TEST_LLAMA_PYTHON and SOLO_TEST_LLAMA_MODEL); .ci/local_model.sh prepares "
              "both")
    else:
        asyncio.run(main(parsed))
