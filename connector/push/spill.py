"""Directories where a push's DuckDB spills what does not fit in memory, and the sweep of killed ones'.

DuckDB writes its spill files into a directory it is given; a push killed (`kill -9`, an OOM kill)
never removes its own, which can hold gigabytes. Each push holds a lock on a file in its directory
while it lives, so the next push removes the directories whose lock nobody holds. A lock, not a
process id: pushes in containers sharing a temporary volume each see only their own processes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from filelock import FileLock, Timeout

_PREFIX = "bt-sync-push-"
_OWNER = ".owner.lock"
YOUNG_S = 60


class SpillDirectory:
    """A new spill directory in the temporary directory (`TMPDIR`), after sweeping killed pushes' ones.

    Args:
        purpose: a word naming what spills there (`ids`, `sql`), for whoever finds the directory.
    """

    def __init__(self, purpose: str) -> None:
        _sweep_killed()
        self.name = tempfile.mkdtemp(prefix=f"{_PREFIX}{purpose}-")
        self._owner = FileLock(str(Path(self.name) / _OWNER))
        self._owner.acquire()

    def cleanup(self) -> None:
        """Remove the directory and what spilled there."""
        self._owner.release()
        shutil.rmtree(self.name, ignore_errors=True)


def _sweep_killed() -> None:
    # Not one made this last minute: its push may be between making it and locking its file.
    made_before = time.time() - YOUNG_S
    for directory in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        owner = directory / _OWNER
        with suppress(OSError):  # gone meanwhile
            if not owner.is_file() or directory.stat().st_mtime > made_before:
                continue
        lock = FileLock(str(owner))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):  # its push is alive, or the directory is not ours to touch
            continue
        try:
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            lock.release()
