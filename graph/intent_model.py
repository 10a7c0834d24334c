"""The intent classifier the offline understander learns from the corpus (``graph/corpus``).

A multinomial logistic regression (numpy only) over four views of a message: a contextual
sentence encoding (MiniLM, :mod:`memory.sentence_encoder`: what the phrase means), the static
sentence embedding (what its words mean), hashed character n-grams (spelling: "remnid",
"sumarry" still look like what they mean) and hashed words and word pairs. Trained by
``scripts/train_intents.py`` into ``graph/corpus/model.npz``, which carries the hash of the
corpus and the encoders it was trained on, so a corpus edit without retraining is caught at
load. The probabilities are what the understander's confidence is; how well they predict being
right is measured by ``bench/understanding.py`` on held-out families (calibration error ~1%).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from graph.spelling import canonical
from memory.embeddings import MODEL_DIR, as_matrix
from memory.sentence_encoder import ENCODER_DIR, SentenceEncoder

CORPUS_DIR = Path(__file__).with_name("corpus")
MODEL_PATH = CORPUS_DIR / "model.npz"
CHAR_BUCKETS = 4096
WORD_BUCKETS = 2048
ENCODER_WEIGHT = 2.0
"""The contextual encoding counts twice as much as each other view (chosen on held-out
families: it is the view that carries unseen phrasing)."""
_WORD = re.compile(r"[a-z0-9@.:'#<>-]+")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message of the corpus.

    Attributes:
        family: ``intent/family-name``; the unit the evaluation holds out.
        slots: the slots the message must yield (may be empty).
    """

    text: str
    intent: str
    family: str
    slots: dict[str, str] = field(default_factory=dict)


def load_corpus(directory: Path = CORPUS_DIR) -> list[Example]:
    """Every example of every ``<intent>.txt`` in ``directory`` (see its README for the format).

    Raises:
        ValueError: a message outside a family, or a malformed slot list (with file and line).
    """
    examples = []
    for path in sorted(directory.glob("*.txt")):
        intent, family = path.stem, None
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or (line.startswith("#") and not line.startswith("## ")):
                continue
            if line.startswith("## "):
                family = f"{intent}/{line[3:].strip()}"
                continue
            if family is None:
                raise ValueError(f"{path.name}:{number}: message before the first ## family")
            text, _, slot_text = line.partition("||")
            slots = {}
            for part in filter(None, (p.strip() for p in slot_text.split(";"))):
                key, sep, value = part.partition("=")
                if not sep:
                    raise ValueError(f"{path.name}:{number}: slot {part!r} is not key=value")
                slots[key.strip()] = value.strip()
            examples.append(Example(text.strip(), intent, family, slots))
    return examples


def corpus_hash(directory: Path = CORPUS_DIR) -> str:
    """A hash of what a trained model was trained on: the corpus files and the two encoders'
    recorded hashes (another encoder means other features)."""
    digest = hashlib.sha256()
    for path in [*sorted(directory.glob("*.txt")), MODEL_DIR / "SHA256SUMS",
                 ENCODER_DIR / "SHA256SUMS"]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def shared_encoder() -> SentenceEncoder:
    """One sentence encoder per process (its ONNX session is thread-safe and 23 MB)."""
    return SentenceEncoder()


def normalise(text: str) -> str:
    """The form the classifier reads: see :func:`graph.spelling.canonical`."""
    return canonical(text)


def _bucket(token: str, buckets: int) -> int:
    return zlib.crc32(token.encode()) % buckets


def _hashed(canonical_texts: Sequence[str]) -> np.ndarray:
    """Character 3–5-grams and words + word pairs, hashed, each view L2-normalised."""
    out = np.zeros((len(canonical_texts), CHAR_BUCKETS + WORD_BUCKETS), dtype=np.float32)
    for row, text in enumerate(canonical_texts):
        padded = f" {text} "
        for n in (3, 4, 5):
            for i in range(len(padded) - n + 1):
                out[row, _bucket(padded[i:i + n], CHAR_BUCKETS)] += 1.0
        words = _WORD.findall(padded)
        for token in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
            out[row, CHAR_BUCKETS + _bucket(token, WORD_BUCKETS)] += 1.0
    for part in (slice(0, CHAR_BUCKETS), slice(CHAR_BUCKETS, None)):
        norms = np.linalg.norm(out[:, part], axis=1, keepdims=True)
        out[:, part] /= np.where(norms == 0, 1, norms)
    return out


def features(texts: Sequence[str], embeddings: Embeddings,
             encoder: Embeddings | None = None) -> np.ndarray:
    """The feature matrix of ``texts``: contextual encoding (``encoder``, default
    :func:`shared_encoder`), static embedding (``embeddings``), character n-grams, words (plus
    a bias)."""
    canonical_texts = [normalise(t) for t in texts]
    phrase = as_matrix(encoder or shared_encoder(), canonical_texts) * ENCODER_WEIGHT
    words = as_matrix(embeddings, canonical_texts)
    bias = np.ones((len(texts), 1), dtype=np.float32)
    return np.hstack([phrase, words, _hashed(canonical_texts), bias]).astype(np.float32)


@dataclass
class IntentModel:
    """Softmax regression: ``weights`` (features × intents) over :func:`features`."""

    labels: list[str]
    weights: np.ndarray
    corpus: str = ""

    @classmethod
    def train(cls, x: np.ndarray, y: Sequence[str], *, labels: Sequence[str] | None = None,
              l2: float = 1e-5, epochs: int = 250, rate: float = 0.05) -> IntentModel:
        """Fit on feature rows ``x`` and labels ``y`` (full-batch Adam, deterministic)."""
        labels = list(labels or sorted(set(y)))
        index = {label: i for i, label in enumerate(labels)}
        target = np.zeros((len(y), len(labels)), dtype=np.float32)
        target[np.arange(len(y)), [index[v] for v in y]] = 1.0
        weights = np.zeros((x.shape[1], len(labels)), dtype=np.float32)
        first = np.zeros_like(weights)
        second = np.zeros_like(weights)
        for step in range(1, epochs + 1):
            probs = _softmax(x @ weights)
            grad = x.T @ (probs - target) / len(y) + l2 * weights
            first = 0.9 * first + 0.1 * grad
            second = 0.999 * second + 0.001 * grad * grad
            weights -= rate * (first / (1 - 0.9 ** step)) / (
                np.sqrt(second / (1 - 0.999 ** step)) + 1e-8)
        return cls(labels=labels, weights=weights)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Rows of probabilities over :attr:`labels`."""
        return _softmax(x @ self.weights)

    def save(self, path: Path = MODEL_PATH) -> None:
        """Write the weights, labels and corpus hash (float16: the file stays small)."""
        np.savez_compressed(path, weights=self.weights.astype(np.float16),
                            labels=np.array(self.labels), corpus=np.array(self.corpus))

    @classmethod
    def load(cls, path: Path = MODEL_PATH, *, corpus: str | None = None) -> IntentModel:
        """Read a trained model.

        Raises:
            ValueError: it was trained on another corpus than ``corpus`` (retrain with
                ``python -m scripts.train_intents``).
        """
        with np.load(path) as data:
            model = cls(labels=[str(v) for v in data["labels"]],
                        weights=data["weights"].astype(np.float32), corpus=str(data["corpus"]))
        if corpus is not None and model.corpus != corpus:
            raise ValueError(f"{path} was trained on another version of the corpus; run "
                             "python -m scripts.train_intents")
        return model


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
