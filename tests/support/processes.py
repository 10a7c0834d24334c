"""Running the real ``solo serve`` process in tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY = "solo serve: running"


async def solo(*args: str, stdin: str = "", env: dict | None = None, cwd: Path = ROOT,
               timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``solo ARGS`` without blocking the loop (the fake servers live in it)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOLO_")}
    clean["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})}, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


def write_serve_config(tmp_path: Path, telegram_section: str, extra: str = "") -> Path:
    """``solo.toml`` in ``tmp_path``: data under ``tmp_path/data``, the given ``[telegram]``
    section (``FakeTelegramServer.config_section()``), then ``extra`` TOML."""
    config = tmp_path / "solo.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n{telegram_section}{extra}')
    return config


async def start_serve(config: Path, log: Path, *,
                      config_first: bool = False) -> asyncio.subprocess.Process:
    """Start ``solo serve --config CONFIG`` (the README's form; ``config_first`` puts the option
    before the subcommand) with its stderr appended to ``log``; return once it says it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLO_")}
    ready_before = log.read_text().count(READY) if log.exists() else 0
    args = ["--config", str(config), "serve"] if config_first else \
        ["serve", "--config", str(config)]
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *args,
            stderr=stderr, stdout=asyncio.subprocess.DEVNULL, env=env, cwd=ROOT)
    # Generous: a busy 2-core machine may take long to import and to open the stores.
    for _ in range(1200):
        if log.read_text().count(READY) > ready_before:
            return proc
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"solo serve did not start:\n{log.read_text()[-3000:]}")


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` if it still runs."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def idle_rss_mib(config: Path, log: Path, *, settle_seconds: float = 3.0) -> float:
    """Resident memory of an idle ``solo serve`` started with ``config`` (Linux ``/proc``)."""
    proc = await start_serve(config, log)
    try:
        await asyncio.sleep(settle_seconds)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmRSS:"))) / 1024
    finally:
        proc.terminate()
        await proc.wait()
