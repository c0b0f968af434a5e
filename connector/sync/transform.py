"""Typing staged rows: raw event JSON in, the event table's columns out.

Runs in DuckDB (one `json_transform` parse per row, in C++, without the GIL),
on an in-memory database while the next pages are being fetched, so the
warehouse file is held only for the merge itself.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.tables import EventStream, json_struct, sql_literal


def write_typed_part(stream: EventStream, object_id: str, staged: pa.Table, destination: Path) -> None:
    """Write `staged` rows (`STAGING_SCHEMA`) to `destination` as Parquet in the table's column order.

    Every column but `_synced_at` is written; the key column is set to `object_id`
    rather than read from the rows, so rows can only land in the object they were fetched from.
    """
    with duckdb.connect(config={"threads": 1}) as connection:
        connection.register("staged_rows", staged)
        connection.execute(
            f"COPY ({_typed_select(stream, object_id)}) TO {sql_literal(str(destination))} "
            "(FORMAT parquet, COMPRESSION lz4)"
        )


def _typed_select(stream: EventStream, object_id: str) -> str:
    selected = []
    for column in stream.payload_columns:
        if column.name == stream.key_column:
            selected.append(f"{sql_literal(object_id)} AS {column.name}")
        elif column.name in ("id", "_xact_id"):
            selected.append(column.name)
        else:
            selected.append(f's."{column.name}"')
    selected.append("_extra::JSON AS _extra")
    struct = sql_literal(json_struct(stream.payload_columns))
    return (
        f"SELECT {', '.join(selected)} "
        f"FROM (SELECT id, _xact_id, _extra, json_transform(_raw, {struct}) AS s FROM staged_rows)"
    )
