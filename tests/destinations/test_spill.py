"""Files of a moment in the temporary directory: named for the process, so a killed one's are swept."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from connector.destinations.spill import scratch_directory


def test_a_scratch_directory_is_named_for_its_process_and_gone_after_its_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A catalog table's file was written in a `TemporaryDirectory`: a sync killed then left it for good.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with scratch_directory() as directory:
        assert directory.parent == tmp_path and directory.is_dir()
        assert directory.name.startswith(f"bt-sync-reader-{os.getpid()}-")
        (directory / "table.parquet").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
