"""Remember which batches of a push the API acknowledged, so a crashed push resumes.

One small JSON file per (input, options, dataset) under the state directory,
rewritten atomically after every acknowledged batch and guarded by a lock file
so two pushes of the same input cannot interleave. Batches are deterministic,
so a batch number means the same rows on every run. A file is known by its
path, size and modification time; a query's result, which has none of these,
by a digest of the events its rows make (see `connector.push.run`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout
from pydantic import Field

from connector.errors import PushError, StateError
from connector.push.options import PushOutcome
from connector.push.spelling import option
from connector.state_file import StateFile


def file_identity(file: Path) -> dict[str, Any]:
    """What names a file as it is now: any rewrite, replacement or edit of it makes another.

    The change time is in it because the modification time alone misses an edit whose tools put the
    old one back (`touch -r`, `cp -p`, `rsync -t`): setting it moves the change time, which no user can set.
    """
    stat = file.stat()
    return {
        "file": str(file.resolve()),
        "inode": stat.st_ino,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
    }


def checkpoint_key(identity: dict[str, Any], dataset_id: str, options: dict[str, Any]) -> str:
    """A name for the checkpoint of pushing this input, as it is now, with these options, into this dataset.

    Any change to the input or to an option that shapes the batches starts a fresh checkpoint.

    Args:
        identity: what names the input: `file_identity`, or a digest of a query's events.
        dataset_id: the target dataset.
        options: every option that changes which events the batches hold.
    """
    key = identity | {"dataset_id": dataset_id, "options": options}
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class _PushState(StateFile):
    """A push checkpoint's file.

    Args:
        source: the input file or query, for people reading the state directory.
        acked_below: every batch numbered below this was acknowledged.
        acked: batches at or above it acknowledged out of order.
        refused: rows of acknowledged batches the API refused even alone (`--on-error skip`), by row
            number, with its reason: a rerun writes them to its rejects file again.
        complete: every batch was acknowledged.
        outcome: once complete, what the push landed and rejected.
    """

    source: str
    acked_below: int = 0
    acked: list[int] = Field(default_factory=list)
    refused: dict[int, str] = Field(default_factory=dict)
    complete: bool = False
    outcome: PushOutcome | None = None


class PushCheckpoint:
    """The acknowledged batches of one push, saved after each change.

    Args:
        path: the checkpoint file.
        source: the input file or query, recorded for people reading the state directory.
    """

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        saved = _PushState.load(path, remedy=f"delete it or push again with {option('force', True)}")
        self._state = saved or _PushState(source=source)
        self._acked = set(self._state.acked)

    @property
    def complete(self) -> bool:
        """Whether every batch was acknowledged, so a rerun sends nothing."""
        return self._state.complete

    @property
    def outcome(self) -> PushOutcome | None:
        """What the complete push landed and rejected; None if not complete, or complete before
        checkpoints kept it."""
        return self._state.outcome

    def is_acked(self, batch: int) -> bool:
        """Whether batch number `batch` was acknowledged by an earlier or the current run."""
        return batch < self._state.acked_below or batch in self._acked

    def refused(self, rows: Iterable[int]) -> dict[int, str]:
        """Which of `rows` (of acknowledged batches) the API refused, with its reason."""
        refused = self._state.refused
        return {row: refused[row] for row in rows if row in refused}

    def ack(self, batch: int, refused: Mapping[int, str]) -> None:
        """Record batch number `batch` as acknowledged, but for its rows `refused` by the API, and save."""
        self._state.refused.update(refused)
        self._acked.add(batch)
        state = self._state
        # Acks arrive out of order with concurrency; fold the contiguous prefix into one number.
        while state.acked_below in self._acked:
            self._acked.remove(state.acked_below)
            state.acked_below += 1
        self.save()

    def mark_complete(self, outcome: PushOutcome) -> None:
        """Record that every batch was acknowledged, so a rerun sends nothing, and what landed."""
        self._state.complete = True
        self._state.outcome = outcome
        self.save()

    def save(self) -> None:
        """Save the checkpoint as it stands (`ack` and `mark_complete` do)."""
        self._state.acked = sorted(self._acked)
        # Not flushed to disk: a checkpoint lost to a power cut only means batches are sent again,
        # replacing rows by id, and a flush per batch would slow every push.
        self._state.save(self.path, durable=False)


@contextmanager
def locked_checkpoint(
    state_dir: Path, key: str, source: str, name: str, *, force: bool
) -> Iterator[PushCheckpoint]:
    """Open the checkpoint `key`, holding its lock until the block ends.

    Args:
        state_dir: the directory holding checkpoints; created if missing.
        key: from `checkpoint_key`.
        source: the input file or query, for the checkpoint's record.
        name: the input's name, for messages.
        force: forget what an earlier run acknowledged and start over.

    Raises:
        PushError: another process is pushing the same input into the same dataset.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StateError(f"cannot create the push state directory {state_dir} ({error.strerror})") from None
    path = state_dir / f"{key}.json"
    lock = FileLock(str(state_dir / f"{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise PushError(
            f"another bt-sync push of {name} into this dataset is running (lock {lock.lock_file})"
        ) from None
    try:
        if force:
            path.unlink(missing_ok=True)
        yield PushCheckpoint(path, source)
    finally:
        lock.release()
