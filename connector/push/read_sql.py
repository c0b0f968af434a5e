"""Read the result of a read-only SQL query over the synced tables as the rows of a push.

The query runs once, through `run_query` (an in-memory DuckDB of views over the tables'
files, so it never waits for, nor blocks, a sync). Its result is copied into a private
DuckDB database that spills to a temporary directory, sorted by all its columns: a push
reads its rows more than once (validate, then send), and a rerun must meet the same rows
in the same order for a checkpoint's batch numbers to mean the same rows again, while
DuckDB returns the rows of a query without ORDER BY in a different order on every run.
Rows are numbered from 1 in that sorted order.

JSON columns arrive as their values (objects, arrays, text, numbers), maps as objects,
lists as arrays, as in a Parquet file.
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from contextlib import closing
from types import TracebackType
from typing import Self

import pyarrow as pa

from connector.config import WarehouseSettings
from connector.destinations.query import run_query
from connector.display import printable
from connector.duckdb_connect import connect
from connector.errors import PushError, QueryError
from connector.progress import ProgressReporter
from connector.push.arrow_values import ColumnPlan
from connector.push.map import exact_json
from connector.push.origin import OriginColumns
from connector.push.read import CHUNK_ROWS, RowChunk, refuse_repeated_names
from connector.push.read_arrow import arrow_rows, column_plan
from connector.push.spill import SpillDirectory
from connector.wiring import open_destination
from schemas.tables import sql_identifier, sql_literal

NAME = "query result"
# What the kept rows may hold in memory before they spill to disk. One thread: DuckDB's sort of wide
# rows runs out of memory under this limit with two (measured: a million 1.3 KB rows), not with one.
MEMORY_LIMIT = "256MB"
THREADS = 1


class QuerySource:
    """The rows of a query's result, read once and kept, sorted, until `close`; a context manager.

    Args:
        settings: the warehouse whose tables the query reads.
        sql: one SELECT statement.
        progress: shows the rows the query returned.

    Raises:
        QueryError: the statement is not one SELECT, or DuckDB refused it (one line).
        WarehouseError: nothing was synced yet, or the tables cannot be read.
        PushError: a column has no JSON form, or two columns share a name.
    """

    name = NAME
    columns_complete = True

    def __init__(self, settings: WarehouseSettings, sql: str, progress: ProgressReporter) -> None:
        self.sql = sql
        self._settings = settings
        # The result's columns read (by position) and how, once the mapping says which it sends.
        self._read: list[int] = []
        self._plans: list[ColumnPlan] | None = None
        self._spill = SpillDirectory("sql")
        self._db = connect(memory_limit=MEMORY_LIMIT, threads=THREADS, temp_directory=self._spill.name)
        try:
            self._load(settings, sql, progress)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop the kept rows."""
        self._db.close()
        self._spill.cleanup()

    def chunks(self) -> Iterator[RowChunk]:
        """Yield the rows in sorted order, one bounded chunk at a time; each call reads them afresh."""
        if self._plans is None:
            self.read_only(set(self.columns))
        assert self._plans is not None
        kept = ", ".join(f"c{index}" for index in self._read)
        next_row = 1
        for batch in self._db.sql(f"SELECT {kept} FROM result").to_arrow_reader(CHUNK_ROWS):
            named = batch.rename_columns([self.columns[index] for index in self._read])
            yield RowChunk(next_row, arrow_rows(named, self._plans))
            next_row += batch.num_rows

    def read_only(self, columns: Set[str]) -> None:
        """Read, convert and check only `columns`: one with no JSON form is refused only if it is sent,
        as a file's is. The rows are still numbered by every column (`ORDER BY ALL`).

        Raises:
            PushError: one of `columns` has no JSON form, or would be carried wrongly by Arrow.
        """
        self._read = [index for index, name in enumerate(self.columns) if name in columns]
        read = {self.columns[index] for index in self._read}
        _refuse_wrong_in_arrow({name: kind for name, kind in self._wrong_in_arrow.items() if name in read})
        self._plans = [
            _plan(self._schema.field(index), self.columns[index] in self.json_columns) for index in self._read
        ]

    def links_to_nothing(self, link: OriginColumns) -> int:
        """How many of the result's (object id, id) pairs, NULLs aside, name no row of the event table
        `link` names: a result of other rows that merely has such columns (`SELECT id, project_id FROM
        experiments`, an aggregate keyed by a day) would link its records to spans that do not exist."""
        positions = {name: self.columns.index(name) for name in (link.object_id, link.id)}
        kinds = [self._schema.field(at).type for at in positions.values()]
        if not all(pa.types.is_string(kind) or pa.types.is_large_string(kind) for kind in kinds):
            return 0  # not text: each row is refused as a bad origin (`OriginColumns.of`)
        pairs = self._db.sql(
            f"SELECT DISTINCT c{positions[link.object_id]} AS o, c{positions[link.id]} AS i FROM result "
            "WHERE o IS NOT NULL AND i IS NOT NULL"
        ).to_arrow_table()
        with open_destination(self._settings, prepare=False).reader(pinned=True) as con:
            con.register("pairs", pairs)
            (missing,) = con.execute(
                "SELECT count(*) FROM pairs AS p WHERE NOT EXISTS "
                f"(SELECT 1 FROM {sql_identifier(link.table)} AS t "
                f"WHERE t.{sql_identifier(link.object_id)} = p.o AND t.{sql_identifier(link.id)} = p.i)"
            ).fetchone() or (0,)
        return int(missing)

    def listed_dataset(self, project: str, dataset: str) -> str | None:
        """The id of the dataset `project`/`dataset` as the warehouse's catalog tables list it (as of its
        last sync), if they do: what a dry run, which asks the API nothing, knows of it."""
        lookup = (
            "SELECT d.id FROM datasets AS d JOIN projects AS p ON p.id = d.project_id "
            f"WHERE p.name = {sql_literal(project)} AND d.name = {sql_literal(dataset)}"
        )
        try:
            with run_query(self._settings, lookup) as result:
                found = [value for batch in result.batches() for value in batch.column(0).to_pylist()]
        except QueryError:  # no dataset listed yet (a sync of `--objects logs` alone)
            return None
        return found[0] if len(found) == 1 else None

    def _load(self, settings: WarehouseSettings, sql: str, progress: ProgressReporter) -> None:
        with run_query(settings, sql) as result, closing(progress.task("run query")) as task:
            self.columns: tuple[str, ...] = tuple(result.schema.names)
            refuse_repeated_names(NAME, list(self.columns))
            self._wrong_in_arrow = dict(result.wrong_in_arrow)
            self.json_columns = frozenset(result.json_columns)
            self._schema = result.schema
            # Columns kept by position: DuckDB compares names without case, and a result may hold `a` and `A`.
            positional = [f"c{index}" for index in range(len(self.columns))]
            self._db.from_arrow(pa.Table.from_batches([], result.schema).rename_columns(positional)).create(
                "unsorted"
            )
            for batch in result.batches():
                self._db.from_arrow(batch.rename_columns(positional)).insert_into("unsorted")
                task.advance(rows=batch.num_rows)
        # ORDER BY ALL: the first column first, so a result led by `id` is numbered in id order.
        self._db.execute("CREATE TABLE result AS SELECT * FROM unsorted ORDER BY ALL; DROP TABLE unsorted")


def _refuse_wrong_in_arrow(columns: dict[str, str]) -> None:
    """Refuse the first column whose values Arrow would carry wrongly (`QueryResult.wrong_in_arrow`).

    Raises:
        PushError: naming the column, its type and what to cast it to.
    """
    if columns:
        name, kind = next(iter(columns.items()))
        raise PushError(
            printable(
                f'{NAME}, column "{name}": type {kind} cannot be sent faithfully (Arrow drops a time\'s '
                "offset, wraps a UHUGEINT beyond 2**127 and holds a BIGNUM or a VARIANT as DuckDB's "
                "bytes): cast it to VARCHAR in the query"
            )
        )


def _plan(field: pa.Field, is_json: bool) -> ColumnPlan:
    if is_json:
        return ColumnPlan(field.type, exact_json)
    return column_plan(NAME, field)
