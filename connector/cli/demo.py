"""`bt-sync demo`: emulator, full sync, upstream edits, incremental sync, reconcile, SQL."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from connector.cli.app import app
from connector.demo import run_demo
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
    # Wide enough for the summary tables when the output is a file or a CI log.
    console = Console(width=None if sys.stdout.isatty() else 120)
    with terminal_progress() as progress:
        run_demo(duckdb, parquet, console, progress)
