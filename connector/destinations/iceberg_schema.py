"""The warehouse tables as Iceberg tables: schemas, partitioning, and the casts between the two type systems.

Derived from `schemas.tables`, like every other face of the tables. Iceberg
has no JSON or unsigned type, so JSON payloads are stored as strings and
`_xact_id` as a long (every `_xact_id` fits: they are below 2^63); readers
through bt-sync (`bt-sync sql`, Dagster checks) get the DuckDB types back.
Event tables are partitioned by object and by day of `created`, so a
sync's deletes and overwrites stay within the partitions its rows touch.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

from schemas.tables import SYNC_STATE_COLUMNS, Column, EventStream, sql_identifier

SYNC_STATE_TABLE = "sync_state"
# The partition field of the day of `created`.
CREATED_DAY = "created_day"
# DuckDB types whose Iceberg column holds another DuckDB type.
_STORED_AS = {"JSON": "VARCHAR", "UBIGINT": "BIGINT"}
_PRIMITIVES: dict[str, IcebergType] = {
    "VARCHAR": StringType(),
    "JSON": StringType(),
    "UBIGINT": LongType(),
    "BIGINT": LongType(),
    "BOOLEAN": BooleanType(),
    "TIMESTAMPTZ": TimestamptzType(),
}


def iceberg_schema(columns: Sequence[Column]) -> Schema:
    """The Iceberg schema of a table with these columns (every field optional, documented)."""
    ids = count(len(columns) + 1)
    fields = [
        NestedField(
            number,
            column.name,
            _iceberg_type(column.duckdb_type, ids),
            required=False,
            doc=column.description,
        )
        for number, column in enumerate(columns, start=1)
    ]
    return Schema(*fields)


def event_partitioning(stream: EventStream, schema: Schema) -> PartitionSpec:
    """By object (identity of the key column), then by day of `created`."""
    key = schema.find_field(stream.key_column).field_id
    created = schema.find_field("created").field_id
    return PartitionSpec(
        PartitionField(source_id=key, field_id=1000, transform=IdentityTransform(), name=stream.key_column),
        PartitionField(source_id=created, field_id=1001, transform=DayTransform(), name=CREATED_DAY),
    )


def stored_select(columns: Sequence[Column], values: dict[str, str] | None = None) -> str:
    """A DuckDB select list giving each column in its stored (Iceberg) type.

    Args:
        columns: the table's columns, in order.
        values: SQL expressions for some columns (default: the column of the same name).
    """
    given = values or {}
    return ", ".join(
        f"{given.get(c.name, sql_identifier(c.name))}::{stored_type(c)} AS {sql_identifier(c.name)}"
        for c in columns
    )


def duckdb_select(columns: Sequence[Column]) -> str:
    """A DuckDB select list giving each stored column back in its warehouse type (JSON, UBIGINT)."""
    return ", ".join(
        f"{sql_identifier(c.name)}::{c.duckdb_type} AS {sql_identifier(c.name)}"
        if c.duckdb_type in _STORED_AS
        else sql_identifier(c.name)
        for c in columns
    )


def stored_type(column: Column) -> str:
    """The DuckDB type of the column's values as Iceberg stores them."""
    return _STORED_AS.get(column.duckdb_type, column.duckdb_type)


def _iceberg_type(duckdb_type: str, ids: count[int]) -> IcebergType:
    if duckdb_type.endswith("[]"):
        return ListType(next(ids), _iceberg_type(duckdb_type[:-2], ids), element_required=False)
    if duckdb_type == "MAP(VARCHAR, DOUBLE)":
        return MapType(next(ids), StringType(), next(ids), DoubleType(), value_required=False)
    return _PRIMITIVES[duckdb_type]


SYNC_STATE_SCHEMA = iceberg_schema(SYNC_STATE_COLUMNS)
