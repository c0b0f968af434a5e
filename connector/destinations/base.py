"""The storage seam: what a sync needs from wherever its tables land.

Extraction stages each object's fetched rows as Parquet parts in local scratch
space; a `Destination` then merges them, committing the rows together with the
object's `SyncState` (its watermark) so the two can never disagree. The DuckDB
destination (Parquet files plus a DuckDB file of views) and the Iceberg
destination implement this protocol; nothing else in a sync knows which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from schemas.api import ApiObject, ObjectType
from schemas.kinds import ObjectKind
from schemas.tables import EventStream

# Where a user sets how long a sync waits for an object another process is syncing, for its message.
LOCK_WAIT_SETTING = "--lock-wait; in Dagster, the WarehouseResource's lock_wait_s"

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class ObjectRef:
    """One event container to sync.

    Args:
        stream: which table it feeds.
        object_id: the project id (logs), experiment id or dataset id.
        project_id: the project it belongs to.
        name: a readable, stable name: `project` (its logs), `project/experiment` or `project/dataset`.
    """

    stream: EventStream
    object_id: str
    project_id: str
    name: str

    @property
    def object_type(self) -> ObjectType:
        """The API object type whose fetch feeds the object's rows."""
        return self.stream.object_type


@dataclass(frozen=True)
class StagedParts:
    """An object's fetched rows, staged as Parquet files in the table's file columns.

    Args:
        paths: the part files, newest rows first.
        deduplicated: every id appears at most once across the parts, as its newest fetched
            version (the pages came newest first); False means the merge must deduplicate.
    """

    paths: tuple[Path, ...]
    deduplicated: bool


class SyncState(BaseModel):
    """What the warehouse holds for one object: the `sync_state` table's row.

    Args:
        object_type: project_logs, experiment or dataset.
        object_id: the object's id.
        name: its readable name (its Dagster partition key, see `connector.sync.keys`).
        project_id: its project.
        table_name: the table its rows are in.
        version: the watermark: the newest `_xact_id` read, a deletion's included (None: the object had no
            rows).
        rows: rows of the object in its table.
        files: data files holding them.
        bytes: bytes of those files.
        last_fetched_rows: row versions the last sync received.
        last_pages: fetch pages the last sync requested.
        last_bytes_written: bytes the last sync wrote; a merge adds what it writes to the value it is
            given (a resumed read's, for the read of the same run that catches up after it).
        synced_at: when the last sync committed.
        read_at: when the read the last sync committed began (a resumed read's, in the run it was
            interrupted in) by the API's clock, which the next sync's cutoff needs; None where the API
            gave no time, and in states of earlier versions. Not a `sync_state` column.
    """

    object_type: ObjectType
    object_id: str
    name: str
    project_id: str
    table_name: str
    version: int | None
    rows: int = 0
    files: int = 0
    bytes: int = 0
    last_fetched_rows: int = 0
    last_pages: int = 0
    last_bytes_written: int = 0
    synced_at: datetime
    read_at: datetime | None = None


@dataclass(frozen=True)
class VersionRange:
    """The `_xact_id`s above `above`, up to `up_to`."""

    above: int
    up_to: int


class MergeResult(BaseModel):
    """What a merge changed.

    Args:
        rows: the object's rows after the merge.
        bytes_written: bytes of the data files the merge wrote.
        bytes: bytes of all the object's data files after the merge.
    """

    inserted: int
    updated: int
    deleted: int
    rows: int
    bytes_written: int
    bytes: int


class MaintainSummary(BaseModel):
    """What `bt-sync maintain` did.

    Args:
        tables: tables looked at (on the Parquet tree, the event tables holding an object).
        snapshots_expired: table snapshots (versions) dropped.
        files_compacted: small data files merged into bigger ones.
        files_written: data files those became.
        files_deleted: files no version of any table needs any more, deleted.
        bytes_deleted: their bytes.
    """

    tables: int = 0
    snapshots_expired: int = 0
    files_compacted: int = 0
    files_written: int = 0
    files_deleted: int = 0
    bytes_deleted: int = 0


class Destination(Protocol):
    """Where synced tables land."""

    @property
    def key(self) -> str:
        """A short stable identity, naming this destination's scratch space."""
        ...

    @property
    def description(self) -> str:
        """Where the tables are, for people (never containing credentials)."""
        ...

    @property
    def scratch(self) -> Path:
        """This worker's local scratch directory for syncs into this destination."""
        ...

    def prepare(self) -> None:
        """Create whatever must exist before the first sync (tables, the DuckDB file of views)."""

    def prepared(self) -> bool:
        """Whether a sync prepared the tables (`prepare`), whether or not it synced an object into them."""
        ...

    def lost_catalog(self) -> list[ObjectKind]:
        """The kinds whose catalog table was made once and is now lost or damaged (a file deleted by hand):
        a sync lists them again, whatever kinds it syncs."""
        ...

    def lock(self, ref: ObjectRef, wait_s: float) -> AbstractContextManager[None]:
        """Hold `ref` against other syncs of the same object; waits up to `wait_s`.

        Raises:
            WarehouseLocked: another sync still held it after `wait_s`.
        """
        ...

    def read_state(self, ref: ObjectRef) -> SyncState | None:
        """The object's committed state, or None if it was never synced."""
        ...

    def list_states(self) -> list[SyncState]:
        """Every synced object's state."""
        ...

    def merge(
        self,
        ref: ObjectRef,
        staged: StagedParts,
        state: SyncState,
        *,
        delete_missing_up_to: int | None,
        run_wrote: VersionRange | None = None,
    ) -> MergeResult:
        """Merge staged rows and commit them with `state` atomically.

        Keeps, per id, the version with the greatest `_xact_id`.

        Args:
            ref: the object.
            staged: its fetched rows (those above the watermark, or all of them for a full read).
            state: the state to commit; its row and file counts are filled in.
            delete_missing_up_to: `staged` holds the whole object, read by a read that met every live
                row up to this `_xact_id`: a row held, no newer and not in `staged`, was deleted upstream
                (None: delete nothing).
            run_wrote: the versions at which this run's earlier commit (a resumed read's) wrote rows: one
                held at such a version and replaced now is no update of its own, the run having counted it
                (None: every replaced row is an update).
        """
        ...

    def remove_object(self, state: SyncState) -> None:
        """Delete an object's rows and state: it was deleted upstream (the caller holds its lock)."""

    def write_catalog(
        self, kind: ObjectKind, objects: Sequence[ApiObject], project_ids: Sequence[str] | None
    ) -> None:
        """Replace a catalog table's rows: all of them, or those of `project_ids` only."""

    @property
    def reader_follows_commits(self) -> bool:
        """Whether a reader that is not pinned sees the commits made after it opened; if not, a caller
        that must see them opens a reader after them."""
        ...

    def reader(self, *, pinned: bool = False) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every table as a view, as committed now (read only).

        Args:
            pinned: every query sees the commits current when the reader opened, however many syncs
                commit meanwhile; else each query sees those current when it starts (a connection kept
                across syncs). Either way each object's commit is seen whole.

        Raises:
            WarehouseError: the tables cannot be read.
        """
        ...

    def maintain(self, retain: timedelta) -> MaintainSummary:
        """Tidy the storage: drop what no reader needs (versions older than `retain`), merge small files.

        Safe while syncs run.
        """
        ...
