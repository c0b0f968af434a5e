"""`bt-sync demo`: the whole loop against a local emulator, narrated.

Starts the emulator with demo data, syncs everything, edits and deletes rows
upstream, syncs incrementally, reconciles, shows a query over the result, then
curates a dataset from the synced logs with `push --sql` and syncs it back.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from connector.cli.app import CheckedCommand, app, output_console
from connector.cli.options import check_apart, path_value
from connector.display import folded_table, plain_cells

if TYPE_CHECKING:
    from rich.console import Console

    from connector.api.client import BraintrustClient
    from connector.config import WarehouseSettings
    from connector.emulator import Emulator
    from connector.progress import ProgressReporter
    from connector.sync.run import SyncSummary

EXAMPLE_SQL = """\
SELECT e.name AS experiment,
       count(*) AS spans,
       round(avg(ev.scores['exact_match']), 3) AS exact_match,
       sum((ev.metrics->>'tokens')::BIGINT) AS tokens
FROM experiment_events ev JOIN experiments e ON e.id = ev.experiment_id
GROUP BY ALL ORDER BY experiment"""
CURATION_PROJECT, CURATION_DATASET = "support-bot", "hard-cases"
# What a sync and a push write in their scratch directory.
SCRATCH_ENTRIES = frozenset({"staging", "locks", "push"})
# The file marking a directory the demo made, so a later demo may delete it.
DEMO_MARKER = ".bt-sync-demo"
DEFAULT_DUCKDB, DEFAULT_PARQUET = Path("data/demo.duckdb"), Path("data/demo-parquet")
DEFAULT_STATE = DEFAULT_PARQUET.with_name(DEFAULT_PARQUET.name + "-state")
# Root spans a scorer rated poorly become test cases; `project_id` and `_xact_id` fill each record's `origin`.
CURATION_SQL = """\
SELECT id, project_id, _xact_id, input, output AS expected, metadata
FROM project_logs
WHERE is_root AND scores['correctness'] < 0.5"""
CURATED_SQL = f"""\
SELECT d.name AS dataset, count(*) AS records,
       count(*) FILTER (WHERE r.origin->>'object_type' = 'project_logs') AS linked_to_a_span
