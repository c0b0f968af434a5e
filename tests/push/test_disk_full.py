"""A full disk under a push: one line naming where, nothing sent (sending as it checks: what was sent),
and a rerun that sends every row once."""

from __future__ import annotations

import re
import subprocess
from contextlib import suppress
from pathlib import Path

import orjson
import pytest

from connector.emulator import Emulator, ListQuery
from tests.helpers import SmallDisk, one_line, run_cli
from tests.push.helpers import inserts

# About 3 MB of events: more than the small disk (2 MB) holds.
ROWS = 3000


def rows_file(directory: Path) -> Path:
    path = directory / "rows.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": f"r{n}", "input": "x" * 999}) + b"\n" for n in range(ROWS)))
    return path


def push(
    emulator: Emulator, path: Path, state: Path, *args: str, file_size_limit: int | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    where = ("--project", "p", "--dataset", "d", "--api-url", emulator.url, "--state-dir", str(state))
    return run_cli(
        "push",
        str(path),
        *where,
        *args,
        env={"BRAINTRUST_API_KEY": emulator.api_key, **env},
        file_size_limit=file_size_limit,
    )


def stored_rows(emulator: Emulator) -> int:
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name="d"))
    return emulator.store.live_count("dataset", dataset["id"])


def fill(disk: SmallDisk) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk.path / "filler"
    # Unbuffered: the write that finds the disk full raises here, not when the file is closed.
    with suppress(OSError), filler.open("wb", buffering=0) as handle:
        while handle.write(b"\0" * 65_536):
            pass
    return filler


def test_a_temporary_directory_without_room_for_the_checked_events_names_it_and_sends_nothing(
    emulator: Emulator, small_disk: SmallDisk, tmp_path: Path
) -> None:
    path = rows_file(tmp_path)
    done = push(emulator, path, tmp_path / "state", TMPDIR=str(small_disk.path))
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"bt-sync: error: cannot keep the checked events in {small_disk.path}: No space left on device; "
        "a push keeps them there, about as many bytes as it sends, until it ends: free space there or "
        "set TMPDIR to a directory with more (nothing was sent)"
    )
    assert inserts(emulator) == 0
    assert emulator.store.list_objects("project", ListQuery()) == []
    assert list(small_disk.path.iterdir()) == []  # the temporary file went with the push
    small_disk.grow(16)
    assert push(emulator, path, tmp_path / "state", TMPDIR=str(small_disk.path)).returncode == 0
    assert (inserts(emulator), stored_rows(emulator)) == (ROWS, ROWS)


def test_a_temporary_file_over_the_process_s_file_size_limit_is_told_so_not_to_find_room(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Under `ulimit -f`, "free space there or set TMPDIR to a directory with more" helped nothing.
    done = push(emulator, rows_file(tmp_path), tmp_path / "s", file_size_limit=1 << 20)
    assert done.returncode == 1
    assert one_line(done.stderr).endswith(
        ": File too large; this process may write files of at most 1,048,576 bytes (its file-size limit, "
        "`ulimit -f`); a push keeps them there, about as many bytes as it sends, until it ends (nothing was "
        "sent)"
    )
    assert inserts(emulator) == 0


def test_a_full_state_directory_names_the_checkpoint_and_the_rerun_sends_every_row_once(
    emulator: Emulator, small_disk: SmallDisk, tmp_path: Path
) -> None:
    path = rows_file(tmp_path)
    state = small_disk.path / "state"
    filler = fill(small_disk)
    done = push(emulator, path, state)
    assert done.returncode == 1
    error = one_line(done.stderr)
    assert error.startswith(f"bt-sync: error: No space left on device: {state / 'push'}/"), error
    assert error.endswith(".json")
    assert list((state / "push").glob("*.tmp")) == []
    assert inserts(emulator) == 0
    filler.unlink()
    assert push(emulator, path, state).returncode == 0
    assert (inserts(emulator), stored_rows(emulator)) == (ROWS, ROWS)


# Rows cut short, each written to the rejects file with its 1 kB of text: three fit the file's buffer, so
# only its last flush meets the full disk; ROWS fill the buffer again and again.
@pytest.mark.parametrize("broken_rows", [3, ROWS])
def test_a_rejects_file_on_a_full_disk_is_named_and_nothing_is_sent(
    emulator: Emulator, small_disk: SmallDisk, tmp_path: Path, broken_rows: int
) -> None:
    path = tmp_path / "rows.jsonl"
    broken = (b'{"id": "r%d", "input": "%s"\n' % (n, b"x" * 999) for n in range(broken_rows))
    path.write_bytes(b'{"id": "ok", "input": "fine"}\n' + b"".join(broken))
    rejects = small_disk.path / "rejects.jsonl"
    skip = ("--on-error", "skip", "--rejects", str(rejects))
    fill(small_disk)
    done = push(emulator, path, tmp_path / "state", *skip)
    assert done.returncode == 1
    message = f"--rejects {rejects}: No space left on device (nothing was sent)"
    assert one_line(done.stderr) == f"bt-sync: error: {message}"
    assert inserts(emulator) == 0
    small_disk.grow(16)
    assert push(emulator, path, tmp_path / "state", *skip).returncode == 0
    assert (inserts(emulator), stored_rows(emulator)) == (1, 1)
    assert len(rejects.read_bytes().splitlines()) == broken_rows


def test_sending_as_it_checks_a_rejects_file_on_a_full_disk_says_what_was_sent_and_the_rerun_resumes(
    emulator: Emulator, small_disk: SmallDisk, tmp_path: Path
) -> None:
    path = tmp_path / "rows.jsonl"
    good = (b'{"id": "ok%d", "input": "fine"}\n' % n for n in range(1500))
    broken = (b'{"id": "r%d", "input": "%s"\n' % (n, b"x" * 999) for n in range(ROWS))
    path.write_bytes(b"".join(good) + b"".join(broken))
    rejects = small_disk.path / "rejects.jsonl"
    way = ("--no-validate-first", "--batch-rows", "100", "--on-error", "skip", "--rejects", str(rejects))
    fill(small_disk)
    done = push(emulator, path, tmp_path / "state", *way)
    assert done.returncode == 1
    sent = re.fullmatch(
        rf"bt-sync: error: --rejects {re.escape(str(rejects))}: No space left on device \(([\d,]+) rows "
        r"were sent and are checkpointed: the same file pushed again resumes after them, .*\)",
        one_line(done.stderr),
    )
    assert sent, done.stderr
    assert 0 < int(sent[1].replace(",", "")) == inserts(emulator) < 1500
    small_disk.grow(16)
    assert push(emulator, path, tmp_path / "state", *way).returncode == 0
    # The rows sent before the disk filled are not sent again.
    assert (inserts(emulator), stored_rows(emulator)) == (1500, 1500)
    assert len(rejects.read_bytes().splitlines()) == ROWS
