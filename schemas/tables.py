"""The warehouse tables: their columns, DuckDB types, keys and meaning.

This module is the single source of column truth: the staging transform, the
Parquet files, the DuckDB views, the Iceberg tables, the Dagster column schemas
and the README's table section all derive from it. Rows arrive as raw JSON and
are typed inside DuckDB (`json_transform`, one parse per page), so a column is
described by its DuckDB type and by the JSON shapes that fit it: a value of
another shape is kept in `_extra` instead of being nulled silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike, fspath

from schemas.api import ObjectType


@dataclass(frozen=True)
class Column:
    """One table column.

    Args:
        name: column and JSON key name.
        duckdb_type: type in the tables (and in `json_transform`).
        description: what the column holds, for analysts (view comments, Dagster, README).
    """

    name: str
    duckdb_type: str
    description: str

    @property
    def is_json(self) -> bool:
        """Free-form payload stored as JSON text: any JSON value fits."""
        return self.duckdb_type == "JSON"

    @property
    def is_map(self) -> bool:
        """A map (`scores`): `json_struct` reads it as its JSON text, for the SQL reading it to type."""
        return self.duckdb_type.startswith("MAP(")


def _varchar(name: str, description: str) -> Column:
    return Column(name, "VARCHAR", description)


def _json(name: str, description: str) -> Column:
    return Column(name, "JSON", description)


def _timestamp(name: str, description: str) -> Column:
    return Column(name, "TIMESTAMPTZ", description)


def _tags(description: str) -> Column:
    return Column("tags", "VARCHAR[]", description)


ID = _varchar("id", "Row id, unique within its object (the same id in two objects is two rows).")
XACT_ID = Column(
    "_xact_id",
    "UBIGINT",
    "Version of the row: the transaction id that wrote it. Greater is newer; compare as a number.",
)
CREATED = _timestamp("created", "When the row was first created.")
PROJECT_ID = _varchar("project_id", "The project the row belongs to.")

_EVENT_BODY = (
    _varchar("span_id", "Id of the span this row records."),
    _varchar("root_span_id", "Id of the trace's root span: rows sharing it form one trace."),
    Column("is_root", "BOOLEAN", "Whether the row is the root span of its trace."),
    Column("span_parents", "VARCHAR[]", "Span ids of the span's parents (empty for a root span)."),
    _tags("Tags set on the row."),
    _json("input", "The span's input (free-form JSON)."),
    _json("output", "The span's output (free-form JSON)."),
    _json("expected", "The expected output, for evaluations and dataset records."),
    _json("error", "The error the span raised, if any."),
    Column(
        "scores",
        "MAP(VARCHAR, DOUBLE)",
        "Scores between 0 and 1 by name: scores['accuracy'].",
    ),
    _json("metadata", "User metadata (free-form JSON object)."),
    _json("metrics", "Metrics: start/end times (Unix seconds), token counts and others."),
    _json("context", "Where the span was logged from (caller file, line, function)."),
    _json("span_attributes", "Span name and type (llm, task, tool, score, ...)."),
    _json(
        "origin", "For dataset records and spans copied from elsewhere: the object and row they came from."
    ),
    _json("comments", "Comments attached to the row."),
    _json("audit_data", "Audit trail of the row's changes (feedback sources and metadata)."),
    _json("facets", "Facets computed for the row."),
    _json("classifications", "Classifications computed for the row."),
    _varchar("_pagination_key", "The API's pagination key of the row."),
)
EXTRA = _json(
    "_extra",
    "Fields the API sent that have no column, values whose type did not fit their column (a map with a "
    "key given twice too), and the text of times finer than a microsecond; NULL when every field fit.",
)
SYNCED_AT = _timestamp("_synced_at", "When bt-sync fetched this version of the row.")
RAW = _json("_raw", "The whole object as the API returned it.")


@dataclass(frozen=True)
class EventStream:
    """How one kind of event container maps onto its table.

    Args:
        object_type: the API object type whose `fetch` feeds the table.
        table: table and Parquet directory name.
        key_column: the column naming the object; rows are unique per (key_column, id).
        scope_columns: object-identifying columns besides `project_id`.
        description: what one row is.
    """

    object_type: ObjectType
    table: str
    key_column: str
    scope_columns: tuple[Column, ...]
    description: str

    @property
    def payload_columns(self) -> tuple[Column, ...]:
        """Columns read from the event JSON, in table order."""
        return (ID, XACT_ID, CREATED, PROJECT_ID, *self.scope_columns, *_EVENT_BODY)

    @property
    def columns(self) -> tuple[Column, ...]:
        """Every column of the table, in order."""
        return (*self.payload_columns, EXTRA, SYNCED_AT)

    @property
    def file_columns(self) -> tuple[Column, ...]:
        """The columns stored inside a Parquet file: the key column lives in the file's directory name."""
        return tuple(c for c in self.columns if c.name != self.key_column)


