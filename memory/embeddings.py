"""The default embedding model: a static (model2vec-format) model distilled from all-MiniLM-L6-v2.

A sentence's vector is the mean of its tokens' vectors, normalised: numpy and the
``tokenizers`` library at run time, about 20–40k sentences/s, no torch. The files in
``memory/static_model/`` were produced by ``scripts/make_static_embeddings.py`` and are checked
against ``SHA256SUMS`` when loaded. Exposed as a LangChain ``Embeddings`` so any LangChain
embedding model can take its place.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_DIR = Path(__file__).with_name("static_model")
MAX_TOKENS = 512


class ModelIntegrityError(RuntimeError):
    """The model files do not match their recorded hashes."""


def verify(directory: Path) -> None:
    """Check every file listed in ``SHA256SUMS``.

    Raises:
        ModelIntegrityError: a file is missing or differs.
    """
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        expected, name = line.split()
        path = directory / name
        if not path.is_file():
            raise ModelIntegrityError(f"{path} is missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise ModelIntegrityError(f"{path} does not match SHA256SUMS; "
                                      "re-run the script that made it (scripts/)")


class StaticEmbeddings(Embeddings):
    """Mean-of-token-vectors embeddings from a model2vec-format directory.

    Args:
        directory: holds ``embeddings.safetensors``, ``tokenizer.json``, ``config.json``,
            ``SHA256SUMS``.
    """

    def __init__(self, directory: Path = MODEL_DIR) -> None:
        self.directory = directory
        config = json.loads((directory / "config.json").read_text())
        self.normalize = bool(config.get("normalize", True))
        self.dims = int(config["dims"])
        self._vectors: np.ndarray | None = None

    def load(self) -> None:
        """Check and load the files (done on first use: start-up stays fast)."""
        if self._vectors is not None:
            return
        verify(self.directory)
        # Kept as float16 (15 MB); the mean is taken in float32.
        vectors = load_file(str(self.directory / "embeddings.safetensors"))["embeddings"]
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        model = self.tokenizer.model
        unk = getattr(model, "unk_token", None)
        self._unk = self.tokenizer.token_to_id(unk) if unk else None
        self._vectors = vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts`` as a float32 matrix (a zero vector for text without tokens)."""
        self.load()
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(texts,
                                                                   add_special_tokens=False)):
            ids = [i for i in encoding.ids[:MAX_TOKENS] if i != self._unk]
            if ids:
                out[row] = self._vectors[ids].mean(axis=0, dtype=np.float32)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.where(norms == 0, 1, norms)
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """See ``langchain_core.embeddings.Embeddings``."""
        return self.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """See ``langchain_core.embeddings.Embeddings``."""
        return self.embed([text])[0].tolist()


def as_matrix(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    """Any LangChain embeddings as a normalised float32 matrix (fast path for the static one)."""
    if isinstance(embeddings, StaticEmbeddings):
        return embeddings.embed(texts)
    matrix = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)