FROM dataset_records r JOIN datasets d ON d.id = r.dataset_id
WHERE d.name = '{CURATION_DATASET}'
GROUP BY ALL"""

_DUCKDB_OPTION = typer.Option(
    DEFAULT_DUCKDB, "--duckdb", **path_value("--duckdb", file=True), help="DuckDB file the demo (re)creates."
)
_PARQUET_OPTION = typer.Option(
    DEFAULT_PARQUET, "--parquet", **path_value("--parquet"), help="Parquet root the demo (re)creates."
)


@app.command(cls=CheckedCommand)
def demo(
    duckdb: Path = _DUCKDB_OPTION,
    parquet: Path = _PARQUET_OPTION,
) -> None:
    """Run the whole sync loop against a local emulator with demo data."""
    from pydantic import SecretStr

    from connector.config import ApiSettings, WarehouseSettings
    from connector.emulator import Emulator
    from connector.errors import ConfigError
    from connector.progress import terminal_progress
    from connector.sync.run import SyncOptions, run_sync
    from connector.wiring import open_client, open_destination

    console = output_console()
    if not parquet.name or parquet.name == "..":
        raise ConfigError(f"--parquet {str(parquet)!r}: give a directory the demo may (re)create")
    state_dir = parquet.with_name(parquet.name + "-state")
    # Checked before an earlier demo's files are removed: a refused demo leaves them as they were.
    store = WarehouseSettings(duckdb_path=duckdb, parquet_root=str(parquet), state_dir=state_dir)
    _remove_earlier_demo(duckdb, parquet, state_dir)
    with Emulator(seed="demo") as emulator, terminal_progress() as progress:
        console.print(f"[bold]1. Braintrust emulator[/] serving demo data at {emulator.url}")
        with open_client(ApiSettings(api_url=emulator.url, api_key=SecretStr(emulator.api_key))) as client:
            destination = open_destination(store)
            _report(console, "2. Full sync", run_sync(client, destination, SyncOptions(), progress))
            console.print(f"[bold]3. Upstream edits[/]: {_edit_upstream(emulator)}")
            step = "4. Incremental sync (only what changed is fetched and rewritten)"
            _report(console, step, run_sync(client, destination, SyncOptions(overlap_s=0), progress))
            step = "5. Reconcile (finds rows deleted upstream)"
            _report(console, step, run_sync(client, destination, SyncOptions(reconcile=True), progress))
            _show_query(console, store, "6. Ad-hoc SQL", EXAMPLE_SQL)
            _curate(console, client, store, progress)
            run_sync(client, destination, SyncOptions(overlap_s=0), progress)
            _show_query(console, store, "8. Synced back (incremental sync)", CURATED_SQL)
    # To copy and paste from wherever the demo ran: its programs and paths as a shell reads them (a blank
    # in a path split it; `.venv/bin` was the checkout's, not the directory's the demo ran in).
    bt_sync, duckdb_cli, views, tables = map(
        shlex.quote, (_installed("bt-sync"), _installed("duckdb"), str(duckdb), str(parquet))
    )
    console.print(
        f"\nDuckDB file (views): {duckdb}   Parquet files: {parquet}\n"
        f'Try: {bt_sync} sql --duckdb {views} --parquet {tables} "SELECT count(*) FROM project_logs"\n'
        f"  or: {duckdb_cli} -readonly {views}   (any DuckDB 1.4 or newer opens it)",
        markup=False,
        highlight=False,
    )


def _installed(program: str) -> str:
    """The path of `program` beside this Python (bt-sync's environment's), or its name where not there."""
    beside = Path(sys.executable).parent / program
    return str(beside) if beside.is_file() else program


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
    table = folded_table(
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
            *plain_cells(
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
        )
    console.print(table)
    console.print(f"   {summary.requests} API requests, {summary.seconds:.2f}s")


def _show_query(console: Console, store: WarehouseSettings, step: str, sql: str) -> None:
    from connector.destinations.query import run_query

    console.print(f"[bold]{step}[/]:")
    console.print(sql, markup=False, highlight=False)
    with run_query(store, sql) as result:
        result.print_table(console, 20)


def _curate(
    console: Console, client: BraintrustClient, store: WarehouseSettings, progress: ProgressReporter
) -> None:
    from connector.cli.push import describe
    from connector.push.options import PushOptions
    from connector.push.run import push

    console.print("[bold]7. Curate a dataset from the logs[/] (bt-sync push --sql):")
    console.print(CURATION_SQL, markup=False, highlight=False)
    options = PushOptions(
        sql=CURATION_SQL, project=CURATION_PROJECT, dataset=CURATION_DATASET, state_dir=store.state_dir
    )
    console.print(describe(push(client, options, progress, store)), markup=False)


def _remove_earlier_demo(duckdb: Path, parquet: Path, state_dir: Path) -> None:
    """Remove what an earlier demo wrote at these paths; refuse, touching nothing, anything else.

    A demo marks the directories it makes (`DEMO_MARKER`); the DuckDB file may go when it holds only
    bt-sync's views of this Parquet root, whose loss loses no row (a synced warehouse's views, of
    another root, stay: analysts open that file). Directories made by demos before the mark existed are
    recognized at the default paths only.

    Raises:
        ConfigError: a path holds something no demo wrote (a mistyped `--parquet data` must not
            delete a warehouse, nor `--duckdb` a database of your own).
    """
    from connector.config import check_duckdb_file, check_name_fits, check_writable
    from connector.destinations.filesystem import Root
    from connector.destinations.parquet_tree import TREE_DIRECTORIES
    from connector.destinations.views import NAME_WRITTEN_BESIDE, another_tree_shown, holds_only_views
    from connector.errors import ConfigError

    check_duckdb_file(duckdb)  # an empty directory "held what the demo did not write"
    check_apart(duckdb, parquet)
    only_views = duckdb.is_file() and holds_only_views(duckdb)
    if only_views and another_tree_shown(duckdb, Root(str(parquet))) is not None:
        # An earlier demo's file as well as a synced warehouse's: "files the demo did not write" said neither.
        raise ConfigError(
            f"--duckdb {duckdb} holds bt-sync's views of another Parquet tree than --parquet {parquet}, "
            "which the demo does not replace (analysts may open it): give another --duckdb (or, where an "
            "earlier demo wrote the file, rather than a sync, that demo's --parquet)"
        )
    checks = (
        (duckdb, "--duckdb", only_views),
        (parquet, "--parquet", _made_by_a_demo(parquet, TREE_DIRECTORIES, DEFAULT_PARQUET)),
        (state_dir, "the scratch directory", _made_by_a_demo(state_dir, SCRATCH_ENTRIES, DEFAULT_STATE)),
    )
    check_name_fits("--duckdb", duckdb, NAME_WRITTEN_BESIDE)
    for path, named, written_by_a_demo in checks:
        check_writable(named, path)  # before the emulator starts and the earlier demo's files go
        if path.exists() and not written_by_a_demo:
            raise ConfigError(
                f"{named} {path} holds what the demo did not write, and the demo recreates it: give a "
                "path that does not exist yet, or one an earlier demo used"
            )
    for path, _, _ in checks:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for directory in (parquet, state_dir):
        directory.mkdir(parents=True)
        (directory / DEMO_MARKER).write_text("made by `bt-sync demo`, which deletes it when run again\n")


def _made_by_a_demo(path: Path, layout: frozenset[str], default: Path) -> bool:
    """Whether the directory is one a demo made: marked, or at the default path with only the layout."""
    if not path.is_dir():
        return False
    entries = {entry.name for entry in path.iterdir()}
    if DEMO_MARKER in entries:
        return True
    return path.resolve() == default.resolve() and entries <= layout