PROJECT_LOGS = EventStream(
    ObjectType.PROJECT_LOGS,
    "project_logs",
    "project_id",
    (
        _varchar("org_id", "The organization the project belongs to."),
        _varchar("log_id", "Always 'g': the project's log."),
        _json("_async_scoring_state", "State of online scoring for the row."),
    ),
    "A project's log span (production traces), latest version.",
)
EXPERIMENT_EVENTS = EventStream(
    ObjectType.EXPERIMENT,
    "experiment_events",
    "experiment_id",
    (_varchar("experiment_id", "The experiment the row belongs to."),),
    "An experiment's span (evaluation cases and their sub-spans), latest version.",
)
DATASET_RECORDS = EventStream(
    ObjectType.DATASET,
    "dataset_records",
    "dataset_id",
    (_varchar("dataset_id", "The dataset the record belongs to."),),
    "A dataset record, latest version.",
)


@dataclass(frozen=True)
class CatalogTable:
    """A table with one row per API object (project, experiment, prompt, ...).

    Args:
        table: table and Parquet directory name.
        columns: typed API fields, then `_raw` (the whole object) and `_synced_at`.
        description: what one row is.
    """

    table: str
    columns: tuple[Column, ...]
    description: str

    @property
    def typed_columns(self) -> tuple[Column, ...]:
        """The columns read out of the API object (all but `_raw` and `_synced_at`)."""
        return tuple(c for c in self.columns if c not in (RAW, SYNCED_AT))


_CATALOG_TAIL = (RAW, SYNCED_AT)
_NAME = _varchar("name", "Name.")
_DESCRIPTION = _varchar("description", "Description.")
_CREATED_AT = _timestamp("created", "When the object was created.")
_USER_ID = _varchar("user_id", "Who created it.")
_IN_PROJECT = _varchar("project_id", "The project it belongs to.")
_METADATA = _json("metadata", "User metadata.")

PROJECTS = CatalogTable(
    "projects",
    (
        _varchar("id", "Project id."),
        _varchar("org_id", "The organization."),
        _NAME,
        _CREATED_AT,
        _USER_ID,
        *_CATALOG_TAIL,
    ),
    "A project.",
)
_CONTAINER_COMMON = (_IN_PROJECT, _NAME, _DESCRIPTION, _CREATED_AT, _USER_ID, _METADATA, _tags("Tags."))
EXPERIMENTS = CatalogTable(
    "experiments",
    (
        _varchar("id", "Experiment id."),
        *_CONTAINER_COMMON,
        _varchar("dataset_id", "The dataset the experiment ran on, if any."),
        _varchar("dataset_version", "The version of that dataset."),
        Column("public", "BOOLEAN", "Whether the experiment is public."),
        *_CATALOG_TAIL,
    ),
    "An experiment.",
)
DATASETS = CatalogTable(
    "datasets", (_varchar("id", "Dataset id."), *_CONTAINER_COMMON, *_CATALOG_TAIL), "A dataset."
)
_FUNCTION_COMMON = (
    _IN_PROJECT,
    _NAME,
    _varchar("slug", "Stable identifier within the project."),
    _DESCRIPTION,
    _CREATED_AT,
    XACT_ID,
    _json("prompt_data", "The prompt: model, messages and parameters."),
    _varchar("function_type", "What the function is for: llm, scorer, task, tool, ..."),
    _METADATA,
    _tags("Tags."),
)
PROMPTS = CatalogTable(
    "prompts",
    (_varchar("id", "Prompt id."), *_FUNCTION_COMMON, *_CATALOG_TAIL),
    "A prompt, at its latest version (`_xact_id`).",
)
FUNCTIONS = CatalogTable(
    "functions",
    (
        _varchar("id", "Function id."),
        *_FUNCTION_COMMON,
        _json("function_data", "The implementation: code, prompt or global function."),
        _json("origin", "Where the function was defined from."),
        _json("function_schema", "JSON schema of its parameters and return value."),
        *_CATALOG_TAIL,
    ),
    "A function: scorer, tool, task or LLM call, at its latest version (`_xact_id`).",
)
PROJECT_SCORES = CatalogTable(
    "project_scores",
    (
        _varchar("id", "Score definition id."),
        _IN_PROJECT,
        _NAME,
        _DESCRIPTION,
        _CREATED_AT,
        _USER_ID,
        _varchar("score_type", "slider, categorical, weighted, minimum, maximum, online, free-form, ..."),
        _json("categories", "For categorical scores: the categories and their values."),
        _json("config", "Score configuration (online scoring rules, destination, ...)."),
        _varchar("position", "Sort position in the UI."),
        *_CATALOG_TAIL,
    ),
    "A score definition of a project: what a score name means and how it is given.",
)
PROJECT_TAGS = CatalogTable(
    "project_tags",
    (
        _varchar("id", "Tag definition id."),
        _IN_PROJECT,
        _NAME,
        _DESCRIPTION,
        _CREATED_AT,
        _USER_ID,
        _varchar("color", "Color in the UI."),
        _varchar("position", "Sort position in the UI."),
        *_CATALOG_TAIL,
    ),
    "A tag definition of a project.",
)

