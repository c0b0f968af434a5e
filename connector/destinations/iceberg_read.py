"""Reading the Iceberg tables through an in-memory DuckDB: `bt-sync sql`, `status` and the Dagster checks.

Each table's current snapshot is planned by pyiceberg, and its data files are
handed to DuckDB as an Arrow dataset, which reads only the columns and row
groups a query needs. The views give each column its warehouse type back
(JSON, UBIGINT), so a query reads the same over either destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from connector.destinations.base import SyncState
from connector.destinations.iceberg_catalog import planned_files
from connector.destinations.iceberg_schema import SYNC_STATE_TABLE, duckdb_select
from connector.destinations.views import SYNC_STATE_DESCRIPTION, table_view
from connector.duckdb_connect import connect
from schemas.kinds import CATALOG_TABLES, EVENT_STREAMS
from schemas.tables import SYNC_STATE_COLUMNS, Column, sql_identifier


def iceberg_reader(tables: Mapping[str, Table], states: Sequence[SyncState]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view of each table's current snapshot, and `sync_state` from `states`.

    Args:
        tables: the loaded tables by name.
        states: the committed states (the properties `sync_state` is written from, never behind them).
    """
    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    described: list[tuple[str, tuple[Column, ...], str]] = [
        *((s.table, s.columns, s.description) for s in EVENT_STREAMS.values()),
        *((t.table, t.columns, t.description) for t in CATALOG_TABLES),
    ]
    for name, columns, description in described:
        _view(con, name, columns, description, _snapshot(tables[name]))
    state_rows = pa.Table.from_pylist(
        [s.model_dump() for s in states], schema=tables[SYNC_STATE_TABLE].schema().as_arrow()
    )
    _view(con, SYNC_STATE_TABLE, SYNC_STATE_COLUMNS, SYNC_STATE_DESCRIPTION, state_rows)
    return con


def _view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: tuple[Column, ...],
    description: str,
    rows: ds.Dataset | pa.Table,
) -> None:
    stored = f"_iceberg_{name}"
    con.register(stored, rows)
    for statement in table_view(
        name, columns, f"(SELECT {duckdb_select(columns)} FROM {sql_identifier(stored)})", description
    ):
        con.execute(statement)


def _snapshot(table: Table) -> ds.Dataset | pa.Table:
    """The table's current rows: a lazy dataset over its data files, or read whole when it needs merging.

    Files with delete files (written by another engine) or a file system pyarrow cannot open
    directly are read through pyiceberg, which applies the deletes.
    """
    scan = table.scan()
    tasks = planned_files(scan)
    io = table.io
    if any(task.delete_files for task in tasks) or not isinstance(io, PyArrowFileIO):
        return scan.to_arrow()
    schema = table.schema().as_arrow()
    if not tasks:
        return schema.empty_table()
    scheme, netloc, _ = PyArrowFileIO.parse_location(tasks[0].file.file_path)
    paths = [PyArrowFileIO.parse_location(task.file.file_path)[2] for task in tasks]
    return ds.dataset(paths, schema=schema, format="parquet", filesystem=io.fs_by_scheme(scheme, netloc))
