"""CSV and Parquet files through pyarrow, and Arrow batches (of a file or of a query's result) as rows.

Kept apart from `read.py` so that only a push of CSV, Parquet or a query imports pyarrow.
"""

from __future__ import annotations

import codecs
import io
import json
import sys
from collections.abc import Callable, Generator, Iterator, Set
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from connector.display import counted, printable
from connector.errors import PushError, first_line
from connector.push.arrow_values import (
    VALUE_ERRORS,
    ColumnPlan,
    NoJsonForm,
    is_json_column,
    plan_column,
    python_rows,
    time_count,
    zones_in_utc,
)
from connector.push.read import (
    CHUNK_BYTES,
    CHUNK_ROWS,
    InputFile,
    RowChunk,
    RowProblem,
    file_error,
    file_place,
    not_utf8,
    refuse_repeated_names,
)

# pyarrow reads up to 32 blocks ahead of the consumer, so the block size bounds memory. A row must
# fit in one block: a file with a longer row is read again with blocks eight times bigger
# (`_block_sizes`), up to the largest. A row's columns that are not sent count too, so the largest
# block is over what one insert request takes (6 MiB). Measured on a 1 GB file, with a row of 20 MB:
# 16 MiB blocks peaked at 0.94 GB, 32 MiB at 1.24 GB, 64 MiB at 1.36 GB; without it 0.35 GB.
CSV_BLOCK_BYTES = 1 << 20
CSV_MAX_BLOCK_BYTES = 16 << 20
# A Parquet file is read a column chunk's pages at a time, through buffers of this size. By default
# pyarrow reads each row group's column chunks whole before the first batch: memory then follows the
# writer's row groups (a 1,000,000-row group of 214 MB: 218 MB of Arrow memory, against 18 MB).
PARQUET_BUFFER_BYTES = 1 << 20

_REPEATED_HEADER = "it repeats the header, as a line of two CSV files joined into one does: delete the line"


