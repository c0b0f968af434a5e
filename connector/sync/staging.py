"""Local staging of fetched rows, with a checkpoint so a killed sync resumes.

Per object there is one directory holding Parquet part files and
`checkpoint.json`. A part is written to a temporary name and renamed, and only
then is the checkpoint (atomically) rewritten to list it together with the
page position after it. So after a crash at any point the checkpoint names
exactly the complete parts and where to continue fetching.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from filelock import FileLock, Timeout
from pydantic import BaseModel, ValidationError

from connector.api.pagination import PagePosition
from connector.errors import StateError, WarehouseLocked
from connector.sync.shape import STAGING_SCHEMA
from connector.sync.transform import write_typed_part
from schemas.api import ObjectType
from schemas.tables import EventStream

CHECKPOINT_FILE = "checkpoint.json"


class Checkpoint(BaseModel):
    """Progress of one object's extraction.

    Args:
        version: the pinned `_xact_id` every page was fetched at.
        watermark: the newest row's `_xact_id` when the read started; stored as
            `sync_state.version` once the merge commits.
        cutoff: versions at or below this were already synced (None: full read).
        started_at: when the read began; a `sync_state` committed later already holds its rows.
        position: where the next page starts.
        parts: staged part files, in fetch order.
        done: every page was fetched; only the merge is left.
        pages: pages fetched so far.
        rows_fetched: row versions received so far (before the cutoff filter).
    """

    version: int
    watermark: int
    cutoff: int | None
    started_at: datetime
    position: PagePosition = PagePosition()
    parts: list[str] = []
    done: bool = False
    pages: int = 0
    rows_fetched: int = 0


class ObjectStaging:
    """The staging directory of one object."""

    def __init__(self, root: Path, object_type: ObjectType, object_id: str) -> None:
        self.directory = root / object_type.value / object_id
        self.object_id = object_id

    @contextmanager
    def locked(self, wait_s: float) -> Iterator[None]:
        """Hold the object's lock, waiting up to `wait_s` for another process that holds it."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{self.directory}.lock")
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise WarehouseLocked(
                f"another bt-sync process is syncing {self.directory.parent.name} {self.directory.name} "
                f"into this warehouse; it still held it after {wait_s:.0f}s"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def load(self) -> Checkpoint | None:
        """Return the checkpoint left by an interrupted sync, if any."""
        path = self.directory / CHECKPOINT_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return Checkpoint.model_validate_json(text)
        except ValidationError:
            raise StateError(
                f"the staging checkpoint {path} is corrupt; delete {self.directory} to re-fetch this object"
            ) from None

    def save(self, checkpoint: Checkpoint) -> None:
        """Atomically replace the checkpoint."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.directory / CHECKPOINT_FILE, checkpoint.model_dump_json().encode())

    def write_part(self, stream: EventStream, batches: list[pa.RecordBatch], number: int) -> str:
        """Type `batches` into the table's columns, write them as part `number`, return its file name."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{number:06d}.parquet"
        temporary = self.directory / f".{name}.tmp"
        write_typed_part(stream, self.object_id, pa.Table.from_batches(batches, STAGING_SCHEMA), temporary)
        os.replace(temporary, self.directory / name)
        return name

    def part_paths(self, checkpoint: Checkpoint) -> list[Path]:
        """Absolute paths of the checkpoint's parts."""
        return [self.directory / name for name in checkpoint.parts]

    def clear(self) -> None:
        """Remove everything staged for the object (after its merge committed)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
