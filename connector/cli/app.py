"""The Typer application that every command module registers on."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="bt-sync",
    help="Sync Braintrust logs, experiments and datasets into DuckDB and Parquet; push datasets back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: rendering it with rich would double the time `bt-sync --help` takes to start.
    rich_markup_mode=None,
)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Global options; `--debug` is read by `main()` before any command runs."""


def output_console() -> Console:
    """Where commands print tables: the terminal's width, or wide enough for a log file or pipe."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 140)
