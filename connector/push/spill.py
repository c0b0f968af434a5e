"""Directories where a push's DuckDB spills what does not fit in memory, and the sweep of killed ones'.

DuckDB writes its spill files into a directory it is given; a push killed (`kill -9`, an OOM kill)
never removes its own, which can hold gigabytes. Each directory's name holds its process's id, so
the next push removes those whose process is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_PREFIX = "bt-sync-push-"


def spill_directory(purpose: str) -> tempfile.TemporaryDirectory[str]:
    """A new spill directory in the temporary directory (`TMPDIR`), after sweeping killed pushes' ones.

    Args:
        purpose: a word naming what spills there (`ids`, `sql`), for whoever finds the directory.
    """
    _sweep_killed()
    return tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{purpose}-{os.getpid()}-")


def _sweep_killed() -> None:
    for directory in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*-*"):
        pid = directory.name.removeprefix(_PREFIX).split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
