"""The warehouse tables: their columns, DuckDB types and keys.

Rows arrive as raw JSON text and are typed inside DuckDB with one
`json_transform` per row (one parse, in C++), so a column is described by its
DuckDB type and by the Python types its JSON value may have: a value of any
other type is kept in `_extra` instead of being nulled silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.api import ObjectType

_JSON_VALUE = (dict, list, str, int, float, bool)


@dataclass(frozen=True)
class Column:
    """One table column.

    Args:
        name: column and JSON key name.
        duckdb_type: type in the DuckDB table (and in `json_transform`).
        accepts: Python types a JSON value must have to fit the column.
    """

    name: str
    duckdb_type: str
    accepts: tuple[type, ...]


def _varchar(name: str) -> Column:
    return Column(name, "VARCHAR", (str,))


def _json(name: str) -> Column:
    return Column(name, "JSON", _JSON_VALUE)


_EVENT_HEAD = (
    _varchar("id"),
    Column("_xact_id", "UBIGINT", (str, int)),
    Column("created", "TIMESTAMPTZ", (str,)),
    _varchar("project_id"),
)
_EVENT_BODY = (
    _varchar("span_id"),
    _varchar("root_span_id"),
    Column("is_root", "BOOLEAN", (bool,)),
    Column("span_parents", "VARCHAR[]", (list,)),
    Column("tags", "VARCHAR[]", (list,)),
    _json("input"),
    _json("output"),
    _json("expected"),
    _json("error"),
    Column("scores", "MAP(VARCHAR, DOUBLE)", (dict,)),
    _json("metadata"),
    _json("metrics"),
    _json("context"),
    _json("span_attributes"),
    _json("origin"),
    _json("comments"),
    _json("audit_data"),
    _json("facets"),
    _json("classifications"),
    _varchar("_pagination_key"),
)
EXTRA_COLUMN = Column("_extra", "JSON", (dict,))
SYNCED_AT_COLUMN = Column("_synced_at", "TIMESTAMPTZ", ())


@dataclass(frozen=True)
class EventStream:
    """How one kind of event container maps onto its table.

    Args:
        object_type: the API object type whose `fetch` feeds the table.
        table: DuckDB table and Parquet directory name.
        key_column: the column naming the object; rows are unique per (key_column, id).
        scope_columns: object-identifying columns besides `project_id`.
    """

    object_type: ObjectType
    table: str
    key_column: str
    scope_columns: tuple[Column, ...]

    @property
    def payload_columns(self) -> tuple[Column, ...]:
        """Columns read from the event JSON, in table order."""
        return _EVENT_HEAD + self.scope_columns + _EVENT_BODY

    @property
    def columns(self) -> tuple[Column, ...]:
        """Every column of the table, in order."""
        return (*self.payload_columns, EXTRA_COLUMN, SYNCED_AT_COLUMN)


PROJECT_LOGS = EventStream(
    ObjectType.PROJECT_LOGS,
    "project_logs",
    "project_id",
    (_varchar("org_id"), _varchar("log_id"), _json("_async_scoring_state")),
)
EXPERIMENT_EVENTS = EventStream(
    ObjectType.EXPERIMENT, "experiment_events", "experiment_id", (_varchar("experiment_id"),)
)
DATASET_RECORDS = EventStream(ObjectType.DATASET, "dataset_records", "dataset_id", (_varchar("dataset_id"),))

EVENT_STREAMS: dict[ObjectType, EventStream] = {
    stream.object_type: stream for stream in (PROJECT_LOGS, EXPERIMENT_EVENTS, DATASET_RECORDS)
}


@dataclass(frozen=True)
class CatalogTable:
    """A table with one row per API object (project, experiment or dataset)."""

    table: str
    columns: tuple[Column, ...]


_CATALOG_TAIL = (Column("_raw", "JSON", (dict,)), SYNCED_AT_COLUMN)
PROJECTS = CatalogTable(
    "projects",
    (
        _varchar("id"),
        _varchar("org_id"),
        _varchar("name"),
        Column("created", "TIMESTAMPTZ", (str,)),
        _varchar("user_id"),
        *_CATALOG_TAIL,
    ),
)
_OBJECT_COMMON = (
    _varchar("id"),
    _varchar("project_id"),
    _varchar("name"),
    _varchar("description"),
    Column("created", "TIMESTAMPTZ", (str,)),
    _varchar("user_id"),
    _json("metadata"),
    Column("tags", "VARCHAR[]", (list,)),
)
EXPERIMENTS = CatalogTable(
    "experiments",
    (
        *_OBJECT_COMMON,
        _varchar("dataset_id"),
        _varchar("dataset_version"),
        Column("public", "BOOLEAN", (bool,)),
        *_CATALOG_TAIL,
    ),
)
DATASETS = CatalogTable("datasets", (*_OBJECT_COMMON, *_CATALOG_TAIL))
CATALOG_TABLES = (PROJECTS, EXPERIMENTS, DATASETS)

SYNC_STATE_DDL = """
CREATE TABLE IF NOT EXISTS sync_state (
    object_type VARCHAR NOT NULL,
    object_id VARCHAR NOT NULL,
    project_id VARCHAR,
    table_name VARCHAR NOT NULL,
    version UBIGINT,
    rows BIGINT NOT NULL,
    last_fetched_rows BIGINT NOT NULL,
    last_pages BIGINT NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL,
    parquet_version UBIGINT,
    PRIMARY KEY (object_type, object_id)
)
"""


def create_table_sql(table: str, columns: tuple[Column, ...]) -> str:
    """Return `CREATE TABLE IF NOT EXISTS` for a table with `columns`."""
    body = ",\n    ".join(f'"{c.name}" {c.duckdb_type}' for c in columns)
    return f'CREATE TABLE IF NOT EXISTS "{table}" (\n    {body}\n)'


def sql_literal(value: str) -> str:
    """Quote `value` as a SQL string literal (for the identifiers and paths DuckDB cannot bind)."""
    return "'" + value.replace("'", "''") + "'"


def json_struct(columns: tuple[Column, ...]) -> str:
    """Return the `json_transform` structure that types `columns` out of a JSON object."""
    fields = ", ".join(f'"{c.name}": "{c.duckdb_type}"' for c in columns)
    return "{" + fields + "}"
