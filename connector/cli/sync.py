"""`bt-sync sync` and `bt-sync status`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from connector.cli.app import CheckedCommand, app, json_output, note_nothing_synced, output_console
from connector.cli.options import (
    ApiKeyOption,
    ApiUrlOption,
    DestinationOption,
    DuckDbOption,
    IcebergCatalogOption,
    IcebergNamespaceOption,
    IcebergWarehouseOption,
    JsonOption,
    NoParquetOption,
    ParquetOption,
    StateDirOption,
    TimeoutOption,
    api_settings,
    check_destination_writable,
    warehouse_settings,
)
from connector.defaults import DEFAULT_LOCK_WAIT_S, DEFAULT_OVERLAP_S, DEFAULT_PAGE_LIMIT
from connector.display import counted, cut, folded_table, plain_cells, printable

if TYPE_CHECKING:
    from rich.console import Console

    from connector.sync.run import SyncSummary


# The reasons a failed sync's last line gives; the summary has every object's.
_MOST_REASONS_SHOWN = 3


@app.command(cls=CheckedCommand)
def sync(
    api_url: str | None = ApiUrlOption,
    api_key: str | None = ApiKeyOption,
    timeout: float | None = TimeoutOption,
    duckdb: Path | None = DuckDbOption,
    parquet: str | None = ParquetOption,
    no_parquet: bool = NoParquetOption,
    destination: str | None = DestinationOption,
    iceberg_catalog: str | None = IcebergCatalogOption,
    iceberg_warehouse: str | None = IcebergWarehouseOption,
    iceberg_namespace: str | None = IcebergNamespaceOption,
    state_dir: Path | None = StateDirOption,
    project: list[str] = typer.Option(
        [], "--project", help="Project name or id to sync (repeatable; default all)."
    ),
    objects: list[str] = typer.Option(
        [],
        "--objects",
        help="Comma-separated kinds (repeatable; default all): logs, experiments, datasets (their rows) and "
        "prompts, functions, project_scores, project_tags (catalog only).",
    ),
    full: bool = typer.Option(False, "--full", help="Re-read every object's whole history."),
    reconcile: bool = typer.Option(
        False, "--reconcile", help="Also delete rows and objects deleted upstream."
    ),
    overlap_s: float = typer.Option(
        DEFAULT_OVERLAP_S, "--overlap-seconds", help="Re-read window below the watermark."
    ),
    page_limit: int = typer.Option(
        DEFAULT_PAGE_LIMIT, "--page-limit", min=1, max=1000, help="Traces per fetch page."
    ),
    lock_wait_s: float = typer.Option(
        DEFAULT_LOCK_WAIT_S,
        "--lock-wait",
        help="Seconds to wait for another process syncing the same object.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Sync project logs, experiments, datasets and the project catalog incrementally."""
    from connector.config import check_state_dir, setting_named
    from connector.display import shell_text_as_utf8
    from connector.errors import SyncIncomplete
    from connector.progress import terminal_progress
    from connector.sync.run import SyncOptions, parse_object_kinds, run_sync
    from connector.wiring import open_client, open_destination
    from schemas.kinds import BY_OPTION

    options = SyncOptions(
        # In an ASCII locale, `--project pé` came escaped: "no project named" one the listing showed.
        projects=tuple(map(shell_text_as_utf8, project)),
        # Each --objects adds its kinds: a second one does not replace the first.
        kinds=parse_object_kinds(shell_text_as_utf8(",".join(objects))) if objects else frozenset(BY_OPTION),
        full=full,
        reconcile=reconcile,
        overlap_s=overlap_s,
        page_limit=page_limit,
        lock_wait_s=lock_wait_s,
    )
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
    check_state_dir(store.state_dir, setting_named("state_dir", "--state-dir", state_dir))
    check_destination_writable(store)
    with open_client(api_settings(api_url, api_key, timeout)) as client:
        # Prepared by the sync once the API answered: a rejected key or an unreachable API writes nothing.
        target = open_destination(store, prepare=False)
        with terminal_progress(quiet=as_json) as progress:
            summary = run_sync(client, target, options, progress)
    if as_json:
        json_output.print(summary.model_dump_json(indent=2))
    else:
        print_summary(summary, output_console())
    if summary.failures:
        raise SyncIncomplete(_failed_objects(summary, as_json=as_json))


def _failed_objects(summary: SyncSummary, *, as_json: bool) -> str:
    """The line saying which objects failed and why: each reason once, naming its first object (the
    objects not tried after the API was found down made a clause each, 16 KB over 163 objects, the reason
    lost in it), the reasons of the most objects first, at most a few (reasons naming their object, a URL
    with its id, are each their own: 301 objects made a 38 KB line)."""
    from connector.sync.keys import object_keys

    # As the table names them: a name two objects read alike, with its id.
    keys = object_keys(summary.objects)
    failed_for: dict[str, list[str]] = {}
    for o in summary.failures:
        failed_for.setdefault(o.error or "", []).append(
            f"{o.table} {cut(keys[(o.object_type, o.object_id)])!r}"
        )
    reasons = sorted(failed_for.items(), key=lambda reason: -len(reason[1]))
    clauses = [
        f"{names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}: {error}"
        for error, names in reasons[:_MOST_REASONS_SHOWN]
    ]
    if others := sum(len(names) for _, names in reasons[_MOST_REASONS_SHOWN:]):
        where = "the JSON summary's `error`" if as_json else "the table above"
        clauses.append(f"and {counted(others, 'more objects')}: {where} gives each one's reason")
    return f"{len(summary.failures)} of {len(summary.objects)} objects failed ({'; '.join(clauses)})"