SYNC_STATE_COLUMNS = (
    _varchar("object_type", "project_logs, experiment or dataset."),
    _varchar(
        "object_id",
        "The object's id (the project id for project logs). Its Dagster partition key is `name`, with "
        "`~<object_id>` appended where names are ambiguous (`bt-sync status` shows it).",
    ),
    _varchar("name", "A readable name: `project/experiment`, `project/dataset` or `project` for logs."),
    _varchar("project_id", "The project it belongs to."),
    _varchar("table_name", "The table holding its rows."),
    Column(
        "version",
        "UBIGINT",
        "Watermark: the newest `_xact_id` read for the object, a deletion's included (so it may be newer "
        "than any row the table holds), where its next incremental read stops.",
    ),
    Column("rows", "BIGINT", "Rows of the object in its table."),
    Column("files", "BIGINT", "Parquet files holding those rows."),
    Column("bytes", "BIGINT", "Bytes of those files."),
    Column("last_fetched_rows", "BIGINT", "Row versions the last sync received."),
    Column("last_pages", "BIGINT", "Fetch pages the last sync requested."),
    Column("last_bytes_written", "BIGINT", "Parquet bytes the last sync wrote."),
    _timestamp("synced_at", "When the last sync of the object committed."),
)


def sql_literal(value: str) -> str:
    """Quote `value` as a SQL string literal (for the identifiers and paths DuckDB cannot bind)."""
    return "'" + value.replace("'", "''") + "'"


def sql_path_list(paths: Iterable[str | PathLike[str]]) -> str:
    """The paths as a SQL list of string literals (the files a `read_parquet` reads)."""
    return "[" + ", ".join(sql_literal(fspath(path)) for path in paths) + "]"


def read_parquet(files: str, *options: str, hive_key: str | None = None) -> str:
    """SQL reading the Parquet `files` (a SQL string or list), taking no `name=value` directory of their
    paths for a column but `hive_key`'s: DuckDB takes every one by default, above the tables' root too (a
    warehouse under `lake/org_id=acme/` showed `acme` as every row's `org_id`, and merges wrote it back).

    Args:
        files: the files, as SQL (`sql_literal`, `sql_path_list`).
        options: more of `read_parquet`'s options, as SQL (`filename = true`).
        hive_key: the column the files' `<hive_key>=<value>` directories give, by DuckDB's Hive partitioning
            (which skips the files of other values a query's filter rules out, a join's too), for paths
            holding no other `name=value` directory: it would take that one too.
    """
    hive = "hive_partitioning = false"
    if hive_key is not None:
        hive = f"hive_partitioning = true, hive_types = {{{sql_literal(hive_key)}: 'VARCHAR'}}"
    return f"read_parquet({', '.join([files, hive, *options])})"


def sql_identifier(name: str) -> str:
    """Quote `name` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def json_struct(columns: tuple[Column, ...]) -> str:
    """Return the `json_transform` structure that types `columns` out of a JSON object: times, versions
    and maps come out as their text, for the SQL reading them to type."""
    fields = ", ".join(f'"{c.name}": "{_transform_type(c)}"' for c in columns)
    return "{" + fields + "}"


def _transform_type(column: Column) -> str:
    # Read as text and checked in SQL: a timestamp that does not parse must be kept, not nulled, and
    # a version must be plain digits ("1.5" would otherwise round to 2).
    if column.duckdb_type == "TIMESTAMPTZ" or column is XACT_ID:
        return "VARCHAR"
    # Read as its JSON text and typed in SQL: typed here, a map with a key given twice would be NULL
    # without a trace, where its text can be kept.
    return "JSON" if column.is_map else column.duckdb_type
