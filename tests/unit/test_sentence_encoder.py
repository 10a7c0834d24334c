"""The committed MiniLM encoder (int8 ONNX) loads, checks its hashes, and computes what the
original fp32 model computes, within what int8 quantisation costs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from memory.embeddings import ModelIntegrityError
from memory.sentence_encoder import ENCODER_DIR, SentenceEncoder

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "sentence_encoder_reference.json"


def test_vectors_agree_with_the_fp32_model_computed_independently() -> None:
    # The reference was computed by a plain numpy forward pass of the original weights, so this
    # checks the hand-written ONNX graph (attention, GELU, pooling) and not only its hashes.
    reference = json.loads(REFERENCE.read_text())
    vectors = SentenceEncoder().embed(reference["sentences"])
    expected = np.array(reference["vectors"], dtype=np.float32)
    assert vectors.shape == expected.shape == (len(reference["sentences"]), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert (vectors * expected).sum(axis=1).min() > 0.9


def test_a_paraphrase_is_closer_than_a_message_sharing_its_words() -> None:
    # What the static embeddings get wrong (checked: "I lost my keys" is closer to "I'm lost"
    # for them) and the contextual encoder gets right.
    lost, help_wanted, keys = SentenceEncoder().embed(["I'm lost", "I need help",
                                                       "I lost my keys"])
    assert lost @ help_wanted > lost @ keys


def test_langchain_interface_and_an_empty_message() -> None:
    encoder = SentenceEncoder()
    assert len(encoder.embed_query("hello")) == 384
    assert len(encoder.embed_documents(["a", ""])) == 2
    long = encoder.embed(["word " * 2000])  # truncated at max_tokens, not an error
    assert np.isfinite(long).all()


def test_a_tampered_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "encoder"
    shutil.copytree(ENCODER_DIR, copy)
    with (copy / "model.onnx").open("r+b") as model:
        model.seek(-16, 2)
        model.write(b"\0" * 16)
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx"):
        SentenceEncoder(copy).embed(["hello"])
