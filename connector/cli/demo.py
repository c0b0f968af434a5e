"""`bt-sync demo`: the whole loop against a local emulator, narrated.

Starts the emulator with demo data, syncs everything, edits and deletes rows
upstream, syncs incrementally, reconciles, and shows a query over the result.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from connector.cli.app import app, output_console

if TYPE_CHECKING:
    from rich.console import Console

    from connector.config import WarehouseSettings
    from connector.emulator import Emulator
    from connector.sync.run import SyncSummary

EXAMPLE_SQL = """\
SELECT e.name AS experiment,
       count(*) AS spans,
       round(avg(ev.scores['exact_match']), 3) AS exact_match,
       sum((ev.metrics->>'tokens')::BIGINT) AS tokens
FROM experiment_events ev JOIN experiments e ON e.id = ev.experiment_id
GROUP BY ALL ORDER BY experiment"""


@app.command()
def demo(
    duckdb: Path = typer.Option(
        Path("data/demo.duckdb"), "--duckdb", help="DuckDB file the demo (re)creates."
    ),
    parquet: Path = typer.Option(
        Path("data/demo-parquet"), "--parquet", help="Parquet root the demo (re)creates."
    ),
) -> None:
    """Run the whole sync loop against a local emulator with demo data."""
    from connector.config import ApiSettings, WarehouseSettings
    from connector.emulator import Emulator
    from connector.progress import terminal_progress
    from connector.sync.run import SyncOptions, run_sync
    from connector.wiring import open_client, open_destination

    console = output_console()
    state_dir = parquet.with_name(parquet.name + "-state")
    for path in (duckdb, parquet, state_dir):
        _remove(path)
    store = WarehouseSettings(duckdb_path=duckdb, parquet_root=str(parquet), state_dir=state_dir)
    with Emulator(seed="demo") as emulator, terminal_progress() as progress:
        console.print(f"[bold]1. Braintrust emulator[/] serving demo data at {emulator.url}")
        with open_client(ApiSettings(api_url=emulator.url, api_key=emulator.api_key)) as client:
            destination = open_destination(store)
            _report(console, "2. Full sync", run_sync(client, destination, SyncOptions(), progress))
            console.print(f"[bold]3. Upstream edits[/]: {_edit_upstream(emulator)}")
            step = "4. Incremental sync (only what changed is fetched and rewritten)"
            _report(console, step, run_sync(client, destination, SyncOptions(overlap_s=0), progress))
            step = "5. Reconcile (finds rows deleted upstream)"
            _report(console, step, run_sync(client, destination, SyncOptions(reconcile=True), progress))
    _show_query(console, store)
    console.print(
        f"\nDuckDB file (views): {duckdb}   Parquet files: {parquet}\n"
        f"Try: .venv/bin/bt-sync sql --duckdb {duckdb} --parquet {parquet} "
        '"SELECT count(*) FROM project_logs"\n'
        f"  or: .venv/bin/duckdb -readonly {duckdb}   (any DuckDB 1.4 or newer opens it)"
    )


def _edit_upstream(emulator: Emulator) -> str:
    from connector.emulator import ListQuery

    store = emulator.store
    project = store.list_objects("project", ListQuery())[0]
    logs = store.live_rows("project_logs", project["id"])
    rescored = [{"id": row["id"], "_is_merge": True, "scores": {"accuracy": 1.0}} for row in logs[:5]]
    store.insert("project_logs", project["id"], rescored)
    store.insert(
        "project_logs", project["id"], [{"id": "demo-new-row", "input": "added after the first sync"}]
    )
    deleted = logs[-1]["id"]
    store.insert("project_logs", project["id"], [{"id": deleted, "_object_delete": True}])
    return f"re-scored 5 log rows, added 1, deleted 1 in project {project['name']!r}"


def _report(console: Console, step: str, summary: SyncSummary) -> None:
    from rich.table import Table

    table = Table(
        "table",
        "object",
        "mode",
        "fetched",
        "inserted",
        "updated",
        "deleted",
        "rows",
        "bytes written",
        title=step,
    )
    for o in summary.objects:
        table.add_row(
            o.table,
            o.name,
            o.mode,
            str(o.rows_fetched),
            str(o.inserted),
            str(o.updated),
            str(o.deleted),
            str(o.rows),
            f"{o.bytes_written:,}",
        )
    console.print(table)
    console.print(f"   {summary.requests} API requests, {summary.seconds:.2f}s")


def _show_query(console: Console, store: WarehouseSettings) -> None:
    from connector.destinations.query import run_query

    console.print("[bold]6. Ad-hoc SQL[/]:\n" + EXAMPLE_SQL)
    with run_query(store, EXAMPLE_SQL) as result:
        result.print_table(console, 20)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
