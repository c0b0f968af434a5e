"""Where an in-memory reader spills a query too large for memory, and a process writes files of its own
for a moment (a catalog table's); the sweep of what killed ones left.

DuckDB removes a spill directory when its connection closes; a reader killed before that (`kill -9`,
the OOM killer in the middle of a large sort) leaves it, gigabytes perhaps, in the temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PREFIX = "bt-sync-reader-"
# <prefix><the reader's PID>-<random>: PIDs are at most 7 digits (Linux's pid_max is 2^22).
_SPILL_NAME = re.compile(rf"{_PREFIX}(\d{{1,7}})-[0-9a-f]{{12}}")
# <prefix><random>: the name before it held the PID (a reader of an earlier bt-sync may still make one).
_UNOWNED_SPILL_NAME = re.compile(rf"{_PREFIX}[0-9a-f]{{12}}")
# A directory is swept once its process is gone and nothing was written in it for this long: the wait
# spares a reader in another PID namespace sharing this temporary directory, whose PID says nothing here.
_ABANDONED_AFTER_S = 3600
# A directory naming no process is swept after a longer wait: whether its reader lives, nothing can tell.
_UNOWNED_ABANDONED_AFTER_S = 24 * 3600


def spill_directory() -> Path:
    """A new spill directory for this process (DuckDB makes it when it first spills), after sweeping the
    directories of readers killed before they closed."""
    temp = Path(tempfile.gettempdir())
    _sweep_abandoned(temp)
    return temp / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"


@contextmanager
def scratch_directory() -> Iterator[Path]:
    """A new directory of this process's for files of a moment, deleted after the block (and by a later
    sweep, when the process was killed in it: a `TemporaryDirectory` stayed for good)."""
    directory = spill_directory()
    directory.mkdir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sweep_abandoned(temp: Path) -> None:
    now = time.time()
    for spill in temp.glob(f"{_PREFIX}*"):
        owned = _SPILL_NAME.fullmatch(spill.name)
        if owned is None and not _UNOWNED_SPILL_NAME.fullmatch(spill.name):
            continue
        try:
            untouched_s = now - _last_written(spill)
        except OSError:
            continue  # swept by another reader meanwhile
        if owned is None:
            abandoned = untouched_s > _UNOWNED_ABANDONED_AFTER_S
        else:
            abandoned = untouched_s > _ABANDONED_AFTER_S and not _alive(int(owned.group(1)))
        if abandoned:
            shutil.rmtree(spill, ignore_errors=True)


def _last_written(spill: Path) -> float:
    """When a file was last added to `spill` or written in it: DuckDB writes into files it made before,
    which leaves the directory's own time as it was."""
    return max([spill.stat().st_mtime, *(entry.stat().st_mtime for entry in spill.iterdir())])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