class CsvReader:
    """CSV through pyarrow's streaming reader, every value kept as text.

    Columns are read as binary and decoded per chunk: pyarrow's own UTF-8 check
    fails the whole stream without saying where, and we must name the row.
    """

    columns_complete = True
    json_columns: frozenset[str] = frozenset()

    def __init__(self, source: InputFile, delimiter: str = ",") -> None:
        self._source = source
        self._delimiter = delimiter
        name = source.path.name
        names = self._header()
        # pyarrow either fails to decode a header that is not UTF-8 or replaces its bad bytes with U+FFFD.
        if names is None or any("\ufffd" in column for column in names):
            raise PushError(f"{name}: the header is not valid UTF-8")
        # Columns without a name (the trailing separators of a spreadsheet's export) are never sent, and
        # no flag may name one (`PushOptions`): only named ones must be told apart.
        refuse_repeated_names(name, [column for column in names if column])
        self.columns = tuple(names)
        self._checked: Set[str] = frozenset(names)
        probe = self.chunks()
        has_rows = next(probe, None) is not None
        probe.close()
        if not has_rows:
            raise PushError(f"{name} has a header but no rows")

    def chunks(self) -> Generator[RowChunk]:
        next_row = 1
        for block_bytes in _block_sizes():
            try:
                for chunk in self._read(block_bytes):
                    # After a restart with bigger blocks, leave out the rows already yielded.
                    skip = next_row - chunk.first_row
                    if skip >= len(chunk.rows):
                        continue
                    yield RowChunk(next_row, chunk.rows[skip:]) if skip > 0 else chunk
                    next_row = chunk.first_row + len(chunk.rows)
                return
            except (pa.ArrowInvalid, OSError) as error:
                if not _row_over_block(error) or block_bytes == CSV_MAX_BLOCK_BYTES:
                    raise _arrow_file_error(self._source.path, error, near_row=next_row) from None

    def read_only(self, columns: Set[str]) -> None:
        """Refuse a row for text that is not UTF-8 only in `columns`; elsewhere its bad bytes become
        U+FFFD (every column is still read: the last one's text tells an unclosed quote)."""
        self._checked = frozenset(columns)

    def _header(self) -> list[str] | None:
        for block_bytes in _block_sizes():
            try:
                # Malformed rows are skipped here: `chunks` reports them with their row numbers.
                reader = self._open(block_bytes, lambda _row: "skip")
                # Closed, not left reading ahead: see `_read`.
                with closing(reader):
                    names: list[str] = reader.schema.names
                    return names
            except UnicodeDecodeError:
                return None
            except (pa.ArrowInvalid, OSError) as error:
                if _ONE_LINE in str(error):
                    raise self._one_line() from None
                if not _row_over_block(error) or block_bytes == CSV_MAX_BLOCK_BYTES:
                    raise _arrow_file_error(self._source.path, error) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _one_line(self) -> PushError:
        """What a file pyarrow finds no line end in is: blank, or a header alone (without its line end)."""
        with self._source.open() as stream:
            blank = not stream.read(CSV_BLOCK_BYTES).strip()
        return PushError(f"{self._source.path.name} {'is empty' if blank else 'has a header but no rows'}")

    def _read(self, block_bytes: int) -> Iterator[RowChunk]:
        malformed: dict[int, RowProblem] = {}

        def on_malformed(row: Any) -> str:
            # pyarrow numbers records from 1 counting the header, and leaves the row out of the batch.
            reason = f"expected {counted(row.expected_columns, 'columns')}, found {row.actual_columns}"
            lines = len(row.text.splitlines())
            if lines > 1 and row.text.count('"') % 2:
                # A quote opened by mistake in any column but the last: the lines up to the next quote, in
                # another row perhaps, are read as one row, the wrong width, and left out with it. (A quoted
                # value holding line breaks, in a row merely of the wrong width, has its quotes in pairs.)
                reason += (
                    f" across {lines} lines: a quoted value runs to the next quote, so a quote left open "
                    'takes in the lines after it (a quote inside a quoted value is written "")'
                )
            malformed[row.number - 1] = RowProblem(None, reason, values=row.text)
            return "skip"

        convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(self.columns, pa.binary()),
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=False,
        )
        next_row = 1
        reader = self._open(block_bytes, on_malformed, convert)
        # Closed however the read ends: left open, pyarrow's I/O thread may still be reading ahead
        # when a parse error ends the process, which then aborts (1 push in 120 under load).
        last: RowChunk | None = None
        with closing(reader):
            try:
                while (block := _next_block(reader)) is not None:
                    for start in range(0, block.num_rows, CHUNK_ROWS):
                        rows = _with_malformed(
                            malformed,
                            next_row,
                            _decode_csv_batch(block.slice(start, CHUNK_ROWS), self._checked),
                        )
                        # Held back by one chunk: only the file's last row can hold an unclosed quote.
                        if last is not None:
                            yield last
                        last = RowChunk(next_row, rows)
                        next_row += len(rows)
            except (pa.ArrowInvalid, OSError):
                # The rows before the error are whole: `chunks` counts them, to name the row at fault.
                if last is not None:
                    yield last
                raise
        if malformed:
            if last is not None:
                yield last
            yield RowChunk(next_row, _with_malformed(malformed, next_row, []))
        elif last is not None:
            yield self._closed_quotes_checked(last)

    def _open(
        self,
        block_bytes: int,
        on_malformed: Callable[[Any], str],
        convert: pa_csv.ConvertOptions | None = None,
    ) -> pa_csv.CSVStreamingReader:
        """pyarrow's streaming reader of the file, in blocks of `block_bytes`, split by the delimiter, on a
        file only it closes (`_arrow_stream`); `on_malformed` decides a row of too many or too few values."""
        # One thread: the malformed-row handler then sees rows in file order, with their numbers.
        read = pa_csv.ReadOptions(block_size=block_bytes, use_threads=False)
        parse = pa_csv.ParseOptions(
            delimiter=self._delimiter, newlines_in_values=True, invalid_row_handler=on_malformed
        )
        with _quiet_undecodable_rows():
            return pa_csv.open_csv(
                _arrow_stream(self._source), read_options=read, parse_options=parse, convert_options=convert
            )

    def _closed_quotes_checked(self, last: RowChunk) -> RowChunk:
        """`last`, the file's last chunk, with its last row a problem if it ends inside a quoted value.

        pyarrow ends a quoted value that is never closed at the end of the file, without a word: when it is
        the last column, the rows after its opening quote become part of its text and the row counts stay
        right, so nothing else shows them missing.
        """
        row = last.rows[-1]
        if isinstance(row, RowProblem):
            return last
        value = row.get(self.columns[-1])
        # Only a value with a line break in it can have taken in other rows: the tail is read just then.
        if value is None or ("\n" not in value and "\r" not in value):
            return last
        quoted = b'"' + value.encode().replace(b'"', b'""')
        tail = _tail(self._source, len(quoted) + 3)
        if tail.rstrip(b"\r\n").endswith(quoted + b'"') or not tail.endswith(quoted):
            return last
        lines = counted(len(value.splitlines()), "lines")
        problem = RowProblem(
            self.columns[-1],
            f"its quoted value is never closed, so it takes in the rest of the file ({lines}) as its "
            'text: close the quote (a quote inside a quoted value is written "")',
            values=row,
        )
        return RowChunk(last.first_row, [*last.rows[:-1], problem])


