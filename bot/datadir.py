"""The data directory is private: facts, mail, the audit log and messages live there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private(data_dir: Path) -> None:
    """Create ``data_dir`` as 0700; when it is not private yet, take group and other permissions
    off everything already in it (a data directory made by an older version was
    world-readable).

    New files are private because the ``solo`` process runs with :data:`PRIVATE_UMASK`; this
    covers what existed before and a directory that an operator created by hand.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not stat.S_IMODE(data_dir.stat().st_mode) & 0o077:
        # Already private: nothing inside is reachable by others, and what this process writes
        # is private anyway, so start-up need not walk the vault and the model files each time.
        return
    for root, dirs, files in os.walk(data_dir):
        for name in [root, *(os.path.join(root, d) for d in dirs)]:
            _tighten(name, 0o700)
        for name in files:
            _tighten(os.path.join(root, name), 0o600)


def _tighten(path: str, mode: int) -> None:
    try:
        current = os.lstat(path)
    except FileNotFoundError:  # a WAL file or a temporary note gone since the walk began
        return
    if stat.S_ISLNK(current.st_mode):
        return  # never follow a link out of the data directory
    if stat.S_IMODE(current.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(current.st_mode) & 0o700 | (mode & 0o700))
