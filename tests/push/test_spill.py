"""A push's spill directories: those of killed pushes are swept by the next one, never a live one's."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from connector.push.spill import spill_directory


def test_the_next_push_sweeps_what_killed_pushes_left_and_keeps_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead, live = int(ended.stdout), os.getppid()
    killed = tmp_path / f"bt-sync-push-ids-{dead}-x1y2z3"
    (killed / "duckdb_temp_storage").mkdir(parents=True)  # a killed push's spill, gigabytes at worst
    running = tmp_path / f"bt-sync-push-sql-{live}-a1b2c3"
    running.mkdir()
    unrelated = tmp_path / "bt-sync-push-notes"
    unrelated.mkdir()
    with spill_directory("ids") as mine:
        assert Path(mine).name.startswith(f"bt-sync-push-ids-{os.getpid()}-")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [running.name, unrelated.name, Path(mine).name]
        )