def _tail(source: InputFile, size: int) -> bytes:
    """The last `size` bytes of the file's content, decompressed."""
    with source.open() as stream:
        if source.compression is None:
            stream.seek(max(0, stream.seek(0, io.SEEK_END) - size))
            return stream.readall()
        # A compressed stream cannot seek from its end: read through it, keeping the last bytes.
        tail = b""
        while block := stream.read(max(size, 1 << 20)):
            tail = (tail + block)[-size:]
        return tail


def _next_block(reader: pa_csv.CSVStreamingReader) -> pa.RecordBatch | None:
    with _quiet_undecodable_rows():
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None


@contextmanager
def _quiet_undecodable_rows() -> Iterator[None]:
    """Keep pyarrow's report of a malformed row that is not UTF-8 off stderr.

    pyarrow decodes a malformed row's text before calling the invalid-row handler; when the
    text is not UTF-8 it prints "Exception ignored … UnicodeDecodeError" and stops with a parse
    error, which the caller reports in one line.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, UnicodeDecodeError):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _block_sizes() -> Iterator[int]:
    """The block sizes to read a CSV file in, each tried once a row did not fit in the one before."""
    size = CSV_BLOCK_BYTES
    while size < CSV_MAX_BLOCK_BYTES:
        yield size
        size *= 8
    yield CSV_MAX_BLOCK_BYTES


def _row_over_block(error: Exception) -> bool:
    return isinstance(error, pa.ArrowInvalid) and "straddling object" in str(error)


def _with_malformed(
    malformed: dict[int, RowProblem], first_row: int, rows: list[dict[str, Any] | RowProblem]
) -> list[dict[str, Any] | RowProblem]:
    """Put the rows pyarrow skipped as malformed back at their place in the numbering."""
    if not malformed:
        return rows
    merged: list[dict[str, Any] | RowProblem] = []
    pending = iter(rows)
    number = first_row
    while True:
        skipped = malformed.pop(number, None)
        if skipped is not None:
            merged.append(skipped)
        else:
            row = next(pending, None)
            if row is None:
                return merged
            merged.append(row)
        number += 1


def _decode_csv_batch(batch: pa.RecordBatch, checked: Set[str]) -> list[dict[str, Any] | RowProblem]:
    try:
        text = pa.RecordBatch.from_arrays(
            [column.cast(pa.string()) for column in batch.columns], batch.schema.names
        )
        rows: list[dict[str, Any] | RowProblem] = text.to_pylist()
    except pa.ArrowInvalid:
        rows = [_decode_csv_row(row, checked) for row in batch.to_pylist()]
    for index in _repeated_headers(batch):
        row = rows[index]
        values = row.values if isinstance(row, RowProblem) else row
        rows[index] = RowProblem(None, _REPEATED_HEADER, values=values)
    return rows


def _repeated_headers(batch: pa.RecordBatch) -> list[int]:
    """The rows whose every named column holds its own name, when at least two columns have a name (one
    column's value may well be its name)."""
    named = [(index, name.encode()) for index, name in enumerate(batch.schema.names) if name]
    if len(named) < 2:
        return []
    (first, first_name), others = named[0], named[1:]
    # A second file's header keeps its byte order mark, which pyarrow drops only at the file's start; after
    # the mark, a quoted name keeps its quotes too (a quote opens a field only as its first byte).
    quoted = b'"' + first_name.replace(b'"', b'""') + b'"'
    spellings = (
        [first_name, *(codecs.BOM_UTF8 + name for name in (first_name, quoted))]
        if first == 0
        else [first_name]
    )
    found = pc.call_function(
        "is_in", [batch.column(first)], pc.SetLookupOptions(pa.array(spellings, pa.binary()))
    )
    if not found.true_count:
        return []
    return [
        row
        for row in np.flatnonzero(found.to_numpy(zero_copy_only=False)).tolist()
        if all(batch.column(index)[row].as_py() == name for index, name in others)
    ]


def _decode_csv_row(raw: dict[str, bytes | None], checked: Set[str]) -> dict[str, Any] | RowProblem:
    """Decode one row; the slow path, taken only for chunks holding invalid UTF-8 (in `checked` columns a
    problem, elsewhere replaced)."""
    try:
        return {name: None if value is None else value.decode() for name, value in raw.items()}
    except UnicodeDecodeError:
        pass
    shown = {name: None if value is None else value.decode(errors="replace") for name, value in raw.items()}
    for name, value in raw.items():
        if name not in checked:
            continue
        try:
            (value or b"").decode()
        except UnicodeDecodeError as error:
            return RowProblem(name, not_utf8(error), values=shown)
    return shown


class ParquetReader:
    columns_complete = True

    def __init__(self, source: InputFile) -> None:
        self._path = path = source.path
        try:
            self._file = pq.ParquetFile(str(path), pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
        except (pa.ArrowInvalid, OSError) as error:
            raise _arrow_file_error(path, error) from None
        schema = self._file.schema_arrow
        refuse_repeated_names(path.name, schema.names)
        if self._file.metadata.num_rows == 0:
            raise PushError(f"{path.name} has no rows")
        self.columns = tuple(schema.names)
        self.json_columns = frozenset(field.name for field in schema if is_json_column(field.type))
        self._read = list(self.columns)
        self._plans: list[ColumnPlan] | None = None

    def read_only(self, columns: Set[str]) -> None:
        """Read, convert and check only `columns`: one with no JSON form is refused only if it is sent.

        Raises:
            PushError: one of `columns` has no JSON form.
        """
        self._read = [name for name in self.columns if name in columns]
        self._plans = self._planned()

    def _planned(self) -> list[ColumnPlan]:
        schema = self._file.schema_arrow
        return [column_plan(self._path.name, schema.field(name)) for name in self._read]

    def chunks(self) -> Iterator[RowChunk]:
        if self._plans is None:
            self._plans = self._planned()
        next_row = 1
        try:
            batch_rows = _chunk_rows(self._file.metadata)
            for batch in self._file.iter_batches(batch_size=batch_rows, columns=self._read):
                chunk = RowChunk(next_row, arrow_rows(batch, self._plans))
                next_row += len(chunk.rows)
                yield chunk
        except (pa.ArrowInvalid, OSError) as error:
            raise _arrow_file_error(self._path, error, near_row=next_row) from None


def _chunk_rows(metadata: pq.FileMetaData) -> int:
    """Rows of a Parquet file turned into Python values at a time: `CHUNK_ROWS`, or fewer where its rows
    are large (their bytes uncompressed, by its row group of the widest rows): 1,024 rows of 5 MB each
    made 5 GB of Arrow values and more of Python's, where a JSON Lines file of the same rows stayed
    under 80 MB."""
    groups = (metadata.row_group(index) for index in range(metadata.num_row_groups))
    widest = max((group.total_byte_size / group.num_rows for group in groups if group.num_rows), default=0.0)
    return max(1, min(CHUNK_ROWS, int(CHUNK_BYTES / widest))) if widest else CHUNK_ROWS


def column_plan(source_name: str, field: pa.Field) -> ColumnPlan:
    """How to read the values of an Arrow column as JSON values.

    Raises:
        PushError: the column's type has no JSON form, naming the column and what to cast it to.
    """
    try:
        return plan_column(field.type)
    except NoJsonForm as error:
        where = f'{source_name}, column "{field.name}"'
        raise PushError(printable(f"{where}: type {field.type} cannot be sent as JSON: {error}")) from None


def arrow_rows(batch: pa.RecordBatch, plans: list[ColumnPlan]) -> list[dict[str, Any] | RowProblem]:
    """The rows of an Arrow batch as dicts, following `plans`; a row with an unreadable value is a problem."""
    try:
        rows: list[dict[str, Any] | RowProblem] = list(python_rows(batch, plans))
        return rows
    except VALUE_ERRORS:
        return [_arrow_row(batch.slice(index, 1), plans) for index in range(batch.num_rows)]


def _arrow_row(row: pa.RecordBatch, plans: list[ColumnPlan]) -> dict[str, Any] | RowProblem:
    """Convert one row, naming the column whose value cannot be converted (e.g. text that is not UTF-8).

    A row that cannot be converted keeps its other values, and the failing ones as text, for the
    rejects file: its id is how a user finds it (a query's row number is no place in any file).
    """
    try:
        return python_rows(row, plans)[0]
    except VALUE_ERRORS:
        pass
    values: dict[str, Any] = {}
    problems: list[RowProblem] = []
    for index, (name, plan) in enumerate(zip(row.schema.names, plans, strict=True)):
        try:
            values.update(_value(row.select([index]), plan))
        except VALUE_ERRORS as error:
            values[name] = _as_text(row.column(index)[0])
            problems.append(RowProblem(name, _value_problem(error)))
    if not problems:  # a zoned moment sent in UTC
        return values
    return RowProblem(problems[0].column, problems[0].reason, values=values)


def _value(column: pa.RecordBatch, plan: ColumnPlan) -> dict[str, Any]:
    """The one value of a one-row, one-column batch, its zoned moments in UTC where their zone's local
    time cannot hold them (`zones_in_utc`)."""
    try:
        return python_rows(column, [plan])[0]
    except OverflowError:
        if (in_utc := zones_in_utc(column.schema.field(0).type)) is None:
            raise
        return python_rows(column, [plan_column(in_utc)])[0]


def _as_text(value: pa.Scalar) -> str:
    """A value that has no JSON form, as text."""
    if pa.types.is_time(value.type):  # Python would show a time past the day's end as one within it
        return f"{value.cast(time_count(value.type)).as_py()} {value.type.unit}"
    if pa.types.is_struct(value.type) or _is_list(value.type):
        # As the object or array it is (pyarrow shows a struct as a list of pairs, a list's NaN as Python's
        # `nan`), NaN and infinities as JavaScript writes them.
        try:
            return json.dumps(value.as_py(), default=str, ensure_ascii=False)
        except VALUE_ERRORS:
            pass
    try:
        return str(value)
    except VALUE_ERRORS:
        pass
    try:  # a date beyond Python's years, as Arrow writes it
        return str(value.cast(pa.string()).as_py())
    except (pa.ArrowException, ValueError):
        pass
    try:  # text that is not UTF-8, with U+FFFD
        return str(value.cast(pa.binary()).as_py().decode(errors="replace"))
    except (pa.ArrowException, ValueError, TypeError):  # nested: no cast
        return f"<a {value.type} value>"


def _is_list(kind: pa.DataType) -> bool:
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))


