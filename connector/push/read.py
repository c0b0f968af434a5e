"""Stream the rows of a CSV, Parquet or JSONL file (optionally compressed) in bounded chunks.

Memory is bounded by a few read blocks and one chunk of rows, never by the file. Rows come out as plain dicts
(column name → value) numbered from 1: for CSV the first record after the
header is row 1 (a quoted value may span lines, so rows are not lines); for
JSONL the row number is the line number. A row that cannot be decoded (bad
UTF-8, wrong field count, not a JSON object) comes out as a `RowProblem` in its
place, so the caller decides whether to fail or to skip it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from connector.errors import PushError

# pyarrow reads up to 32 blocks ahead of the consumer, so the block size bounds memory. A row must
# fit in one block: a file with a longer row is read again with blocks big enough for any row that
# fits in one insert request (6 MiB).
CSV_BLOCK_BYTES = 1 << 20
CSV_MAX_BLOCK_BYTES = 8 << 20
# Rows turned into Python objects at a time; a dict per row costs far more than its Arrow bytes.
CHUNK_ROWS = 1024
JSONL_READ_BYTES = 1 << 20
_UTF8_BOM = b"\xef\xbb\xbf"

_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")


class FileFormat(StrEnum):
    """The input formats `bt-sync push` reads."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


_FORMAT_BY_SUFFIX = {
    ".csv": FileFormat.CSV,
    ".parquet": FileFormat.PARQUET,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
}


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one row cannot be sent.

    Args:
        column: the column at fault, or None when the whole row is unreadable.
        reason: what is wrong, for a human.
        values: the row as read (a dict), or its raw text when it could not be split into columns.
    """

    column: str | None
    reason: str
    values: dict[str, Any] | str | None = None

    def describe(self, file_name: str, row: int) -> str:
        """Return `FILE row N, column "C": reason`."""
        where = f"{file_name} row {row}" + (f', column "{self.column}"' if self.column is not None else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RowChunk:
    """Consecutive rows: `rows[i]` is row number `first_row + i`."""

    first_row: int
    rows: list[dict[str, Any] | RowProblem]


class _Reader(Protocol):
    columns: tuple[str, ...]

    def chunks(self) -> Iterator[RowChunk]: ...


class SourceFile:
    """An open input file: its column names up front, then its rows chunk by chunk.

    Args:
        path: the file to read.
        file_format: its format, or None to infer it from the extension.

    Raises:
        PushError: the file is missing, empty, of an unknown format, or not readable as that format.
    """

    def __init__(self, path: Path, file_format: FileFormat | None = None) -> None:
        self.path = path
        self.format = file_format or infer_format(path)
        if not path.is_file():
            raise PushError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise PushError(f"{path.name} is empty")
        self._reader = _READERS[self.format](path)
        self.columns = self._reader.columns

    def chunks(self) -> Iterator[RowChunk]:
        """Yield the file's rows in order, one bounded chunk at a time; each call reads the file afresh."""
        yield from self._reader.chunks()


def infer_format(path: Path) -> FileFormat:
    """Return the format named by a file's extension, ignoring a compression suffix.

    Args:
        path: e.g. `data.csv`, `data.jsonl.gz`, `data.parquet`.

    Raises:
        PushError: the extension names no supported format.
    """
    name = path.name.lower()
    for compression in _COMPRESSION_SUFFIXES:
        name = name.removesuffix(compression)
    file_format = _FORMAT_BY_SUFFIX.get(Path(name).suffix)
    if file_format is None:
        raise PushError(
            f"{path.name}: cannot tell the format from the extension; "
            "use .csv, .parquet or .jsonl (optionally .gz), or pass --format csv|parquet|jsonl"
        )
    return file_format


def _input_stream(path: Path) -> pa.NativeFile:
    """Open a file for streaming, decompressing by extension (`.gz`, `.bz2`, `.zst`, `.lz4`)."""
    return pa.input_stream(str(path), compression="detect")


def _not_utf8(error: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{error.object[error.start]:02x} at offset {error.start})"


