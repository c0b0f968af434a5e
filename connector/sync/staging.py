"""Local scratch space of one object's read: staged Parquet parts and a checkpoint, so a killed sync resumes.

Per object there is one directory holding part files and `checkpoint.json`.
A part is written under a temporary name and renamed; only then is the
checkpoint (atomically) rewritten to list it together with the page position
after it. So after a crash at any point the checkpoint names exactly the
complete parts and where to continue fetching.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from connector.api.pagination import PagePosition
from connector.destinations.base import ObjectRef, StagedParts
from connector.display import counted
from connector.errors import WarehouseError, one_line_reason
from connector.state_file import StateFile

CHECKPOINT_FILE = "checkpoint.json"


class Checkpoint(StateFile):
    """Progress of one object's read.

    Args:
        version: the pinned `_xact_id` every page is fetched at.
        watermark: the newest row's `_xact_id` when the read started, raised to the newest on its
            first page with rows; the object's watermark once the merge commits.
        cutoff: versions at or below this were already synced (None: a full read).
        started_at: when the read began; a state committed later already holds its rows.
        read_at: when it began by the API's clock (the `Date` of its answer for the newest version);
            None where the API gave none, and in checkpoints written before it was kept.
        existed_up_to: every row up to this `_xact_id` was written before the read began (the newest
            row then, or the watermark committed then, if greater), or before its first page (the
            newest on it): a full read meets each that is live, so a reconcile takes one it did not
            meet for deleted. A newer row may have been written since, and committed by another
            worker, unseen by this read. No clock is read: this machine's may be off from the API's.
            None in checkpoints written before it was kept.
        position: where the next page starts.
        parts: staged part files, newest rows first.
        done: every page was fetched; only the merge is left.
        pages: pages fetched so far.
        rows_fetched: row versions received so far (before the cutoff and duplicates are dropped).
        rows_staged: rows in the parts.
        ordered: every page so far came newest first, so each id was staged once, as its newest version.
        oldest_xact: the smallest `_xact_id` received so far (where the next page must start below).
    """

    FORMAT = 1

    version: int
    watermark: int
    cutoff: int | None
    started_at: datetime
    read_at: datetime | None = None
    existed_up_to: int | None = None
    position: PagePosition = PagePosition()
    parts: list[str] = Field(default_factory=list)
    done: bool = False
    pages: int = 0
    rows_fetched: int = 0
    rows_staged: int = 0
    ordered: bool = True
    oldest_xact: int | None = None

    @property
    def existed_bound(self) -> int:
        """`existed_up_to`, or for a checkpoint written before it was kept, its watermark."""
        return self.watermark if self.existed_up_to is None else max(self.existed_up_to, self.watermark)


class ObjectStaging:
    """The scratch directory of one object's read.

    Args:
        root: the scratch root of one destination.
        ref: the object.
    """

    def __init__(self, root: Path, ref: ObjectRef) -> None:
        self.object_id = ref.object_id
        self.directory = root / ref.object_type.value / ref.object_id

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around what writes the object's staged rows or checkpoint: a full or unwritable scratch
        directory fails the object, as a warehouse that cannot be written does (the others are then not
        tried), rather than stopping the whole run with no summary."""
        try:
            yield
        except (OSError, duckdb.IOException) as error:
            raise WarehouseError(
                f"cannot stage the rows read in {self.directory} (under --state-dir): "
                f"{one_line_reason(error)}"
            ) from None

    def load(self) -> Checkpoint | None:
        """The checkpoint left by an interrupted read, if any."""
        return Checkpoint.load(
            self.directory / CHECKPOINT_FILE, f"delete {self.directory} to read this object afresh"
        )

    def save(self, checkpoint: Checkpoint) -> None:
        """Atomically replace the checkpoint."""
        checkpoint.save(self.directory / CHECKPOINT_FILE)

    def part_path(self, number: int) -> Path:
        """Where part `number` goes."""
        return self.directory / f"part-{number:06d}.parquet"

    def damage(self, checkpoint: Checkpoint) -> str | None:
        """Why the checkpoint's parts cannot be resumed from, or None if their footers say they are whole.

        A part is complete on disk before a checkpoint names it, so only harm from outside (a file
        deleted, truncated or overwritten), or a sync killed while its first load took the parts into
        the tree, makes one missing, unreadable or short of the rows counted.
        """
        rows = 0
        for name in checkpoint.parts:
            try:
                rows += pq.read_metadata(self.directory / name).num_rows
            except (OSError, pa.ArrowException) as error:
                return f"its staged part {name} cannot be read ({one_line_reason(error)})"
        if rows != checkpoint.rows_staged:
            held = counted(rows, "rows")
            return f"its staged parts hold {held}, its checkpoint counts {checkpoint.rows_staged:,}"
        return None

    def missing(self, checkpoint: Checkpoint) -> list[str]:
        """The checkpoint's parts that are gone (a scratch directory removed while a read ran): looked
        for by name only, before every merge, where reading their footers would cost a little each time."""
        return [name for name in checkpoint.parts if not (self.directory / name).exists()]

    def staged(self, checkpoint: Checkpoint) -> StagedParts:
        """The checkpoint's parts, for the destination's merge."""
        return StagedParts(tuple(self.directory / name for name in checkpoint.parts), checkpoint.ordered)

    def clear(self) -> None:
        """Remove everything staged for the object (after its merge committed)."""
        shutil.rmtree(self.directory, ignore_errors=True)
