"""`bt-sync maintain`: tidy the warehouse's storage while syncs go on."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli.app import CheckedCommand, app, json_output, note_nothing_synced, print_output
from connector.cli.options import (
    DestinationOption,
    DuckDbOption,
    IcebergCatalogOption,
    IcebergNamespaceOption,
    IcebergWarehouseOption,
    JsonOption,
    NoParquetOption,
    ParquetOption,
    StateDirOption,
    check_tables_writable,
    warehouse_settings,
)
from connector.defaults import DEFAULT_RETAIN_HOURS, MAX_WINDOW_HOURS
from connector.display import counted


@app.command(cls=CheckedCommand)
def maintain(
    duckdb: Path | None = DuckDbOption,
    parquet: str | None = ParquetOption,
    no_parquet: bool = NoParquetOption,
    destination: str | None = DestinationOption,
    iceberg_catalog: str | None = IcebergCatalogOption,
    iceberg_warehouse: str | None = IcebergWarehouseOption,
    iceberg_namespace: str | None = IcebergNamespaceOption,
    state_dir: Path | None = StateDirOption,
    retain_hours: float | None = typer.Option(
        None,
        "--retain-hours",
        show_default=False,
        help="Iceberg: keep snapshots (time travel) and unreferenced files younger than this (files at "
        f"least an hour); 0 to {MAX_WINDOW_HOURS:,}, {DEFAULT_RETAIN_HOURS:g} if not given. The Parquet "
        "tree keeps the versions it replaced one hour, whatever this says.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Delete file versions nothing needs any more (safe during syncs); on Iceberg, also merge small files.

    Iceberg: expire old snapshots, merge small files, delete unreferenced ones. The Parquet tree keeps
    its files at a bounded size as it syncs: here it finishes commits a crash interrupted and deletes
    the versions replaced more than an hour before, for objects no sync has touched since.
    """
    from connector.config import DestinationKind, hours_window
    from connector.wiring import open_destination

    retain = hours_window(DEFAULT_RETAIN_HOURS if retain_hours is None else retain_hours, "--retain-hours")
    store = warehouse_settings(
        duckdb=duckdb,
        parquet=parquet,
        no_parquet=no_parquet,
        destination=destination,
        iceberg_catalog=iceberg_catalog,
        iceberg_warehouse=iceberg_warehouse,
        iceberg_namespace=iceberg_namespace,
        state_dir=state_dir,
    )
    if retain_hours is not None and store.destination is not DestinationKind.ICEBERG:
        typer.echo(
            "bt-sync: warning: --retain-hours is for Iceberg: the Parquet tree deletes the versions it "
            "replaced an hour after, whatever it says",
            err=True,
        )
    # Its deletions and lock files: a read-only tree failed on a lock file's path, in the system's words.
    check_tables_writable(store)
    target = open_destination(store, prepare=False)
    summary = target.maintain(retain)
    if not target.list_states():  # most often settings other than the sync's: it "maintained" nothing
        note_nothing_synced(target)
    if as_json:
        json_output.print(summary.model_dump_json(indent=2))
        return
    deleted = (
        f"{counted(summary.files_deleted, 'files')} no longer needed deleted "
        f"({counted(summary.bytes_deleted, 'bytes')})"
    )
    if store.destination is not DestinationKind.ICEBERG:
        # The Parquet tree has no snapshots and merges no files: "0 snapshots expired, 0 small files merged
        # into 0" told of work it never does.
        print_output(f"maintained {counted(summary.tables, 'tables')}: {deleted}")
        return
    print_output(
        f"maintained {counted(summary.tables, 'tables')}: {counted(summary.snapshots_expired, 'snapshots')} "
        f"expired, {counted(summary.files_compacted, 'small files')} merged into {summary.files_written}, "
        f"{deleted}"
    )
