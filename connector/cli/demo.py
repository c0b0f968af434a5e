"""`bt-sync demo`: emulator, full sync, upstream edits, incremental sync, reconcile, SQL."""

from __future__ import annotations

from pathlib import Path

import typer

from connector.cli.app import app, output_console
from connector.cli.demo_run import run_demo
from connector.progress import terminal_progress


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
    console = output_console()
    with terminal_progress() as progress:
        run_demo(duckdb, parquet, console, progress)
