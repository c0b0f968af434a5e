"""Read-only SQL over the synced tables, streamed out as Arrow batches, CSV or JSON.

Used by `bt-sync sql` and `bt-sync push --sql`. The query runs in the
destination's in-memory DuckDB reader, whose views read the tables' files
directly, so it shares no lock with a sync or with analysts' sessions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import pairwise
from typing import IO, Any

import duckdb
import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from connector.config import DestinationKind, WarehouseSettings
from connector.destinations.filesystem import Root
from connector.destinations.interrupt import interruptible
from connector.destinations.views import damaged_files
from connector.display import counted, null_cell, plain_cells, shell_text_as_utf8
from connector.duckdb_connect import connect
from connector.duckdb_messages import decoded_duckdb_errors
from connector.errors import QueryError, first_line
from connector.wiring import open_destination
from schemas.tables import sql_identifier

BATCH_ROWS = 10_000
_READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})
_NOT_ONE_SELECT = "give exactly one SELECT statement: the tables are read-only here"
# What a CSV cell is quoted for.
_CSV_QUOTED = (",", '"', "\n", "\r")
_CSV_QUOTED_PATTERN = "[" + "".join(_CSV_QUOTED) + "]"
# What JSON text escapes: control characters, the quote and the backslash.
_JSON_ESCAPED_PATTERN = r'[\x00-\x1f"\\]'
_ANALYZE = re.compile(r"analy[sz]e", re.IGNORECASE)
# DuckDB's errors for a Parquet file it cannot decode, which name no file (a page damaged on disk).
_UNDECODABLE = re.compile(
    r"TProtocolException|Invalid string encoding found in Parquet|[Cc]orrupt|decompress|Invalid data"
    r"|Out of buffer"
)
_EXPLAIN = re.compile(rb"explain\b", re.IGNORECASE)
_ANALYZE_WORD = re.compile(rb"analy[sz]e\b", re.IGNORECASE)
# It runs what it explains: a COPY would write into the tables' directory. Told by the word anywhere in the
# text, never by where DuckDB's tokens say a statement starts: its parser reads some text (`$a$`, U+3000)
# otherwise than its tokenizer does.
_EXPLAIN_ANALYZE = "EXPLAIN ANALYZE runs what it explains: the tables are read-only here; use EXPLAIN"
# Types whose Python values print as reprs (`b'\\x00'`, `MonthDayNano(...)`); shown as DuckDB's text for them.
# A time too: Python reads DuckDB's end of the day, 24:00:00, as midnight; and a timestamp in nanoseconds,
# which Python's `datetime` cannot hold.
_SHOWN_AS_TEXT = frozenset({"BLOB", "BIT", "INTERVAL", "TIME", "TIME_NS", "TIMESTAMP_NS"})
# Types DuckDB hands to Arrow wrongly, alone or nested: a TIMETZ without its offset, a UHUGEINT of
# 2**127 or more wrapped around to a negative number, a BIGNUM or a VARIANT as DuckDB's own bytes.
# Shown as DuckDB's text; a push refuses them.
# As types, not as the names of a struct's fields (`STRUCT(VARIANT INTEGER)`; `_wrong_in_arrow`).
_WRONG_IN_ARROW = re.compile(r"(?:^|[ (])(?:TIME WITH TIME ZONE|UHUGEINT|BIGNUM|VARIANT)(?=$|[),\[])")
# A quoted name in a DuckDB type (`STRUCT("a b" INTEGER)`).
_QUOTED_NAME = re.compile(r'"(?:[^"]|"")*"')
# The first and last second Python's `datetime` holds (0001-01-01, 9999-12-31 23:59:59), from 1970.
_FIRST_SECOND, _LAST_SECOND = -62_135_596_800, 253_402_300_799
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}
# How the lines of a DuckDB error that name what the query may have meant start (a table, a column).
_DUCKDB_HINTS = ("Did you mean", "Candidate bindings:")
# The characters, and lines, of a value (or a column's name) a table shows: a terminal's table is to be
# read, a value in full is csv's or json's.
MOST_CELL_CHARS, MOST_CELL_LINES = 1000, 50
# The lines of DuckDB's picture of where a query stopped: the query's text, and carets under it.
_QUERY_PICTURE = re.compile(r"LINE \d+:|\^+$")


class QueryResult:
    """The result of a query, read once, batch by batch.

    Args:
        batches: the rows.
        json_columns: the columns of DuckDB type JSON, which Arrow carries as plain text.
        wrong_in_arrow: the columns whose values Arrow carries wrongly, with their DuckDB types.
    """

    def __init__(
        self,
        batches: pa.RecordBatchReader,
        json_columns: set[str],
        wrong_in_arrow: dict[str, str],
        settings: WarehouseSettings,
    ) -> None:
        self._batches = batches
        self._settings = settings
        self.schema: pa.Schema = batches.schema
        self.json_columns = json_columns
        self.wrong_in_arrow = wrong_in_arrow

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, in batches."""
        try:
            with decoded_duckdb_errors():
                yield from self._batches
        # DuckDB's error as it reads a batch ahead (a cast that fails on row 250,000) comes as an OSError.
        except (duckdb.Error, pa.ArrowException, OSError) as error:
            raise _failed(error, self._settings) from None

    def write_csv(self, out: IO[bytes]) -> None:
        """Write CSV with a header, quoting only where needed; JSON and nested values as JSON text;
        empty text as `""`, a missing value as an empty cell.

        Lines end in `\n`, as DuckDB's own `COPY` writes them and line-based tools expect. Each batch is
        laid out column by column in Arrow (`_csv_cells`): only the values Arrow writes otherwise than
        Python (floats, decimals, dates) pass through Python, as `_csv_cell` shows them.
        """
        out.write(_csv_line(list(self.schema.names)).encode())
        for batch in self.batches():
            flat = _as_text(batch, self.json_columns)
            if not flat.num_rows:
                continue
            # As large text: a batch of large values may hold more than the 2 GiB that text holds.
            cells = [_csv_cells(column).cast(pa.large_string()) for column in flat.columns]
            # The line's end joined to its last cell: the batch is copied once, by the join of the cells.
            last = pc.call_function("binary_join_element_wise", [cells[-1], *map(_large_text, ("\n", ""))])
            lines = pc.call_function("binary_join_element_wise", [*cells[:-1], last, _large_text(",")])
            out.write(_utf8_bytes(lines))

    def write_json(self, out: IO[bytes]) -> None:
        """Write a JSON array of row objects; JSON columns as JSON values, not strings.

        The array opens with its first row: a query that fails before any row leaves stdout empty, not `[`.
        Each batch's rows are laid out column by column in Arrow (`_json_texts`), as orjson writes them.
        """
        # What precedes each column's value in a row: `{"id":`, then `,"input":`, and so on.
        keys = [
            _large_text(("{" if index == 0 else ",") + orjson.dumps(name).decode() + ":")
            for index, name in enumerate(self.schema.names)
        ]
        first = True
        for batch in self.batches():
            if not batch.num_rows:
                continue
            parts: list[pa.Array | pa.Scalar] = []
            for key, name, column in zip(keys, self.schema.names, batch.columns, strict=True):
                parts += [key, _json_texts(column, is_json=name in self.json_columns)]
            # Each row ends with the separator of the next: the last one's is left out as it is written.
            ends = [_large_text("},\n"), _large_text("")]
            rows = pc.call_function("binary_join_element_wise", [*parts, *ends])
            out.write(b"[\n" if first else b",\n")
            out.write(_utf8_bytes(rows)[: -len(",\n")])
            first = False
        out.write(b"[]\n" if first else b"\n]\n")

    def print_table(self, console: Console, max_rows: int) -> None:
        """Print at most `max_rows` rows as a table, saying how many more there were, and of each value (and
        column name) its first `MOST_CELL_CHARS` characters or `MOST_CELL_LINES` lines, saying how many were
        cut."""
        # Values and column names are the data's: shown as written, never as rich markup or control codes;
        # a long word folded onto more lines, as long text is (one was cut to a line, the other shown whole).
        table = Table()
        headers = [_shown_in_a_cell(name) for name in self.schema.names]
        for header in plain_cells(*(text for text, _ in headers)):
            table.add_column(header, overflow="fold")
        shown = more = 0
        cut = sum(was_cut for _, was_cut in headers)
        for batch in self.batches():
            wanted = batch.slice(0, max_rows - shown)
            # Nested values as JSON text, as CSV shows them, not Python's reprs (`[('accuracy', 0.9)]`).
            for row in _python_rows(_as_text(wanted, self.json_columns)):
                values = list(row.values())
                # Rich measures every character of a cell: a value of megabytes took seconds and hundreds of
                # megabytes to show a few lines of.
                texts = [_shown_in_a_cell("" if value is None else str(value)) for value in values]
                cut += sum(was_cut for _, was_cut in texts)
                cells = plain_cells(*(text for text, _ in texts))
                table.add_row(
                    *(null_cell() if v is None else cell for v, cell in zip(values, cells, strict=True))
                )
            shown += wanted.num_rows
            more += batch.num_rows - wanted.num_rows
        console.print(table)
        if cut:
            console.print(
                f"{counted(cut, 'values')} cut at {MOST_CELL_CHARS:,} characters or {MOST_CELL_LINES} lines, "
                f"ending in … (use --format csv or json for {'it' if cut == 1 else 'them'} whole)"
            )
        if more:
            console.print(f"... and {more:,} more rows (use --format csv or json for every row)")


