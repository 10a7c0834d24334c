"""Playbook files as a connector: a playbook defined in chat is saved through the gate.

``playbook.save`` writes ``<data_dir>/playbooks/NAME.toml`` (atomically: a temporary file,
fsync, rename). The card shows the whole file, and the file it replaces, if any. Saving the same
text again is a no-op, so a retry or a reconcile after a crash never writes twice; a changed
text is a new version of the playbook (runs in flight keep theirs).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from connectors.base import Action, Connector, Diff, PermanentError, Receipt

SAVE_KIND = "playbook.save"


class PlaybookFilesConnector(Connector):
    """See the module docstring.

    Args:
        path: the playbooks folder.
    """

    name = "playbooks"

    def __init__(self, *, path: Path) -> None:
        self.path = path

    def action(self, name: str, text: str) -> Action:
        """The action that saves ``text`` as playbook ``name``."""
        return Action(kind=SAVE_KIND, connector=self.name, args={"name": name, "text": text})

    def _target(self, action: Action) -> tuple[Path, str]:
        if action.kind != SAVE_KIND:
            raise PermanentError(f"playbooks cannot perform {action.kind}")
        name = str(action.args.get("name") or "")
        if not name or "/" in name or name.startswith("."):
            raise PermanentError(f"{name!r} is not a playbook name")
        return self.path / f"{name}.toml", str(action.args.get("text") or "")

    async def preview(self, action: Action) -> Diff:
        """The file, and what it replaces."""
        target, text = self._target(action)
        before = await asyncio.to_thread(_read, target)
        return Diff(title=f"Save playbook {target.stem}",
                    fields=(("file", before and target.name, target.name),
                            ("playbook", before, text)))

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Write the file unless it already holds this text."""
        target, text = self._target(action)
        written = await asyncio.to_thread(self._write, target, text)
        return Receipt.for_key(
            connector=self.name, idempotency_key=idempotency_key, ref=str(target),
            summary=f"playbook {target.stem} saved" if written else
            f"playbook {target.stem} was already saved", reconciled=not written)

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """After a crash: done when the file holds the text (else write it: None)."""
        if action is None:
            return None
        target, text = self._target(action)
        if await asyncio.to_thread(_read, target) != text:
            return None
        return Receipt.for_key(connector=self.name, idempotency_key=idempotency_key,
                               summary=f"playbook {target.stem} saved", ref=str(target),
                               reconciled=True)

    def suggested_risk(self, action: Action) -> str | None:
        """A playbook acts on its own later: saving one always asks."""
        return "medium"

    def _write(self, target: Path, text: str) -> bool:
        if _read(target) == text:
            return False
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".toml.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
