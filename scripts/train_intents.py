"""Train the offline intent classifier on the corpus and write ``graph/corpus/model.npz``.

Deterministic (same corpus, same weights). Run it after editing ``graph/corpus/*.txt``; the
understander refuses a model trained on another version of the corpus.

Usage (from the repository root): python -m scripts.train_intents
"""

from __future__ import annotations

import time

from graph.intent_model import MODEL_PATH, IntentModel, corpus_hash, features, load_corpus
from memory.embeddings import StaticEmbeddings


def main() -> None:
    started = time.perf_counter()
    examples = load_corpus()
    x = features([e.text for e in examples], StaticEmbeddings())
    model = IntentModel.train(x, [e.intent for e in examples])
    model.corpus = corpus_hash()
    model.save(MODEL_PATH)
    print(f"trained on {len(examples)} messages, {len(model.labels)} intents, "
          f"{len({e.family for e in examples})} families in {time.perf_counter() - started:.1f} s"
          f" → {MODEL_PATH} ({MODEL_PATH.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