def print_summary(summary: SyncSummary, console: Console) -> None:
    """Print a sync summary as a table."""
    from connector.sync.keys import object_keys

    # Two long names differing at their ends showed alike, cut.
    table = folded_table(
        "table", "object", "mode", "pages", "fetched", "inserted", "updated", "deleted", "rows", "seconds"
    )
    # Named as `status` and Dagster's partitions name them: a name that two objects read alike (`a/b`'s
    # experiment `c`, `a`'s `b/c`) with the object's id.
    keys = object_keys(summary.objects)
    for o in summary.objects:
        mode = (
            o.mode + (" (resumed)" if o.resumed else "") if o.status == "synced" else f"{o.status}: {o.error}"
        )
        table.add_row(
            *plain_cells(
                o.table,
                keys[(o.object_type, o.object_id)],
                mode,
                str(o.pages),
                str(o.rows_fetched),
                str(o.inserted),
                str(o.updated),
                str(o.deleted),
                str(o.rows),
                f"{o.seconds:.2f}",
            )
        )
    if summary.objects:  # a sync of catalog kinds only reads no object: no table of none
        console.print(table)
    if summary.removed_objects:
        removed = printable(", ".join(summary.removed_objects))
        console.print(f"removed objects deleted upstream: {removed}", markup=False, highlight=False)
    listed = ", ".join(counted(count, name) for name, count in summary.catalog.items())
    work = f"{counted(summary.requests, 'requests')}, {counted(summary.retries, 'retries')}"
    # The counts are of the catalog as listed: an object deleted upstream while the run read it is among them.
    skipped = sum(o.status == "skipped" for o in summary.objects)
    unsynced = (
        f"; {counted(skipped, 'objects')} of them skipped (deleted upstream during the sync)"
        if skipped
        else ""
    )
    # The last line a scheduler's log keeps: "synced …" alone read as a success when objects failed.
    if failed := len(summary.failures):
        unsynced += f"; {failed:,} of {counted(len(summary.objects), 'objects')} failed (not synced)"
    console.print(f"synced {listed} in {summary.seconds:.2f}s ({work}){unsynced}")


@app.command(cls=CheckedCommand)
def status(
    duckdb: Path | None = DuckDbOption,
    parquet: str | None = ParquetOption,
    no_parquet: bool = NoParquetOption,
    destination: str | None = DestinationOption,
    iceberg_catalog: str | None = IcebergCatalogOption,
    iceberg_warehouse: str | None = IcebergWarehouseOption,
    iceberg_namespace: str | None = IcebergNamespaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Show, per synced object: its name as a Dagster partition key, id, rows, watermark and last sync."""
    import orjson

    from connector.sync.catalog import listed_in_warehouse
    from connector.sync.keys import keys_as_listed
    from connector.wiring import open_destination

    store = warehouse_settings(
        duckdb=duckdb,
        parquet=parquet,
        no_parquet=no_parquet,
        destination=destination,
        iceberg_catalog=iceberg_catalog,
        iceberg_warehouse=iceberg_warehouse,
        iceberg_namespace=iceberg_namespace,
    )
    target = open_destination(store, prepare=False)
    states = target.list_states()
    if not states:
        note_nothing_synced(target)
    keys = keys_as_listed(states, listed_in_warehouse(target) if states else None)
    # In the order of the names shown: as listed now (an object renamed since its sync, under its new one).
    states.sort(key=lambda s: (s.table_name, keys[(s.object_type, s.object_id)] or s.name))
    if as_json:
        listed = [
            {**s.model_dump(mode="json"), "partition_key": keys[(s.object_type, s.object_id)]} for s in states
        ]
        json_output.print(orjson.dumps(listed, option=orjson.OPT_INDENT_2).decode())
        return
    # Its keys, ids, versions and times are to be copied.
    table = folded_table("table", "object (partition key)", "id", "rows", "files", "version", "last sync")
    for s in states:
        table.add_row(
            *plain_cells(
                s.table_name,
                keys[(s.object_type, s.object_id)] or f"{s.name} (deleted upstream)",  # no partition
                s.object_id,
                str(s.rows),
                str(s.files),
                "" if s.version is None else str(s.version),  # an object with no rows has none
                s.synced_at.isoformat(timespec="seconds"),
            )
        )
    output_console().print(table)
    deleted = sum(key is None for key in keys.values())
    if deleted:
        typer.echo(
            f"bt-sync: note: {counted(deleted, 'objects')} deleted upstream, without a Dagster partition: "
            "`bt-sync sync --reconcile` removes the rows",
            err=True,
        )
