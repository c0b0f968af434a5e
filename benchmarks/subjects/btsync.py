"""bt-sync itself, through its Python API: a sync (full or incremental) and a push."""

from __future__ import annotations

from pathlib import Path

from benchmarks.cases import CaseSpec, Counts
from connector.api.client import BraintrustClient
from connector.config import ApiSettings, WarehouseSettings
from connector.progress import NullProgress
from connector.push.run import PushOptions, push_file
from connector.sync.run import SyncOptions, run_sync
from connector.wiring import open_client, open_destination
from schemas.api import ObjectType
from schemas.kinds import BY_OBJECT_TYPE

# The DuckDB file lives in the case's workdir, so an incremental sync finds the full sync's state.
DUCKDB_FILE = "btsync.duckdb"


def _client(spec: CaseSpec) -> BraintrustClient:
    return open_client(ApiSettings(api_url=spec.api_url, api_key=spec.api_key))


def sync(spec: CaseSpec) -> Counts:
    """Sync one object type into the default destination: full into a new one, else incremental."""
    workdir = Path(spec.workdir)
    return sync_into(
        spec,
        WarehouseSettings(
            duckdb_path=workdir / DUCKDB_FILE,
            parquet_root=str(workdir / "parquet"),
            state_dir=workdir / "state",
        ),
    )


def sync_into(spec: CaseSpec, store: WarehouseSettings) -> Counts:
    """Sync the case's object type into the destination `store` names, and describe what it wrote."""
    # The change is written just before the incremental sync: no ingestion lag to re-read.
    kind = BY_OBJECT_TYPE[ObjectType(spec.object_type)]
    options = SyncOptions(kinds=frozenset({kind.option}), overlap_s=0)
    destination = open_destination(store)
    with _client(spec) as client:
        summary = run_sync(client, destination, options)
    (synced,) = [o for o in summary.objects if o.object_id == spec.object_id]
    (state,) = [s for s in destination.list_states() if s.object_id == spec.object_id]
    return Counts(
        rows_stored=synced.rows,
        rows_fetched=synced.rows_fetched,
        detail=(
            f"{synced.mode}: {synced.pages} pages, {synced.inserted} inserted, {synced.updated} updated; "
            f"wrote {synced.bytes_written / 2**20:,.1f} MiB, "
            f"{synced.bytes_written / max(state.bytes, 1):.1%} of the table's {state.bytes / 2**20:,.1f} MiB "
            f"in {state.files} files"
        ),
    )


def push(spec: CaseSpec) -> Counts:
    """Push the JSON Lines file into a new dataset with the default batching and concurrency."""
    assert spec.push_file is not None
    options = PushOptions(
        file=Path(spec.push_file),
        project=spec.project_name,
        dataset=spec.object_name,
        id_column="id",
        state_dir=Path(spec.workdir) / "push-state",
    )
    with _client(spec) as client:
        summary = push_file(client, options, NullProgress())
    return Counts(
        rows_fetched=summary.rows_read,
        rows_stored=summary.rows_sent,
        detail=f"{summary.batches} batches, {summary.retries} retries, {summary.splits} splits",
    )
