"""`bt-sync demo`: the whole loop against a local emulator, narrated.

Starts the emulator with demo data, syncs everything, edits and deletes rows
upstream, syncs incrementally, reconciles, and shows a query over the result.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from connector.api.client import BraintrustClient
from connector.config import ApiSettings
from connector.destinations.load_parquet import ParquetSink
from connector.destinations.warehouse import Warehouse
from connector.emulator import Emulator, ListQuery
from connector.progress import ProgressReporter
from connector.sync.run import SyncOptions, SyncSummary, run_sync, staging_root

EXAMPLE_SQL = """\
SELECT e.name AS experiment,
       count(*) AS spans,
       round(avg(ev.scores['exact_match']), 3) AS exact_match,
       sum((ev.metrics->>'tokens')::BIGINT) AS tokens
FROM experiment_events ev JOIN experiments e ON e.id = ev.experiment_id
GROUP BY ALL ORDER BY experiment"""


def run_demo(duckdb_path: Path, parquet_root: Path, console: Console, progress: ProgressReporter) -> None:
    """Run the demo into fresh files at `duckdb_path` and `parquet_root`."""
    _remove_previous(duckdb_path, parquet_root)
    warehouse, sink = Warehouse(duckdb_path), ParquetSink(str(parquet_root))
    with Emulator(seed="demo") as emulator:
        console.print(f"[bold]1. Braintrust emulator[/] serving demo data at {emulator.url}")
        settings = ApiSettings(api_url=emulator.url, api_key=emulator.api_key)
        with BraintrustClient(settings) as client:
            step = "2. Full sync"
            _report(console, step, run_sync(client, warehouse, sink, SyncOptions(), progress))
            changed = _edit_upstream(emulator)
            console.print(f"[bold]3. Upstream edits[/]: {changed}")
            step = "4. Incremental sync (only what changed is fetched)"
            _report(console, step, run_sync(client, warehouse, sink, SyncOptions(overlap_s=0), progress))
            step = "5. Reconcile (finds rows deleted upstream)"
            _report(console, step, run_sync(client, warehouse, sink, SyncOptions(reconcile=True), progress))
    _show_query(console, duckdb_path)
    console.print(
        f"\nDuckDB: {duckdb_path}   Parquet: {parquet_root}\n"
        f'Try: duckdb {duckdb_path} "SELECT count(*) FROM project_logs"'
    )


def _edit_upstream(emulator: Emulator) -> str:
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
    table = Table("table", "object", "mode", "fetched", "inserted", "updated", "deleted", "rows", title=step)
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
        )
    console.print(table)
    console.print(f"   {summary.requests} API requests, {summary.seconds:.2f}s")


def _show_query(console: Console, duckdb_path: Path) -> None:
    console.print("[bold]6. Ad-hoc SQL[/]:\n" + EXAMPLE_SQL)
    with duckdb.connect(str(duckdb_path), read_only=True) as connection:
        result = connection.execute(EXAMPLE_SQL)
        columns = [d[0] for d in result.description or []]
        table = Table(*columns)
        for row in result.fetchall():
            table.add_row(*(str(v) for v in row))
    console.print(table)


def _remove_previous(duckdb_path: Path, parquet_root: Path) -> None:
    for path in (duckdb_path, duckdb_path.with_name(duckdb_path.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(staging_root(duckdb_path), ignore_errors=True)
    shutil.rmtree(parquet_root, ignore_errors=True)
