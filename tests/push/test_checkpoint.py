"""Push checkpoints: acknowledged batches survive a restart; two pushes of one input cannot interleave."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest

from connector.errors import PushError, StateError
from connector.push.checkpoint import PushCheckpoint, checkpoint_key, file_identity, locked_checkpoint
from connector.push.options import PushOutcome


def test_acks_out_of_order_survive_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    checkpoint = PushCheckpoint(path, "data.csv")
    for batch in (1, 0, 2):
        checkpoint.ack(batch, {})
    checkpoint.ack(5, {51: "the API refused the row"})
    # The contiguous prefix is folded into one number: the file stays small however many batches.
    assert orjson.loads(path.read_bytes()) == {
        "format_version": 1, "source": "data.csv", "acked_below": 3, "acked": [5],
        "refused": {"51": "the API refused the row"}, "complete": False, "outcome": None,
    }  # fmt: skip
    reloaded = PushCheckpoint(path, "data.csv")
    assert [n for n in range(7) if reloaded.is_acked(n)] == [0, 1, 2, 5]
    assert reloaded.refused(range(50, 53)) == {51: "the API refused the row"}
    assert not reloaded.complete
    outcome = PushOutcome(rows_sent=60, rows_skipped=1, rows_duplicate=2, rejects="rejects.jsonl")
    reloaded.mark_complete(outcome)
    again = PushCheckpoint(path, "data.csv")
    assert (again.complete, again.outcome) == (True, outcome)


def test_an_unreadable_checkpoint_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match=r"unreadable .*--force"):
        PushCheckpoint(path, "data.csv")


def test_the_key_changes_with_the_file_and_the_options(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("input\nq\n")
    key = checkpoint_key(file_identity(data), "ds1", {"batch_rows": 500})
    assert key == checkpoint_key(file_identity(data), "ds1", {"batch_rows": 500})
    assert key != checkpoint_key(file_identity(data), "ds2", {"batch_rows": 500})
    assert key != checkpoint_key(file_identity(data), "ds1", {"batch_rows": 100})
    data.write_text("input\nq\nr\n")
    assert key != checkpoint_key(file_identity(data), "ds1", {"batch_rows": 500})
    # A copy with the same size and time is another file: it must not pass for one already pushed.
    copy = tmp_path / "copy.csv"
    copy.write_bytes(data.read_bytes())
    os.utime(copy, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns))
    assert checkpoint_key(file_identity(copy), "ds1", {}) != checkpoint_key(file_identity(data), "ds1", {})


def test_one_push_of_a_file_at_a_time(tmp_path: Path) -> None:
    with locked_checkpoint(tmp_path, "k", "data.csv", "data.csv", force=False) as checkpoint:
        checkpoint.ack(0, {})
        with (
            pytest.raises(PushError, match=r"another bt-sync push of data\.csv"),
            locked_checkpoint(tmp_path, "k", "data.csv", "data.csv", force=False),
        ):
            pass
    with locked_checkpoint(tmp_path, "k", "data.csv", "data.csv", force=True) as forced:
        assert not forced.is_acked(0)


def test_a_checkpoint_of_another_format_version_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    checkpoint = PushCheckpoint(path, "data.csv")
    checkpoint.ack(0, {})
    saved = json.loads(path.read_text())
    assert saved["format_version"] == 1 and saved["acked_below"] == 1
    path.write_text(json.dumps(saved | {"format_version": 2}))
    with pytest.raises(StateError, match=r"format version 2, this bt-sync reads 1; delete it or .*--force"):
        PushCheckpoint(path, "data.csv")