class _CsvReader:
    """CSV through pyarrow's streaming reader, every value kept as text.

    Columns are read as binary and decoded per chunk: pyarrow's own UTF-8 check
    fails the whole stream without saying where, and we must name the row.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        names = self._header()
        # pyarrow either fails to decode a header that is not UTF-8 or replaces its bad bytes with U+FFFD.
        if names is None or any("\ufffd" in name for name in names):
            raise PushError(f"{path.name}: the header is not valid UTF-8")
        self.columns = tuple(names)
        probe = self.chunks()
        has_rows = next(probe, None) is not None
        probe.close()
        if not has_rows:
            raise PushError(f"{path.name} has a header but no rows")

    def chunks(self) -> Generator[RowChunk]:
        next_row = 1
        for block_bytes in (CSV_BLOCK_BYTES, CSV_MAX_BLOCK_BYTES):
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
                    raise _file_error(self._path, error, near_row=next_row) from None

    def _header(self) -> list[str] | None:
        # Malformed rows are skipped here: `chunks` reports them with their row numbers.
        skip_malformed = pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda _row: "skip")
        for block_bytes in (CSV_BLOCK_BYTES, CSV_MAX_BLOCK_BYTES):
            try:
                with _input_stream(self._path) as stream:
                    reader = pa_csv.open_csv(
                        stream, read_options=_csv_read_options(block_bytes), parse_options=skip_malformed
                    )
                    names: list[str] = reader.schema.names
                    return names
            except UnicodeDecodeError:
                return None
            except (pa.ArrowInvalid, OSError) as error:
                if not _row_over_block(error) or block_bytes == CSV_MAX_BLOCK_BYTES:
                    raise _file_error(self._path, error) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read(self, block_bytes: int) -> Iterator[RowChunk]:
        malformed: dict[int, RowProblem] = {}

        def on_malformed(row: Any) -> str:
            # pyarrow numbers records from 1 counting the header, and leaves the row out of the batch.
            reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
            malformed[row.number - 1] = RowProblem(None, reason, values=row.text)
            return "skip"

        convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(self.columns, pa.binary()),
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=False,
        )
        parse = pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_malformed)
        next_row = 1
        with _input_stream(self._path) as stream:
            reader = pa_csv.open_csv(
                stream,
                read_options=_csv_read_options(block_bytes),
                parse_options=parse,
                convert_options=convert,
            )
            for block in reader:
                for start in range(0, block.num_rows, CHUNK_ROWS):
                    rows = _with_malformed(
                        malformed, next_row, _decode_csv_batch(block.slice(start, CHUNK_ROWS))
                    )
                    yield RowChunk(next_row, rows)
                    next_row += len(rows)
        if malformed:
            yield RowChunk(next_row, _with_malformed(malformed, next_row, []))


def _csv_read_options(block_bytes: int) -> pa_csv.ReadOptions:
    # One thread: the malformed-row handler then sees rows in file order, with their numbers.
    return pa_csv.ReadOptions(block_size=block_bytes, use_threads=False)


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


def _decode_csv_batch(batch: pa.RecordBatch) -> list[dict[str, Any] | RowProblem]:
    try:
        text = pa.RecordBatch.from_arrays(
            [column.cast(pa.string()) for column in batch.columns], batch.schema.names
        )
    except pa.ArrowInvalid:
        return [_decode_csv_row(row) for row in batch.to_pylist()]
    rows: list[dict[str, Any] | RowProblem] = text.to_pylist()
    return rows


def _decode_csv_row(raw: dict[str, bytes | None]) -> dict[str, Any] | RowProblem:
    """Decode one row; the slow path, taken only for chunks holding invalid UTF-8."""
    try:
        return {name: None if value is None else value.decode() for name, value in raw.items()}
    except UnicodeDecodeError:
        pass
    shown = {name: None if value is None else value.decode(errors="replace") for name, value in raw.items()}
    for name, value in raw.items():
        try:
            (value or b"").decode()
        except UnicodeDecodeError as error:
            return RowProblem(name, _not_utf8(error), values=shown)
    raise AssertionError("unreachable: some value failed to decode")


class _ParquetReader:
    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._file = pq.ParquetFile(str(path))
        except (pa.ArrowInvalid, OSError) as error:
            raise _file_error(path, error) from None
        schema = self._file.schema_arrow
        for field in schema:
            if not _json_compatible(field.type):
                raise PushError(
                    f'{path.name}, column "{field.name}": type {field.type} cannot be sent as JSON; '
                    "cast it to a string or number column first"
                )
        if self._file.metadata.num_rows == 0:
            raise PushError(f"{path.name} has no rows")
        self.columns = tuple(schema.names)

    def chunks(self) -> Iterator[RowChunk]:
        next_row = 1
        try:
            for batch in self._file.iter_batches(batch_size=CHUNK_ROWS):
                chunk = RowChunk(next_row, _parquet_rows(batch))
                next_row += len(chunk.rows)
                yield chunk
        except (pa.ArrowInvalid, OSError) as error:
            raise _file_error(self._path, error, near_row=next_row) from None


def _parquet_rows(batch: pa.RecordBatch) -> list[dict[str, Any] | RowProblem]:
    try:
        rows: list[dict[str, Any] | RowProblem] = batch.to_pylist()
        return rows
    except UnicodeDecodeError:
        return [_parquet_row(batch.slice(index, 1)) for index in range(batch.num_rows)]


def _parquet_row(row: pa.RecordBatch) -> dict[str, Any] | RowProblem:
    """Convert one row, naming the string column that holds invalid UTF-8 (Parquet does not check)."""
    try:
        values: dict[str, Any] = row.to_pylist()[0]
        return values
    except UnicodeDecodeError:
        pass
    for name, column in zip(row.schema.names, row.columns, strict=True):
        try:
            column.to_pylist()
        except UnicodeDecodeError as error:
            return RowProblem(name, _not_utf8(error))
    raise AssertionError("unreachable: some column failed to decode")


def _json_compatible(data_type: pa.DataType) -> bool:
    """Whether `to_pylist` values of this type serialise to JSON (orjson handles dates and times)."""
    if pa.types.is_dictionary(data_type):
        return _json_compatible(data_type.value_type)
    if (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    ):
        return _json_compatible(data_type.value_type)
    if pa.types.is_struct(data_type):
        return all(_json_compatible(field.type) for field in data_type)
    return any(
        check(data_type)
        for check in (
            pa.types.is_null,
            pa.types.is_boolean,
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_string_view,
            pa.types.is_date,
            pa.types.is_timestamp,
            pa.types.is_time,
        )
    )


class _JsonlReader:
    """JSON Lines, one object per line, parsed with orjson.

    Not `pyarrow.json`: it infers one Arrow type per column, so a free-form
    `input` that is a string on one line and an object on the next fails, and
    objects with different keys come back padded with nulls.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        # The file has no header: its columns are the keys seen in its first chunk of rows.
        seen: dict[str, None] = {}
        rows = 0
        chunks = self._read()
        for chunk in chunks:
            for row in chunk.rows:
                if isinstance(row, dict):
                    seen.update(dict.fromkeys(row))
            rows += len(chunk.rows)
            if rows >= CHUNK_ROWS:
                break
        chunks.close()
        if not rows:
            raise PushError(f"{path.name} is empty")
        self.columns = tuple(seen)

    def chunks(self) -> Iterator[RowChunk]:
        return self._read()

    def _read(self) -> Generator[RowChunk]:
        rows: list[dict[str, Any] | RowProblem] = []
        first_row = 1
        for line_number, line in self._lines():
            if not line.strip():
                if not rows:
                    first_row = line_number + 1
                    continue
                # Keep numbering exact: a blank line inside a chunk would shift every later row.
                yield RowChunk(first_row, rows)
                rows, first_row = [], line_number + 1
                continue
            rows.append(_jsonl_row(line))
            if len(rows) >= CHUNK_ROWS:
                yield RowChunk(first_row, rows)
                rows, first_row = [], line_number + 1
        if rows:
            yield RowChunk(first_row, rows)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        number = 0
        tail = b""
        try:
            with _input_stream(self._path) as stream:
                # Editors on Windows start UTF-8 files with a byte order mark, which JSON does not allow.
                tail = stream.read(len(_UTF8_BOM)).removeprefix(_UTF8_BOM)
                while block := stream.read(JSONL_READ_BYTES):
                    lines = (tail + block).split(b"\n")
                    tail = lines.pop()
                    for line in lines:
                        number += 1
                        yield number, line
        except (pa.ArrowInvalid, OSError) as error:
            raise _file_error(self._path, error, near_row=number + 1) from None
        if tail:
            yield number + 1, tail


