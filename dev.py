#!/usr/bin/env python3
"""Bootstrap a local virtualenv and run Solo OS or its tests. Needs only Python 3.11+ and pip.

python3 dev.py run     # solo chat on the embedded default (SQLite in ./data, no keys)
python3 dev.py test    # ruff, import contracts, the whole test suite
python3 dev.py bench   # the benchmarks in bench/
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def ensure_venv() -> None:
    """Create ``.venv`` and install the project with its dev extras when pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may run on an older Python
        sys.exit(f"Solo OS needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing Solo OS and its dependencies into .venv ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                   check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"],
                   check=True)
    stamp.write_text(wanted)


def run(*cmd: str) -> int:
    """Run ``cmd`` from the repository root; return its exit code."""
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def parallel(extra: list[str]) -> list[str]:
    """pytest-xdist options: one worker per core, at most four, whole files to a worker (a
    file's servers and fixtures start once). Most of the suite waits on real processes and
    servers, so two workers on two cores finish in about 60% of the time of one. Nothing when
    the caller chose (``-n``, ``--dist``, ``-p no:xdist``)."""
    if any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in extra):
        return []
    # --no-loadscope-reorder: keep the order tests/conftest.py sets (the longest files first)
    # instead of xdist's (the files with the most tests first).
    return ["-n", str(max(1, min(4, os.cpu_count() or 1))), "--dist", "loadfile",
            "--no-loadscope-reorder"]


def main() -> int:
    """Dispatch ``run`` / ``test`` / ``bench``."""
    what = sys.argv[1] if len(sys.argv) > 1 else "run"
    extra = sys.argv[2:]
    if extra[:1] == ["--"]:
        extra = extra[1:]
    ensure_venv()
    if what == "run":
        return run(str(BIN / "solo"), "chat", *extra)
    if what == "test":
        for step in ([str(BIN / "ruff"), "check", "."],
                     [str(BIN / "lint-imports")],
                     [str(PYTHON), "-m", "pytest", *parallel(extra), *extra]):
            code = run(*step)
            if code:
                return code
        return 0
    if what == "bench":
        code = 0
        for script in sorted((ROOT / "bench").glob("*.py")):
            if script.name != "__init__.py":
                code = run(str(PYTHON), "-m", f"bench.{script.stem}", *extra) or code
        return code
    sys.exit(f"unknown command {what!r}: use run, test or bench")


if __name__ == "__main__":
    sys.exit(main())
