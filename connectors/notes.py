"""The notes vault: one markdown file per note, written atomically, idempotent by key.

The file name carries a hash of the idempotency key, so a retried or re-sent create finds the
file it wrote before instead of writing a second one, and :meth:`reconcile` can look it up.
A note can be taken back: :meth:`compensate` proposes moving it to the vault's ``.trash`` folder
(under a name carrying that action's key, so the move is idempotent and reconcilable too).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Action, Connector, Diff, PermanentError, Receipt

CREATE_KIND = "note.create"
TRASH_KIND = "note.trash"
TRASH_DIR = ".trash"
MAX_NOTE = 100_000


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:6]
    return "-".join(words)[:48] or "note"


def _key_tag(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class NotesVaultConnector(Connector):
    """Markdown files in a directory.

    Args:
        path: the vault directory (created on first write).
    """

    name = "notes"

    def __init__(self, *, path: Path) -> None:
        self.path = Path(path)

    def action(self, text: str) -> Action:
        """The action that creates a note holding ``text``."""
        return Action(kind=CREATE_KIND, connector=self.name, args={"text": text})

    def _text(self, action: Action) -> str:
        if action.kind != CREATE_KIND:
            raise PermanentError(f"notes cannot perform {action.kind}")
        text = action.args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PermanentError("the note is empty")
        if len(text) > MAX_NOTE:
            raise PermanentError(f"the note is {len(text)} characters; the limit is {MAX_NOTE}")
        return text

    def _note(self, action: Action) -> Path:
        """The vault file a ``note.trash`` action names (a bare file name, nothing outside)."""
        name = action.args.get("file")
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".md"):
            raise PermanentError(f"not a note file name: {name!r}")
        return self.path / name

    def _find(self, key: str) -> Path | None:
        matches = sorted(self.path.glob(f"*--{_key_tag(key)}.md")) if self.path.is_dir() else []
        return matches[0] if matches else None

    def _target(self, text: str, key: str) -> Path:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        return self.path / f"{day}-{_slug(text)}--{_key_tag(key)}.md"

    async def preview(self, action: Action) -> Diff:
        """The new file and its contents (or, for a trash action, the file that moves)."""
        if action.kind == TRASH_KIND:
            path = self._note(action)
            if not path.is_file():
                raise PermanentError(f"there is no note {path.name} in the vault any more")
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            return Diff(title="Move a note to the trash",
                        fields=(("file", path.name, f"{TRASH_DIR}/{path.name}"),
                                ("text", None, text.split("---\n\n", 1)[-1].strip())))
        text = self._text(action)
        return Diff(title=f"New note in {self.path}",
                    fields=(("file", None, self._target(text, "<key>").name), ("text", None, text)))

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Write the note unless the file for this key exists already (or move it to the
        trash, for a trash action)."""
        if action.kind == TRASH_KIND:
            return await self._trash(action, idempotency_key)
        text = self._text(action)
        path, created = await asyncio.to_thread(self._write, text, idempotency_key)
        summary = f"note saved as {path.name}" if created else f"note already saved as {path.name}"
        return Receipt.for_key(connector=self.name, idempotency_key=idempotency_key,
                               summary=summary, ref=str(path), reconciled=not created)

    def _write(self, text: str, key: str) -> tuple[Path, bool]:
        existing = self._find(key)
        if existing is not None:
            return existing, False
        self.path.mkdir(parents=True, exist_ok=True)
        target = self._target(text, key)
        tmp = target.with_suffix(".tmp")
        created = datetime.now(UTC).isoformat()
        body = f"---\nidempotency_key: {key}\ncreated: {created}\n---\n\n{text}\n"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target, True

    async def _trash(self, action: Action, key: str) -> Receipt:
        source = self._note(action)
        trash = self.path / TRASH_DIR
        target = trash / f"{source.stem}--undo-{_key_tag(key)}.md"

        def move() -> bool:
            if target.exists():
                return False
            if not source.is_file():
                raise PermanentError(f"there is no note {source.name} in the vault any more")
            trash.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            return True

        moved = await asyncio.to_thread(move)
        return Receipt.for_key(connector=self.name, idempotency_key=key,
                               summary=f"note {source.name} moved to the trash",
                               ref=str(target), reconciled=not moved)

    async def compensate(self, receipt: Receipt) -> Action | None:
        """A created note is taken back by moving it to the trash; a trashed one stays."""
        path = Path(receipt.ref)
        if path.parent != self.path or not path.name.endswith(".md"):
            return None
        return Action(kind=TRASH_KIND, connector=self.name, args={"file": path.name})

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """The receipt if the note (or the trashed note) for this key is on disk."""
        trashed = sorted((self.path / TRASH_DIR).glob(f"*--undo-{_key_tag(idempotency_key)}.md")) \
            if (self.path / TRASH_DIR).is_dir() else []
        if trashed:
            return Receipt.for_key(connector=self.name, idempotency_key=idempotency_key,
                                   summary=f"note moved to the trash as {trashed[0].name}",
                                   ref=str(trashed[0]), reconciled=True)
        path = await asyncio.to_thread(self._find, idempotency_key)
        if path is None:
            return None
        return Receipt.for_key(connector=self.name, idempotency_key=idempotency_key,
                               summary=f"note saved as {path.name}", ref=str(path), reconciled=True)