def _jsonl_row(line: bytes) -> dict[str, Any] | RowProblem:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        try:
            text = line.decode()
        except UnicodeDecodeError as bad_bytes:
            return RowProblem(None, _not_utf8(bad_bytes), values=line.decode(errors="replace"))
        return RowProblem(None, f"invalid JSON ({error.msg} at char {error.pos})", values=text)
    if not isinstance(value, dict):
        return RowProblem(None, f"expected a JSON object, found {json_kind(value)}", values=line.decode())
    return value


def json_kind(value: Any) -> str:
    """Name the JSON kind of a value for an error message: "a number", "an object", "null"…

    Args:
        value: a value as parsed from JSON or read from a file.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


_READERS: dict[FileFormat, Callable[[Path], _Reader]] = {
    FileFormat.CSV: _CsvReader,
    FileFormat.PARQUET: _ParquetReader,
    FileFormat.JSONL: _JsonlReader,
}


def _file_error(path: Path, error: Exception, near_row: int | None = None) -> PushError:
    where = f"{path.name}" + (f" near row {near_row}" if near_row is not None else "")
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if message == "Empty CSV file":
        return PushError(f"{path.name} is empty")
    if _row_over_block(error):
        return PushError(f"{where}: a row is over {CSV_MAX_BLOCK_BYTES:,} bytes, too large to send")
    return PushError(f"{where}: cannot read it ({message})")
