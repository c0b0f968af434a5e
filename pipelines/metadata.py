"""Materialization metadata: what a sync did, where the rows are, and a look at the newest of them.

Numbers are kept to those Dagster plots sensibly. A partition's materialization
carries its object's rows (`dagster/partition_row_count`, plotted by partition).
The whole table's rows and bytes (`dagster/row_count`, `dagster/size_bytes`: the
table size the asset's overview shows) go on an observation of the asset, not
of a partition, so they are plotted over time and never drawn across partitions.
What one sync of one object did is one line of text, since a time plot would
draw it as a line across unrelated objects.
"""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import duckdb

from connector.display import counted
from connector.sync.run import ObjectSummary
from pipelines.objects import BraintrustObject
from pipelines.resources import WarehouseResource
from schemas.tables import Column, sql_identifier

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60
# The columns a preview shows, those the table has, in this order.
_PREVIEW_COLUMNS = ("id", "name", "created", "input", "output", "expected", "scores", "tags", "description")
_WHITESPACE = re.compile(r"\s+")


def event_metadata(
    obj: BraintrustObject,
    summary: ObjectSummary,
    warehouse: WarehouseResource,
    shown: dg.MetadataValue | None,
    url: str | None,
) -> dict[str, dg.MetadataValue]:
    """Metadata of one synced object (one partition).

    Args:
        obj: the object.
        summary: what its sync did.
        warehouse: where the tables are.
        shown: its `object_preview`; None when the tables cannot be read (the preview is left out).
        url: the object's page in the Braintrust UI, if known.
    """
    stream = obj.ref.stream
    metadata = {
        "dagster/partition_row_count": dg.MetadataValue.int(summary.rows),
        **_location(warehouse, stream.table, f"{stream.table}/{stream.key_column}={obj.ref.object_id}"),
        "object_id": dg.MetadataValue.text(obj.ref.object_id),
        "project_id": dg.MetadataValue.text(obj.ref.project_id),
        "last_sync": dg.MetadataValue.text(sync_line(summary)),
        # An `_xact_id` is above 2**53: as a number the UI would round it.
        "version": dg.MetadataValue.text("" if summary.version is None else str(summary.version)),
    }
    if shown is not None:
        metadata["preview"] = shown
    if url is not None:
        metadata["braintrust_url"] = dg.MetadataValue.url(url)
    return metadata


def catalog_metadata(
    table: str,
    columns: tuple[Column, ...],
    listed: int,
    warehouse: WarehouseResource,
    connection: duckdb.DuckDBPyConnection,
) -> dict[str, dg.MetadataValue]:
    """Metadata of one catalog table after `listed` of its rows were listed and written.

    The table's row count is counted, not taken from the listing: a run narrowed to some projects
    keeps the other projects' rows.
    """
    ((rows,),) = connection.execute(f"SELECT count(*) FROM {sql_identifier(table)}").fetchall()
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "listed": dg.MetadataValue.int(listed),
        **_location(warehouse, table, table),
        "preview": preview(connection, table, columns, None),
    }


def _location(warehouse: WarehouseResource, table: str, directory: str) -> dict[str, dg.MetadataValue]:
    """Where analysts find the table: its qualified name, and for the DuckDB destination its files."""
    location: dict[str, dg.MetadataValue] = {
        "dagster/table_name": dg.MetadataValue.text(f"{warehouse.table_schema}.{table}")
    }
    if not warehouse.is_iceberg:
        location["dagster/uri"] = dg.MetadataValue.text(warehouse.uri(directory))
        location["duckdb_file"] = dg.MetadataValue.path(warehouse.duckdb_file())
    return location


def sync_line(summary: ObjectSummary) -> str:
    """What one sync of one object did, in a line."""
    mode = summary.mode + (" (resumed)" if summary.resumed else "")
    fetched = f"{counted(summary.rows_fetched, 'row versions')} fetched in {counted(summary.pages, 'pages')}"
    return (
        f"{mode}: {fetched}; "
        f"{summary.inserted:,} inserted, {summary.updated:,} updated, {summary.deleted:,} deleted "
        f"in {summary.seconds:.2f} s"
    )


def table_size(connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, dg.MetadataValue]:
    """Rows and bytes of every synced object of an event table, as their sync states count them."""
    row = connection.execute(
        "SELECT coalesce(sum(rows), 0), coalesce(sum(bytes), 0) FROM sync_state WHERE table_name = ?", [table]
    ).fetchone()
    rows, size = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"dagster/row_count": dg.MetadataValue.int(rows), "dagster/size_bytes": dg.MetadataValue.int(size)}


def object_preview(connection: duckdb.DuckDBPyConnection, obj: BraintrustObject) -> dg.MetadataValue:
    """The newest rows of one synced object (`preview`)."""
    stream = obj.ref.stream
    return preview(connection, stream.table, stream.columns, (stream.key_column, obj.ref.object_id))


def preview(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    columns: tuple[Column, ...],
    where: tuple[str, str] | None,
) -> dg.MetadataValue:
    """The newest rows of a table (or of one object in it) as a Markdown table, long values cut short.

    Args:
        connection: a reader of the synced tables.
        table: the table.
        columns: its columns.
        where: (column, value) selecting one object's rows; None for the whole table.
    """
    names = {c.name for c in columns}
    shown = [name for name in _PREVIEW_COLUMNS if name in names]
    order = "created DESC NULLS LAST, " if "created" in names else ""
    query = f"SELECT {', '.join(map(sql_identifier, shown))} FROM {sql_identifier(table)}"
    if where is not None:
        query += f" WHERE {sql_identifier(where[0])} = ?"
    query += f" ORDER BY {order}id LIMIT {PREVIEW_ROWS}"
    rows = connection.execute(query, [where[1]] if where is not None else []).fetchall()
    return dg.MetadataValue.md(_markdown(shown, rows))


def _markdown(header: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
    if not rows:
        return "*(no rows)*"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)
    text = _WHITESPACE.sub(" ", text).replace("|", "\\|")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"
