"""What a crash campaign found, counted rather than stopped at the first failure, so a run of a
thousand trials reports every lost, doubled or wrongly executed action (``bench/crash_campaign.py``
adds the reports of every flow together)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


@dataclass
class CrashTally:
    """One flow's campaign: ``check`` each action against what should have happened."""

    flow: str
    seed: int
    trials: int = 0
    checked: int = 0
    lost: list[str] = field(default_factory=list)
    """Approved, yet never carried out."""
    doubled: list[str] = field(default_factory=list)
    """Carried out more than once."""
    wrong: list[str] = field(default_factory=list)
    """Carried out though it was rejected, never asked for, or halted by a rejected step."""

    def check(self, name: str, *, expected: int, got: int) -> None:
        """``got`` effects of action ``name`` where ``expected`` (0 or 1) were due."""
        self.checked += 1
        if got < expected:
            self.lost.append(name)
        elif got > expected:
            (self.doubled if expected else self.wrong).append(name)

    def report(self) -> None:
        """Print the counts, and append them as a JSON line to ``$SOLO_CRASH_REPORT`` (the
        campaign's collection file) when it is set; then fail if anything went wrong."""
        line = {"flow": self.flow, "seed": self.seed, "trials": self.trials,
                "actions": self.checked, "lost": len(self.lost),
                "doubled": len(self.doubled), "wrong": len(self.wrong)}
        print(f"crash campaign {json.dumps(line)}")
        if path := os.environ.get("SOLO_CRASH_REPORT"):
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
        assert not (self.lost or self.doubled or self.wrong), (
            f"seed {self.seed}: lost {self.lost}, doubled {self.doubled}, wrong {self.wrong}")
