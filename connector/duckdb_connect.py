"""In-memory DuckDB databases opened as bt-sync needs them: printing nothing to stdout."""

from __future__ import annotations

import duckdb


def connect(**config: str | bool | int | float | list[str]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database with `config`, its progress bar off.

    DuckDB prints its progress bar to the process's stdout, a terminal or not, for any statement that
    runs over two seconds: into the CSV or JSON `bt-sync sql` writes to a file, say.
    """
    database = duckdb.connect(config=config)
    # A setting of each connection, not of the database (a cursor's is off already).
    database.execute("SET enable_progress_bar = false")
    return database
