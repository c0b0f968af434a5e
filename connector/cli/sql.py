"""`bt-sync sql`: a read-only query over the synced tables, printed as a table, CSV or JSON.

The query runs in an in-memory DuckDB whose views read the tables' files
directly (the Parquet tree, or the Iceberg tables' current snapshot): it never
opens the analysts' DuckDB file, so it never waits for, or makes wait, a sync
or another session.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from connector.cli.app import CheckedCommand, app, output_console, unwritable_output
from connector.cli.options import (
    DestinationOption,
    DuckDbOption,
    IcebergCatalogOption,
    IcebergNamespaceOption,
    IcebergWarehouseOption,
    NoParquetOption,
    ParquetOption,
    warehouse_settings,
)

# Rows shown in a terminal table; CSV and JSON stream every row.
TABLE_ROWS = 1000


class OutputFormat(StrEnum):
    """How `bt-sync sql` prints its result."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command(cls=CheckedCommand)
def sql(
    query: str = typer.Argument(
        ..., help="One SELECT statement over the synced tables (see README: Tables)."
    ),
    output: OutputFormat | None = typer.Option(
        None, "--format", help="table (default on a terminal), csv (default otherwise) or json."
    ),
    duckdb: Path | None = DuckDbOption,
    parquet: str | None = ParquetOption,
    no_parquet: bool = NoParquetOption,
    destination: str | None = DestinationOption,
    iceberg_catalog: str | None = IcebergCatalogOption,
    iceberg_warehouse: str | None = IcebergWarehouseOption,
    iceberg_namespace: str | None = IcebergNamespaceOption,
) -> None:
    """Run a read-only SQL query over the synced tables; it never waits for, nor blocks, a running sync."""
    from connector.destinations.query import run_query

    store = warehouse_settings(
        duckdb=duckdb,
        parquet=parquet,
        no_parquet=no_parquet,
        destination=destination,
        iceberg_catalog=iceberg_catalog,
        iceberg_warehouse=iceberg_warehouse,
        iceberg_namespace=iceberg_namespace,
    )
    chosen = output or (OutputFormat.TABLE if sys.stdout.isatty() else OutputFormat.CSV)
    with run_query(store, query, readable=True) as result:
        try:
            if chosen is OutputFormat.TABLE:
                result.print_table(output_console(reader_may_leave=True), TABLE_ROWS)
            elif chosen is OutputFormat.CSV:
                result.write_csv(sys.stdout.buffer)
            else:
                result.write_json(sys.stdout.buffer)
            sys.stdout.flush()  # the result's end, buffered: its write fails here, not at the exit
        except BrokenPipeError:
            # The reader has the rows it wanted (`bt-sync sql … | head`): stopping early is no failure.
            return
        except OSError as error:
            # Writing is the only I/O here outside DuckDB's and Arrow's reading of the result.
            import pyarrow as pa  # loaded by the query already; not by every command's start

            if isinstance(error, pa.ArrowException):
                raise
            raise unwritable_output(error) from None