def _shown_in_a_cell(text: str) -> tuple[str, bool]:
    """`text` as a cell shows it: whole, or its first `MOST_CELL_CHARS` characters or `MOST_CELL_LINES`
    lines and an ellipsis; and whether it was cut."""
    if len(text) <= MOST_CELL_CHARS and text.count("\n") < MOST_CELL_LINES:
        return text, False
    lines = text[:MOST_CELL_CHARS].split("\n", MOST_CELL_LINES)[:MOST_CELL_LINES]
    return "\n".join(lines) + "…", True


@contextmanager
def run_query(settings: WarehouseSettings, sql: str, *, readable: bool = False) -> Iterator[QueryResult]:
    """Run one read-only statement over the tables of `settings`.

    Args:
        settings: whose tables to query.
        sql: the statement.
        readable: for printing: give repeated column names DuckDB's suffixes (`a`, `a_1`), as rows keyed
            by name would otherwise lose all but one, and BLOB, BIT, INTERVAL, TIMETZ and UHUGEINT values
            as text.

    Raises:
        QueryError: the statement is not one SELECT, or DuckDB refused it.
    """
    sql = shell_text_as_utf8(sql)
    try:
        sql.encode()
    except UnicodeEncodeError as error:  # bytes the shell passed that are not UTF-8
        raise QueryError(f"the query is not UTF-8 text (at character {error.start + 1})") from None
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(f"the query is not valid SQL: {_reason(error)}") from None
    if not statements:
        raise QueryError("the query is empty (only blanks or comments): give one SELECT statement")
    statement_kinds = [statement.type.name for statement in statements]
    if statement_kinds == ["MULTI"]:
        sql = _multi_as_a_query(_without_trailing_semicolon(sql, statements[0].type))
    elif len(statement_kinds) != 1 or statement_kinds[0] not in _READ_ONLY_STATEMENTS:
        raise QueryError(_NOT_ONE_SELECT)
    elif statement_kinds[0] == "EXPLAIN" and _ANALYZE.search(sql):
        raise QueryError(_EXPLAIN_ANALYZE)
    else:
        sql = _without_trailing_semicolon(sql, statements[0].type)
    # Pinned: the query opens only the committed files, not every version a sync replaced in the last hour.
    with open_destination(settings, prepare=False).reader(pinned=True) as con, interruptible(con):
        _confine_to_the_tables(con, settings)
        try:
            with decoded_duckdb_errors():  # an error quoting a value, cut inside a character
                relation = con.sql(sql)
                if relation is None:
                    raise QueryError("the statement returned no rows")
                if readable:
                    relation = _readable(relation)
                kinds = dict(zip(relation.columns, map(str, relation.types), strict=True))
                json_columns = {name for name, kind in kinds.items() if kind == "JSON"}
                wrong = {name: kind for name, kind in kinds.items() if _wrong_in_arrow(kind)}
                yield QueryResult(_arrow_reader(relation), json_columns, wrong, settings)
        except duckdb.PermissionException as error:
            raise QueryError(f"a query reads the synced tables only: {_reason(error)}") from None
        except duckdb.Error as error:
            raise _failed(error, settings) from None
        except (OverflowError, ValueError) as error:
            # A time DuckDB holds and Python's `datetime` cannot (before year 1, after 9999, nanoseconds),
            # in a list or a struct: alone, one is shown as DuckDB's text (`_python_rows`, `_readable`).
            if isinstance(error, ValueError) and "temporal type" not in str(error):
                raise  # not pyarrow's conversion of a time (a write to a closed file, say)
            reason = str(error).split(". ")[0]  # not pyarrow's advice to install pandas
            raise QueryError(
                f"a value of the result cannot be shown ({reason}): cast it to VARCHAR in the query"
            ) from None


