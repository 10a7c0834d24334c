"""The crash campaign: kill -9 of the real ``solo`` process at random points of every effectful
flow, then restart it, against recording receivers — and count what went wrong.

    SOLO_CRASH_TRIALS=1000 python -m bench.crash_campaign

splits the trials over the flows (webhook send 40%, multi-step plans 30%, email 20%, calendar
events the rest, at most 30 — each booking is a real CalDAV round trip — whose remainder goes
to the webhook flow), runs each flow's crash
scenario (``tests/scenarios``, ``pytest -m crash``) with its share, plus the undo-window and
MCP-in-flight crash scenarios once each, and prints per flow: trials, actions checked, lost,
doubled and wrongly executed (rejected, never asked for or halted, yet carried out). Every flow
draws its kill points from its own seed, printed for replay (``SOLO_CRASH_SEED``). It needs what
the test suite needs (Dovecot and Radicale for mail and calendar: ``.ci/run`` installs them);
a flow that cannot run fails the campaign loudly. CI runs the same scenarios with 50 trials each.

Flows run ``SOLO_CRASH_PARALLEL`` at a time (default 2, one per core: a trial is mostly starting
the process again), each against its own servers and data, longest first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"
SHARES = (("test_crash_recovery.py", 0.4, None), ("test_crash_multistep.py", 0.3, None),
          ("test_email_crash.py", 0.2, None), ("test_event_crash.py", 0.1, 30))
ONCE = ("test_undo_window_crash.py", "test_mcp_crash.py")


def run(module: str, trials: int, report: Path) -> tuple[bool, float]:
    """One scenario under pytest; whether it passed, and its seconds."""
    env = {**os.environ, "SOLO_CRASH_TRIALS": str(trials), "SOLO_CRASH_REPORT": str(report),
           "SOLO_REQUIRE_MAIL": os.environ.get("SOLO_REQUIRE_MAIL", "1")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(SCENARIOS / module)], cwd=ROOT, env=env, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        print(done.stdout[-4000:])
    return done.returncode == 0, time.monotonic() - started


def main() -> int:
    """Run the campaign; 0 only when every flow ran and nothing was lost, doubled or wrong."""
    total = int(os.environ.get("SOLO_CRASH_TRIALS", "100"))
    parallel = max(1, int(os.environ.get("SOLO_CRASH_PARALLEL", "2")))
    plan = []
    for module, share, cap in SHARES:
        trials = max(1, round(total * share))
        plan.append((module, min(trials, cap) if cap else trials))
    # What a capped flow does not take goes to the first (webhook) flow: the total is asked for.
    plan[0] = (plan[0][0], plan[0][1] + max(0, total - sum(t for _, t in plan)))
    plan += [(module, 1) for module in ONCE]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:

        def one(item: tuple[str, int]) -> tuple[str, bool]:
            module, trials = item
            passed, took = run(module, trials, Path(tmp) / f"{module}.jsonl")
            print(f"{module}: {trials} trials, {took:.0f} s, {'ok' if passed else 'FAILED'}",
                  flush=True)
            return module, passed

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = list(pool.map(one, sorted(plan, key=lambda p: -p[1])))
        lines = [json.loads(line) for report in sorted(Path(tmp).glob("*.jsonl"))
                 for line in report.read_text().splitlines()]
    seconds = time.monotonic() - started
    print(f"\n{'flow':<18}{'trials':>8}{'actions':>9}{'lost':>6}{'doubled':>9}{'wrong':>7}")
    for line in lines:
        print(f"{line['flow']:<18}{line['trials']:>8}{line['actions']:>9}{line['lost']:>6}"
              f"{line['doubled']:>9}{line['wrong']:>7}   seed {line['seed']}")
    sums = {k: sum(line[k] for line in lines)
            for k in ("trials", "actions", "lost", "doubled", "wrong")}
    singles = sum(passed for module, passed in results if module in ONCE)
    print(f"{'all':<18}{sums['trials']:>8}{sums['actions']:>9}{sums['lost']:>6}"
          f"{sums['doubled']:>9}{sums['wrong']:>7}")
    print(f"plus {singles}/{len(ONCE)} single-crash scenarios (undo window, MCP call in "
          f"flight) held; {seconds / 60:.1f} min wall clock ({parallel} at a time), "
          f"{seconds / max(sums['trials'], 1):.1f} s per trial")
    ok = all(passed for _, passed in results) and len(lines) == len(SHARES) and \
        sums["lost"] == sums["doubled"] == sums["wrong"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
