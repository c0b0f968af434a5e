"""`bt-sync sync` and `bt-sync status`."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from connector.api.client import BraintrustClient
from connector.cli.app import app, output_console
from connector.cli.options import (
    ApiKeyOption,
    ApiUrlOption,
    DuckDbOption,
    JsonOption,
    NoParquetOption,
    ParquetOption,
    api_settings,
    warehouse_settings,
)
from connector.destinations.load_parquet import ParquetSink
from connector.destinations.state import read_states
from connector.destinations.warehouse import Warehouse
from connector.errors import ConfigError
from connector.progress import terminal_progress
from connector.sync.run import DEFAULT_OVERLAP_S, SyncOptions, SyncSummary, run_sync
from schemas.api import ObjectType

_OBJECT_NAMES = {
    "logs": ObjectType.PROJECT_LOGS,
    "experiments": ObjectType.EXPERIMENT,
    "datasets": ObjectType.DATASET,
}


@app.command()
def sync(
    api_url: str | None = ApiUrlOption,
    api_key: str | None = ApiKeyOption,
    duckdb: Path | None = DuckDbOption,
    parquet: str | None = ParquetOption,
    no_parquet: bool = NoParquetOption,
    project: list[str] = typer.Option(
        [], "--project", help="Project name or id to sync (repeatable; default all)."
    ),
    objects: str = typer.Option(
        "logs,experiments,datasets", "--objects", help="Comma-separated object kinds."
    ),
    full: bool = typer.Option(False, "--full", help="Re-read every object's whole history."),
    reconcile: bool = typer.Option(
        False, "--reconcile", help="Also delete rows and objects deleted upstream."
    ),
    overlap_s: float = typer.Option(
        DEFAULT_OVERLAP_S, "--overlap-seconds", help="Re-read window below the watermark."
    ),
    page_limit: int = typer.Option(1000, "--page-limit", min=1, max=1000, help="Traces per fetch page."),
    lock_wait_s: float = typer.Option(
        60.0, "--lock-wait", help="Seconds to wait for another process on the file."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Sync project logs, experiments and datasets incrementally into DuckDB (and Parquet)."""
    options = SyncOptions(
        projects=tuple(project),
        object_types=parse_object_kinds(objects),
        full=full,
        reconcile=reconcile,
        overlap_s=overlap_s,
        page_limit=page_limit,
        lock_wait_s=lock_wait_s,
    )
    store = warehouse_settings(duckdb, parquet, no_parquet)
    sink = ParquetSink(store.parquet_root) if store.parquet_root else None
    with (
        BraintrustClient(api_settings(api_url, api_key)) as client,
        terminal_progress(quiet=as_json) as progress,
    ):
        summary = run_sync(
            client, Warehouse(store.duckdb_path, lock_wait_s=lock_wait_s), sink, options, progress
        )
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        print_summary(summary, output_console())


def parse_object_kinds(text: str) -> frozenset[ObjectType]:
    """Parse `--objects logs,experiments,datasets`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in _OBJECT_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"--objects takes a comma-separated subset of {', '.join(_OBJECT_NAMES)}; got {text!r}"
        )
    return frozenset(_OBJECT_NAMES[name] for name in names)


def print_summary(summary: SyncSummary, console: Console) -> None:
    """Print a sync summary as a table."""
    table = Table(
        "table", "object", "mode", "pages", "fetched", "inserted", "updated", "deleted", "rows", "seconds"
    )
    for o in summary.objects:
        table.add_row(
            o.table,
            o.name,
            o.mode + (" (resumed)" if o.resumed else ""),
            str(o.pages),
            str(o.rows_fetched),
            str(o.inserted),
            str(o.updated),
            str(o.deleted),
            str(o.rows),
            f"{o.seconds:.2f}",
        )
    console.print(table)
    if summary.removed_objects:
        console.print(f"removed objects deleted upstream: {', '.join(summary.removed_objects)}")
    console.print(
        f"synced {summary.projects} projects, {summary.experiments} experiments, {summary.datasets} datasets "
        f"in {summary.seconds:.2f}s ({summary.requests} requests, {summary.retries} retries)"
    )


@app.command()
def status(
    duckdb: Path | None = DuckDbOption,
    as_json: bool = JsonOption,
) -> None:
    """Show, per synced object, its rows, watermark version and last sync time."""
    store = warehouse_settings(duckdb, None, no_parquet=True)
    with Warehouse(store.duckdb_path).connect(read_only=True) as connection:
        states = sorted(read_states(connection).values(), key=lambda s: (s.table_name, s.object_id))
        names = dict(
            connection.execute(
                "SELECT id, name FROM experiments UNION ALL SELECT id, name FROM datasets "
                "UNION ALL SELECT id, name || ' logs' FROM projects"
            ).fetchall()
        )
    if as_json:
        rows = [
            {
                **s.__dict__,
                "object_type": s.object_type.value,
                "name": names.get(s.object_id),
                "synced_at": s.synced_at.isoformat(),
            }
            for s in states
        ]
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("table", "object", "rows", "version", "last sync", "parquet")
    for s in states:
        table.add_row(
            s.table_name,
            names.get(s.object_id, s.object_id),
            str(s.rows),
            str(s.version),
            s.synced_at.isoformat(timespec="seconds"),
            "current" if not s.parquet_stale else "stale",
        )
    output_console().print(table)