def _failed(error: Exception, settings: WarehouseSettings) -> QueryError:
    """The error of a query that failed (`named_damage` where it can say more)."""
    return QueryError(named_damage(error, settings) or f"the query failed: {_reason(error)}")


def named_damage(error: Exception, settings: WarehouseSettings) -> str | None:
    """Where a query failed as DuckDB could not decode a Parquet file of the tree, an error naming no
    file: the files that cannot be read, each with its remedy. None for another error, or none found."""
    if settings.destination is not DestinationKind.DUCKDB or not _UNDECODABLE.search(str(error)):
        return None
    # Each file of the tree read whole: only once a query failed so.
    damaged = damaged_files(Root(settings.tables_root), whole=True)
    return "; ".join(damaged) if damaged else None


def _reason(error: Exception) -> str:
    """DuckDB's error on one line: its first line, and the hints after it that name what the query may
    have meant (`Did you mean "project_logs"?`). Its picture of where the query stopped (`LINE 1:` and
    carets under the query's text) does not fit one line. A first line ending in `:` says the reason
    follows (an extension DuckDB could not download): the lines after it are kept, joined."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return " ".join(line for line in lines if not _QUERY_PICTURE.match(line))
    hints = [line for line in lines[1:] if line.startswith(_DUCKDB_HINTS)]
    return " ".join([first_line(error), *hints])


def _arrow_reader(relation: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    """The result's rows in batches, or why Arrow cannot carry them.

    Raises:
        QueryError: a column's type nests deeper than Arrow takes (64 levels of lists or structs).
    """
    try:
        return relation.to_arrow_reader(BATCH_ROWS)
    except pa.ArrowInvalid as error:
        # Raised while the reader takes the result's schema, before any row: caught here only, as the
        # rows' own errors are caught by `QueryResult.batches`.
        raise QueryError(
            f"the result cannot be read ({first_line(error)}): cast the deeply nested column to JSON "
            "in the query"
        ) from None


def _wrong_in_arrow(kind: str) -> bool:
    """Whether a DuckDB type holds one that Arrow carries wrongly (`_WRONG_IN_ARROW`)."""
    return _WRONG_IN_ARROW.search(_QUOTED_NAME.sub('""', kind)) is not None


def _multi_as_a_query(sql: str) -> str:
    """A statement DuckDB runs as several (`_pivot_as_a_query`), or a plain EXPLAIN of one, as a query or
    an EXPLAIN of the query that runs it, if it is one.

    Raises:
        QueryError: the statement is not a query, nor an EXPLAIN of one, or is an EXPLAIN ANALYZE.
    """
    explained = _after_first_word(sql, _EXPLAIN)
    if explained is None:
        return _pivot_as_a_query(sql)
    # Only to say why: what runs is an EXPLAIN of the wrapped query, which an ANALYZE would not parse as.
    if _after_first_word(explained, _ANALYZE_WORD) is not None:
        raise QueryError(_EXPLAIN_ANALYZE)
    return f"EXPLAIN {_pivot_as_a_query(explained)}"


def _after_first_word(sql: str, word: re.Pattern[bytes]) -> str | None:
    """The text after `word` where it is the first token (comments before it aside), else None."""
    text = sql.encode()  # DuckDB's tokens start at byte offsets
    try:
        tokens = duckdb.tokenize(sql)
    except duckdb.Error:
        return None
    first = next((position for position, token in tokens if token != duckdb.token_type.comment), None)
    found = None if first is None else word.match(text, first)
    return None if found is None else text[found.end() :].decode()


def _pivot_as_a_query(sql: str) -> str:
    """A statement DuckDB runs as several, as a query that runs it, if it is one.

    DuckDB runs a PIVOT that finds its own columns (no `IN (...)`) as two statements, an ENUM of the
    values found (made in the command's in-memory database), then the query; so it runs a COPY, an
    INSERT or a CREATE TABLE of such a PIVOT, and its statement tells none of them apart. Only a query
    parses as a subquery: the wrapped text is what runs, so what runs is what was checked.

    Raises:
        QueryError: the statement is not a query.
    """
    wrapped = f"SELECT * FROM (\n{sql}\n)"  # on lines of its own: a comment ending `sql` ends there
    try:
        is_query = [statement.type.name for statement in duckdb.extract_statements(wrapped)] == ["MULTI"]
    except duckdb.Error:
        is_query = False
    if not is_query:
        raise QueryError(_NOT_ONE_SELECT)
    return wrapped


def _without_trailing_semicolon(sql: str, kind: duckdb.StatementType) -> str:
    """`sql`, one statement of `kind`, up to its last `;` and the comments after it: a relation wraps the
    query's text in another, where `SELECT 1; -- note` is a syntax error."""
    text = sql.encode()  # DuckDB's tokens start at byte offsets
    end = len(text)
    for position, token in reversed(duckdb.tokenize(sql)):
        if token != duckdb.token_type.comment and not text[position:].startswith(b";"):
            break
        end = position
    # Where its tokenizer reads the text otherwise than its parser does, the statement as given (checked).
    try:
        cut = text[:end].decode()
        same = [statement.type for statement in duckdb.extract_statements(cut)] == [kind]
    except (UnicodeDecodeError, duckdb.Error):
        return sql
    return cut if same else sql


def _confine_to_the_tables(con: duckdb.DuckDBPyConnection, settings: WarehouseSettings) -> None:
    """Let the query read the tables' files and no other file (`read_csv('/etc/passwd')`, say), and change
    no setting.

    An Iceberg reader's tables come through Arrow, not DuckDB's files; tables on object storage are
    left as they are (DuckDB reads them over HTTP).
    """
    allowed: list[str] = []
    confined = True
    if settings.destination is DestinationKind.DUCKDB:
        root = Root(settings.tables_root)
        confined = root.is_local
        allowed.append(root.uri().rstrip("/") + "/")  # as the views name the files
    if confined:
        con.execute("SET allowed_directories = ?", [allowed])
        con.execute("SET enable_external_access = false")
    # Nor change a setting: table functions may (`enable_profiling(save_location := ...)` wrote its
    # profile over a commit record, in the tables' directory DuckDB is allowed to read).
    con.execute("SET lock_configuration = true")


def _readable(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    # Selecting the columns by position is what makes DuckDB give repeated names their suffixes.
    unique = relation.project(", ".join(f"#{position}" for position in range(1, len(relation.columns) + 1)))
    return unique.project(
        ", ".join(_shown(name, str(kind)) for name, kind in zip(unique.columns, unique.types, strict=True))
    )


def _shown(name: str, kind: str) -> str:
    """SQL selecting column `name` of DuckDB type `kind` as the reader shows it."""
    column = sql_identifier(name)
    if kind in _SHOWN_AS_TEXT or _wrong_in_arrow(kind):
        return f"CAST({column} AS VARCHAR) AS {column}"
    if kind == "FLOAT":
        # Python widens a FLOAT to its exact double (0.1 as 0.10000000149011612): the shortest decimal
        # that reads back as the same FLOAT, DuckDB's text for it, is the number shown.
        return f"CAST(CAST({column} AS VARCHAR) AS DOUBLE) AS {column}"
    return column


def _as_text(batch: pa.RecordBatch, json_columns: set[str]) -> pa.RecordBatch:
    """CSV holds scalars: JSON columns as their text, nested values as JSON text, booleans as `true`."""
    columns, names = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_boolean(field.type):
            column = column.cast(pa.string())  # `true`, as DuckDB and JSON write it, not Python's `True`
        elif field.name not in json_columns and pa.types.is_nested(field.type):
            values = _plain_values(column, as_text=True)
            column = pa.array(
                [None if value is None else _json_text(value) for value in values],
                pa.string(),
            )
        columns.append(column)
        names.append(field.name)
    return pa.RecordBatch.from_arrays(columns, names=names)


def _json_texts(column: pa.Array, *, is_json: bool) -> pa.Array:
    """A column's values as JSON text, as orjson writes them (`null` for a missing one), as large text:
    a JSON column's (`is_json`) text as it is; text that needs no escape, integers, booleans and
    microsecond times in Arrow; any other value in Python."""
    kind = column.type
    if is_json:
        text = column
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = column.cast(pa.string())  # `true`, as JSON writes it
    elif _python_writes_like_arrow(column):
        text = _quoted(_iso_time(column, "%Y-%m-%dT%H:%M:%S"))
    elif _is_text(kind) and not _holds_match(column, _JSON_ESCAPED_PATTERN):
        text = _quoted(column)
    else:
        text = pa.array([_json_text(value) for value in _plain_values(column, as_text=False)])
    return pc.call_function("coalesce", [text.cast(pa.large_string()), _large_text("null")])


def _csv_cells(column: pa.Array) -> pa.Array:
    """A column's CSV cells as `_csv_cell` writes them: text quoted, integers and times written in Arrow
    (as Python writes them, and needing no quotes), any other value in Python."""
    kind = column.type
    if pa.types.is_integer(kind):
        return pc.call_function("coalesce", [column.cast(pa.string()), pa.scalar("")])
    if _python_writes_like_arrow(column):
        return pc.call_function("coalesce", [_iso_time(column, "%Y-%m-%d %H:%M:%S"), pa.scalar("")])
    if not _is_text(kind):
        return pa.array([_csv_cell(value) for value in _python_values(column)], pa.string())
    special = pc.MatchSubstringOptions(_CSV_QUOTED_PATTERN)
    quoted_for = pc.call_function("match_substring_regex", [column], special)
    needs_quotes = pc.call_function("or", [quoted_for, pc.call_function("equal", [column, pa.scalar("")])])
    if not needs_quotes.true_count:  # ids, names: most text columns need no quote in a whole batch
        return pc.call_function("coalesce", [column, pa.scalar("", column.type)])
    escaped = pc.call_function("replace_substring", [column], pc.ReplaceSubstringOptions('"', '""'))
    chosen = pc.call_function("if_else", [needs_quotes, _quoted(escaped), column])
    return pc.call_function("coalesce", [chosen, pa.scalar("", column.type)])


def _iso_time(column: pa.Array, layout: str) -> pa.Array:
    """Times (`_python_writes_like_arrow`) as Python writes them: without a fraction of zero
    (`12:00:00`, not `12:00:00.000000`), and UTC as `+00:00`."""
    text = pc.call_function("strftime", [column], pc.StrftimeOptions(layout))
    text = pc.call_function("replace_substring_regex", [text], pc.ReplaceSubstringOptions(r"\.0{6}$", ""))
    if column.type.tz is not None:
        text = pc.call_function("binary_join_element_wise", [text, pa.scalar("+00:00"), ""])
    return text


def _quoted(text: pa.Array) -> pa.Array:
    return pc.call_function("binary_join_element_wise", [pa.scalar('"'), text, pa.scalar('"'), ""])


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _holds_match(column: pa.Array, pattern: str) -> bool:
    """Whether any value of a text column matches the regular expression `pattern`."""
    return bool(
        pc.call_function("match_substring_regex", [column], pc.MatchSubstringOptions(pattern)).true_count
    )


def _python_writes_like_arrow(column: pa.Array) -> bool:
    """Whether Arrow's `strftime` writes these times as Python's `str` does, once trimmed: in microseconds
    (as DuckDB gives its timestamps), without a zone or in UTC (the reader's zone), each one a time
    Python holds (no other is written by Python either: `_python_values`)."""
    kind = column.type
    is_time = pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz in (None, "UTC")
    return is_time and _outside_mask(column) is None


def _large_text(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _utf8_bytes(text: pa.Array) -> memoryview:
    """The concatenated UTF-8 of a text array without nulls, as Arrow holds it (no copy)."""
    offsets = np.frombuffer(text.buffers()[1], np.int64 if pa.types.is_large_string(text.type) else np.int32)
    start, end = offsets[text.offset], offsets[text.offset + len(text)]
    return memoryview(text.buffers()[2])[start:end]


def _csv_line(values: list[Any]) -> str:
    """A CSV line as DuckDB's `COPY` writes it: empty text as `""`, a missing value as nothing, and a
    value quoted when it holds a comma, a quote, a line feed or a carriage return.

    Python's writer quotes neither empty text (the same empty cell as a missing value, and a row of
    one missing value was `""`, empty text) nor a carriage return alone, which splits the row for
    readers of CSV.
    """
    return ",".join(_csv_cell(value) for value in values) + "\n"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(special in text for special in _CSV_QUOTED):
        return '"' + text.replace('"', '""') + '"'
    return text


def _python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The batch's rows as Python values, as `_python_values` gives each column's."""
    columns = [_python_values(column) for column in batch.columns]
    return [dict(zip(batch.schema.names, row, strict=True)) for row in zip(*columns, strict=True)]


def _python_values(column: pa.Array) -> list[Any]:
    """A column's values in Python; a date or time Python cannot hold (before year 1, after 9999,
    DuckDB's `infinity`) as DuckDB's text for it, so that a value late in the result stops no output
    midway."""
    outside = _outside_python(column)
    if outside is None:
        return column.to_pylist()  # type: ignore[no-any-return]
    held, (positions, texts) = outside
    values: list[Any] = held.to_pylist()
    for position, text in zip(positions.tolist(), texts, strict=True):
        values[position] = text
    return values


def _outside_python(column: pa.Array) -> tuple[pa.Array, tuple[npt.NDArray[np.intp], list[str]]] | None:
    """For a date or time column holding values Python cannot hold: the column with 1970 in their place,
    and their positions and DuckDB's text for each; None for any other column."""
    found = _outside_mask(column)
    if found is None:
        return None
    values, outside = found
    texts = _duckdb_text(column.filter(pa.array(outside)))
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    held = pa.array(np.where(outside, 0, values), mask=nulls).view(column.type)
    return held, (np.flatnonzero(outside), texts)


def _outside_mask(
    column: pa.Array,
) -> tuple[npt.NDArray[np.signedinteger[Any]], npt.NDArray[np.bool_]] | None:
    """A date or time column's values as counts (`_counts`) and where they fall outside what Python
    holds; None for any other column, or one Python holds whole."""
    counts = _counts(column)
    if counts is None:
        return None
    values, first, last = counts
    outside = (values < first) | (values > last)
    return (values, outside) if outside.any() else None


def _counts(column: pa.Array) -> tuple[npt.NDArray[np.signedinteger[Any]], int, int] | None:
    """A date or timestamp column's values as integer counts (nulls as 0), and the first and last that
    Python's `datetime` holds; None for another type."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        return None  # 64 bits of nanoseconds span the years 1677-2262 only
    if pa.types.is_timestamp(kind) or pa.types.is_date64(kind):
        per_second = _PER_SECOND[kind.unit if pa.types.is_timestamp(kind) else "ms"]
        first, last = _FIRST_SECOND * per_second, (_LAST_SECOND + 1) * per_second - 1
        integers = pa.int64()
    elif pa.types.is_date32(kind):
        first, last, integers = _FIRST_SECOND // 86400, _LAST_SECOND // 86400, pa.int32()
    else:
        return None
    return column.view(integers).fill_null(0).to_numpy(), first, last


def _duckdb_text(values: pa.Array) -> list[str]:
    """Values as DuckDB writes them as text (times with a zone in UTC, as the reader shows them)."""
    with connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("shown", pa.table({"value": values}))
        return [str(text) for (text,) in con.execute("SELECT value::VARCHAR FROM shown").fetchall()]


def _plain_values(column: pa.Array, *, as_text: bool) -> list[Any]:
    """A column's values as `_plain` shows them; a union's each as its member's type gives it (a map
    as an object), which its value alone does not tell."""
    kind = column.type
    if pa.types.is_union(kind):
        members = [_plain_values(column.field(index), as_text=as_text) for index in range(kind.num_fields)]
        member_of = {code: index for index, code in enumerate(kind.type_codes)}
        # Read from the buffers (validity, type codes, a dense union's offsets, then the members'):
        # pyarrow's `type_codes` and `offsets` of a slice start where the whole array's do.
        rows = slice(column.offset, column.offset + len(column))
        buffers = column.buffers()
        codes = np.frombuffer(buffers[1], np.int8)[rows].tolist()
        # A sparse union's members are its rows (a slice's sliced too); a dense one's are at its offsets.
        dense = kind.mode == "dense"
        positions = np.frombuffer(buffers[2], np.int32)[rows].tolist() if dense else range(len(column))
        return [members[member_of[code]][at] for code, at in zip(codes, positions, strict=True)]
    if _holds(kind, pa.types.is_union):
        return _nested_values(column, as_text=as_text)
    values = _python_values(column)
    if _holds(kind, _changed_as_text if as_text else _changed_in_json):
        values = [_plain(value, kind, as_text=as_text) for value in values]
    return values


def _nested_values(column: pa.Array, *, as_text: bool) -> list[Any]:
    """A struct's, list's or map's values that hold a union: each child column as `_plain_values` shows
    it (which tells a union's members apart), put together again row by row."""
    kind = column.type
    valid = column.is_valid().to_pylist()
    if pa.types.is_struct(kind):
        fields = [
            (field.name, _plain_values(column.field(index), as_text=as_text))
            for index, field in enumerate(kind)
        ]
        return [
            {name: values[row] for name, values in fields} if ok else None for row, ok in enumerate(valid)
        ]
    if isinstance(kind, pa.FixedSizeListType):
        ends = [(column.offset + row) * kind.list_size for row in range(len(column) + 1)]
    else:  # a list's or map's offsets, of a slice too, index the whole child
        ends = column.offsets.to_pylist()
    children = [column.keys, column.items] if pa.types.is_map(kind) else [column.values]
    first = ends[0]
    converted = [_plain_values(child.slice(first, ends[-1] - first), as_text=as_text) for child in children]
    rows: list[Any] = []
    for (start, end), ok in zip(pairwise(ends), valid, strict=True):
        held = range(start - first, end - first)
        if not ok:
            rows.append(None)
        elif pa.types.is_map(kind):
            keys, items = converted
            rows.append({_key_text(keys[at]): items[at] for at in held})
        else:
            rows.append([converted[0][at] for at in held])
    return rows


def _plain(value: Any, data_type: pa.DataType, *, as_text: bool = False) -> Any:
    """A value as JSON shows it, at any depth: Arrow gives a map as (key, value) pairs, JSON wants an
    object, whose keys are text (a key of another type as its JSON text: `1` as "1").

    `as_text`: for a CSV cell or a table's, where JSON's null for NaN and infinity would show them as
    missing, each is written as a scalar of the result is (`nan`, `inf`, `-inf`).
    """
    if value is None:
        return None
    if pa.types.is_map(data_type):
        pairs = (
            (
                _plain(key, data_type.key_type, as_text=as_text),
                _plain(item, data_type.item_type, as_text=as_text),
            )
            for key, item in value
        )
        return {_key_text(key): item for key, item in pairs}
    if pa.types.is_struct(data_type):
        return {field.name: _plain(value[field.name], field.type, as_text=as_text) for field in data_type}
    if isinstance(data_type, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        return [_plain(item, data_type.value_type, as_text=as_text) for item in value]
    if as_text and isinstance(value, float) and not math.isfinite(value):
        return orjson.Fragment(str(value))
    if pa.types.is_float32(data_type) and math.isfinite(value):
        # Python widens a FLOAT to its exact double (0.1 as 0.10000000149011612): the shortest decimal
        # that is the same FLOAT is shown, as DuckDB shows it and as a FLOAT column is (`_shown`).
        return float(str(np.float32(value)))
    return value


def _changed_as_text(data_type: pa.DataType) -> bool:
    return bool(pa.types.is_map(data_type) or pa.types.is_floating(data_type))


def _changed_in_json(data_type: pa.DataType) -> bool:
    return bool(pa.types.is_map(data_type) or pa.types.is_float32(data_type))


def _holds(data_type: pa.DataType, kind: Callable[[pa.DataType], bool]) -> bool:
    """Whether a value of `data_type` holds a type of `kind` at any depth (where `_plain` changes it)."""
    if kind(data_type):
        return True
    if pa.types.is_struct(data_type):
        return any(_holds(field.type, kind) for field in data_type)
    if pa.types.is_map(data_type):
        return _holds(data_type.key_type, kind) or _holds(data_type.item_type, kind)
    if isinstance(data_type, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        return _holds(data_type.value_type, kind)
    return False


def _key_text(key: Any) -> str:
    """A map's key as the text of a JSON object's key: as JSON shows it, but a text (a date) unquoted, and
    a float as Python writes it (JSON writes NaN and infinity as null, which would merge them)."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return str(key)
    text = _json_text(key)
    shown: str = orjson.loads(text) if text.startswith('"') else text
    return shown


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    """What JSON shows of a value orjson has no form for: a decimal (a HUGEINT, a DECIMAL, a `sum` of
    integers) as the exact number it is, anything else as its text."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    return str(value)