def _value_problem(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return not_utf8(error)
    if isinstance(error, KeyError):
        return f"a map holds the same key twice, and a JSON object keeps only one ({error.args[0]})"
    if isinstance(error, OverflowError):
        # Python's words ("days=-2147483647; must have magnitude <= 999999999") say nothing more to a user.
        return "a date or time outside the years 1 to 9999 has no JSON form here: send it as text"
    return f"the value has no JSON form ({error})"


# pyarrow's error for a file it finds no line end in: blank, or one line without its end.
_ONE_LINE = "Empty CSV file or block: cannot infer number of columns"


# The most byte order marks skipped at a CSV file's start.
_MOST_MARKS = 8


def _arrow_stream(source: InputFile) -> pa.NativeFile:
    """The file for pyarrow's CSV reader, which closes it once its last read is done.

    Never closed by us: the reader reads ahead on a thread of its own, and a read under way outlives
    the reader's close. A file closed under that read frees its descriptor for the next file opened,
    whose bytes the read then takes: a push lost rows without a word.
    """
    stream = pa.input_stream(str(source.path), compression=source.compression)
    # pyarrow drops one byte order mark; a tool that adds one to text that has one writes two, and the
    # second became part of the first column's name (`\ufeffid`: no id column, each row's id a hash).
    mark = codecs.BOM_UTF8
    with source.open() as raw:
        head = raw.read(len(mark) * _MOST_MARKS)
    marks = 0
    while head.startswith(mark, marks * len(mark)):
        marks += 1
    if marks > 1:
        stream.read((marks - 1) * len(mark))
    return stream


def _arrow_file_error(path: Path, error: Exception, near_row: int | None = None) -> PushError:
    if first_line(error) == "Empty CSV file":
        return PushError(f"{path.name} is empty")
    if _row_over_block(error):
        where = file_place(path, near_row)
        return PushError(
            f"{where}: a row is over {CSV_MAX_BLOCK_BYTES:,} bytes, longer than a CSV file's rows may be "
            "(its columns not sent count too): shorten it, or push the rows as JSON Lines or Parquet"
        )
    return file_error(path, error, 0 if near_row is None else near_row - 1)
