"""A real small model behind llama-cpp-python's OpenAI-compatible server, on 127.0.0.1.

``.ci/local_model.sh`` builds the server and assembles the model (hash-checked) and ``.ci/run``
exports where they are: ``SOLO_TEST_LLAMA_PYTHON`` (a Python with ``llama-cpp-python[server]``)
and ``SOLO_TEST_LLAMA_MODEL`` (the GGUF file).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.mailrig import free_port

PYTHON = os.environ.get("SOLO_TEST_LLAMA_PYTHON", "")
MODEL = os.environ.get("SOLO_TEST_LLAMA_MODEL", "")


def start_model_server(python: str, model: str, log: Path,
                       timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """Start the server with ``model``; return it and its base URL (``…/v1``) once it answers."""
    port = free_port()
    with log.open("ab") as out:  # never a pipe: a full pipe blocks the server
        proc = subprocess.Popen([python, "-m", "llama_cpp.server", "--model", model, "--host",
                                 "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the model server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the model server did not answer within {timeout} s")
