"""The committed static model loads, checks its hashes, and matches model2vec's own encoding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from memory.embeddings import MODEL_DIR, ModelIntegrityError, StaticEmbeddings

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "static_embedding_reference.json"


def test_vectors_match_the_reference_made_with_model2vec() -> None:
    reference = json.loads(REFERENCE.read_text())
    vectors = StaticEmbeddings().embed(reference["sentences"])
    assert np.abs(vectors - np.array(reference["vectors"])).max() < 1e-4
    assert vectors.shape[1] == 256


def test_similar_sentences_are_closer_than_unrelated_ones() -> None:
    model = StaticEmbeddings()
    a, b, c = model.embed(["the client paid the invoice", "invoice settled by the customer",
                           "walk the dog in the park"])
    assert a @ b > a @ c + 0.1


def test_langchain_interface() -> None:
    model = StaticEmbeddings()
    assert len(model.embed_query("hello")) == 256
    assert len(model.embed_documents(["a", "b"])) == 2


def test_a_tampered_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(MODEL_DIR, copy)
    config = copy / "config.json"
    config.write_text(config.read_text().replace("256", "255"))
    with pytest.raises(ModelIntegrityError, match=r"config\.json"):
        StaticEmbeddings(copy).embed(["hello"])
