"""A push's spill directories: those of killed pushes are swept by the next one, never a live one's."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from connector.push.spill import YOUNG_S, SpillDirectory

LIVE_PUSH = (
    "import sys, time; from connector.push.spill import SpillDirectory; "
    "d = SpillDirectory('sql'); print(d.name, flush=True); time.sleep(60)"
)


def test_the_next_push_sweeps_what_killed_pushes_left_and_keeps_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = subprocess.run(
        [sys.executable, "-c", LIVE_PUSH.replace("60", "0")], env=env, capture_output=True
    )
    left = Path(killed.stdout.decode().strip())  # its process ended without removing it, as a kill -9 would
    (left / "duckdb_temp_storage").mkdir()
    live = subprocess.Popen([sys.executable, "-c", LIVE_PUSH], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None
        running = Path(live.stdout.readline().strip())
        long_ago = time.time() - YOUNG_S - 60
        for directory in (left, running):  # both old enough to be swept, were they not in use
            os.utime(directory, (long_ago, long_ago))
        unrelated = tmp_path / "bt-sync-push-notes"
        unrelated.mkdir()
        mine = SpillDirectory("ids")
        try:
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                [running.name, unrelated.name, Path(mine.name).name]
            )
        finally:
            mine.cleanup()
        assert not Path(mine.name).exists()
    finally:
        live.kill()
        live.wait()
