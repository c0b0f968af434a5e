"""A sync run: catalog, then each object extracted, merged and written to Parquet.

This is the one function the CLI, the demo and Dagster call. Per object:
pin the newest version V, fetch versions above the watermark (minus an overlap
window for ingestion lag) into staging, merge into DuckDB with `sync_state`
in one transaction, then rewrite the object's Parquet file.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from connector.api.client import BraintrustClient
from connector.api.xact import snapshot_pin, xact_span_for_seconds
from connector.destinations.load_duckdb import delete_object, merge_object
from connector.destinations.load_parquet import ParquetSink
from connector.destinations.state import SyncState, delete_state, mark_parquet_written, read_states
from connector.destinations.warehouse import Warehouse
from connector.progress import NullProgress, ProgressReporter
from connector.sync.catalog import Catalog, discover_catalog, write_catalog
from connector.sync.extract import DEFAULT_PAGE_LIMIT, ObjectRef, extract_object, newest_version
from connector.sync.staging import Checkpoint, ObjectStaging
from schemas.api import ObjectType
from schemas.tables import EVENT_STREAMS

ALL_OBJECT_TYPES = frozenset(ObjectType)
# Braintrust ingestion is eventually consistent: re-read this much below the watermark.
DEFAULT_OVERLAP_S = 5.0


class SyncOptions(BaseModel):
    """What to sync and how.

    Args:
        projects: project names or ids to sync; empty means every project.
        object_types: which event containers to sync.
        full: ignore watermarks and re-read every object's whole history.
        reconcile: re-read everything and delete rows (and objects) deleted upstream.
        page_limit: traces per fetch page.
        overlap_s: how far below the watermark an incremental sync re-reads.
        lock_wait_s: how long to wait for another sync or process holding the DuckDB file.
    """

    model_config = ConfigDict(frozen=True)

    projects: tuple[str, ...] = ()
    object_types: frozenset[ObjectType] = ALL_OBJECT_TYPES
    full: bool = False
    reconcile: bool = False
    page_limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1, le=1000)
    overlap_s: float = Field(default=DEFAULT_OVERLAP_S, ge=0)
    lock_wait_s: float = Field(default=60.0, ge=0)


class ObjectSummary(BaseModel):
    """What a sync did to one object."""

    object_type: ObjectType
    object_id: str
    name: str
    table: str
    version: int | None
    mode: str
    resumed: bool
    pages: int
    rows_fetched: int
    inserted: int
    updated: int
    deleted: int
    rows: int
    seconds: float


class SyncSummary(BaseModel):
    """What a sync run did."""

    started_at: datetime
    seconds: float
    projects: int
    experiments: int
    datasets: int
    objects: list[ObjectSummary]
    removed_objects: list[str]
    requests: int
    retries: int

    @property
    def rows_fetched(self) -> int:
        """Row versions received from the API, over every object."""
        return sum(o.rows_fetched for o in self.objects)


def run_sync(
    client: BraintrustClient,
    warehouse: Warehouse,
    parquet: ParquetSink | None,
    options: SyncOptions,
    progress: ProgressReporter | None = None,
) -> SyncSummary:
    """Sync the catalog and every selected object into the warehouse.

    Args:
        client: the API client.
        warehouse: the DuckDB file.
        parquet: the Parquet root, or None to skip Parquet.
        options: what to sync.
        progress: where to show progress; nothing is shown when None.

    Raises:
        WarehouseLocked: the DuckDB file, or an object being synced by another process,
            stayed locked for longer than `options.lock_wait_s`.
    """
    started, clock = datetime.now(UTC), time.monotonic()
    requests_before, retries_before = client.stats.requests, client.stats.retries
    catalog = discover_catalog(client, options.projects)
    with warehouse.connect() as connection:
        write_catalog(connection, catalog, replace_all=not options.projects)
    run = _SyncRun(client, warehouse, parquet, options, progress or NullProgress())
    objects = [run.sync_object(ref) for ref in catalog.refs(options.object_types)]
    removed = run.remove_vanished(catalog) if options.reconcile else []
    run.catch_up_parquet()
    return SyncSummary(
        started_at=started,
        seconds=round(time.monotonic() - clock, 3),
        projects=len(catalog.projects),
        experiments=len(catalog.experiments),
        datasets=len(catalog.datasets),
        objects=objects,
        removed_objects=removed,
        requests=client.stats.requests - requests_before,
        retries=client.stats.retries - retries_before,
    )


def sync_object(
    client: BraintrustClient,
    warehouse: Warehouse,
    parquet: ParquetSink | None,
    ref: ObjectRef,
    options: SyncOptions,
    progress: ProgressReporter | None = None,
) -> ObjectSummary:
    """Sync one object (e.g. one Dagster partition), without touching the catalog tables."""
    return _SyncRun(client, warehouse, parquet, options, progress or NullProgress()).sync_object(ref)


class _SyncRun:
    def __init__(
        self,
        client: BraintrustClient,
        warehouse: Warehouse,
        parquet: ParquetSink | None,
        options: SyncOptions,
        progress: ProgressReporter,
    ) -> None:
        self.client = client
        self.warehouse = warehouse
        self.parquet = parquet
        self.options = options
        self.progress = progress
        self.staging_root = staging_root(warehouse.path)
        self.full_read = options.full or options.reconcile

    def sync_object(self, ref: ObjectRef) -> ObjectSummary:
        staging = ObjectStaging(self.staging_root, ref.stream.object_type, ref.object_id)
        # Two processes syncing the same object would share its staging area: one waits for the other.
        with staging.locked(self.options.lock_wait_s):
            return self._sync_locked(ref, staging)

    def _sync_locked(self, ref: ObjectRef, staging: ObjectStaging) -> ObjectSummary:
        clock = time.monotonic()
        object_type = ref.stream.object_type
        with self.warehouse.connect() as connection:
            previous = read_states(connection).get((object_type, ref.object_id))
        checkpoint = self._resumable(staging, previous)
        resumed = checkpoint is not None
        if checkpoint is None:
            started_at = datetime.now(UTC)
            checkpoint = Checkpoint(version=0, watermark=0, cutoff=None, started_at=started_at)
            newest = newest_version(self.client, ref)
            if newest is not None:
                pin = snapshot_pin(newest, time.time())
                checkpoint = Checkpoint(
                    version=pin, watermark=newest, cutoff=self._cutoff(previous), started_at=started_at
                )
                staging.save(checkpoint)
        if checkpoint.version and not checkpoint.done:
            task = self.progress.task(f"{ref.stream.table} · {ref.name}")
            checkpoint = extract_object(
                self.client, ref, staging, checkpoint, task, page_limit=self.options.page_limit
            )
            task.close()
        version = _max_version(checkpoint.watermark or None, previous.version if previous else None)
        state = SyncState(
            object_type=object_type,
            object_id=ref.object_id,
            project_id=ref.project_id,
            table_name=ref.stream.table,
            version=version,
            rows=0,
            last_fetched_rows=checkpoint.rows_fetched,
            last_pages=checkpoint.pages,
            synced_at=datetime.now(UTC),
            parquet_version=previous.parquet_version if previous else None,
        )
        with self.warehouse.connect() as connection:
            result = merge_object(
                connection,
                ref,
                staging.part_paths(checkpoint),
                state,
                delete_missing=self.options.reconcile and checkpoint.cutoff is None,
            )
            if self.parquet is not None:
                self.parquet.write_object(connection, ref.stream, ref.object_id)
                mark_parquet_written(connection, object_type, ref.object_id, version)
        staging.clear()
        return ObjectSummary(
            object_type=object_type,
            object_id=ref.object_id,
            name=ref.name,
            table=ref.stream.table,
            version=version,
            mode="incremental" if checkpoint.cutoff is not None else "full",
            resumed=resumed,
            pages=checkpoint.pages,
            rows_fetched=checkpoint.rows_fetched,
            inserted=result.inserted,
            updated=result.updated,
            deleted=result.deleted,
            rows=result.rows,
            seconds=round(time.monotonic() - clock, 3),
        )

    def remove_vanished(self, catalog: Catalog) -> list[str]:
        """Delete the rows, state and Parquet of objects deleted upstream (within the synced projects)."""
        live = {(r.stream.object_type, r.object_id) for r in catalog.refs(self.options.object_types)}
        project_ids = {p.id for p in catalog.projects}
        with self.warehouse.connect() as connection:
            vanished = [
                state
                for key, state in read_states(connection).items()
                if key not in live
                and state.object_type in self.options.object_types
                and state.project_id in project_ids
            ]
            for state in vanished:
                stream = EVENT_STREAMS[state.object_type]
                connection.execute("BEGIN TRANSACTION")
                delete_object(connection, stream, state.object_id)
                delete_state(connection, state.object_type, state.object_id)
                connection.execute("COMMIT")
                if self.parquet is not None:
                    self.parquet.remove_object(stream, state.object_id)
        return [f"{state.object_type.value}:{state.object_id}" for state in vanished]

    def catch_up_parquet(self) -> None:
        """Rewrite Parquet files left behind by a crash between the DuckDB commit and the file write."""
        if self.parquet is None:
            return
        with self.warehouse.connect() as connection:
            for state in read_states(connection).values():
                if state.parquet_stale:
                    self.parquet.write_object(connection, EVENT_STREAMS[state.object_type], state.object_id)
                    mark_parquet_written(connection, state.object_type, state.object_id, state.version)

    def _resumable(self, staging: ObjectStaging, previous: SyncState | None) -> Checkpoint | None:
        """The checkpoint of an interrupted sync to resume, or None (leftovers discarded) to start afresh."""
        checkpoint = staging.load()
        if checkpoint is None:
            return None
        # Left behind by a crash after the merge committed, before the staging was cleared.
        already_committed = previous is not None and previous.synced_at >= checkpoint.started_at
        too_narrow = self.full_read and checkpoint.cutoff is not None
        if already_committed or too_narrow:
            staging.clear()
            return None
        return checkpoint

    def _cutoff(self, previous: SyncState | None) -> int | None:
        if self.full_read or previous is None or previous.version is None:
            return None
        return max(0, previous.version - xact_span_for_seconds(self.options.overlap_s))


def staging_root(duckdb_path: Path) -> Path:
    """Where a sync into `duckdb_path` stages fetched rows and checkpoints."""
    return duckdb_path.with_name(duckdb_path.name + ".staging")


def _max_version(*versions: int | None) -> int | None:
    present = [v for v in versions if v is not None]
    return max(present) if present else None
