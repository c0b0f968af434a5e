"""Stream the rows of a CSV, Parquet, JSON Lines or JSON file (optionally compressed) in bounded chunks.

Memory is bounded by a few read blocks and one chunk of rows, never by the file. Rows come out as plain dicts
(column name → value) numbered from 1: for CSV the first record after the
header is row 1 (a quoted value may span lines, so rows are not lines); for
JSONL the row number is the line number; for JSON, the object's position. A row
that cannot be decoded (bad UTF-8, wrong field count, not a JSON object) comes
out as a `RowProblem` in its place, so the caller decides whether to fail or to
skip it.

The content outranks the name: the first bytes tell gzip, bzip2, zstd and lz4
compression and Parquet apart from text, so a mislabelled file is read as what
it is, or refused saying what it is. CSV and Parquet are read by `read_arrow.py`.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Generator, Iterator, Sequence, Set
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, overload

import ijson
import ijson.backends.python as ijson_exact
import orjson

from connector.display import printable
from connector.errors import PushError, first_line, loops
from connector.push.choices import COMPRESSION_SUFFIXES, FileFormat
from connector.push.spelling import option

# Rows turned into Python objects at a time; a dict per row costs far more than its Arrow bytes.
CHUNK_ROWS = 1024
# And their bytes, where rows are large (a Parquet file's, whose row groups say their size).
CHUNK_BYTES = 8 << 20
JSONL_READ_BYTES = 1 << 20
SNIFF_BYTES = 64 << 10
# A JSON Lines file none of whose first lines is an object is another format (or no JSON at all).
FORMAT_PROBE_LINES = 100
# Characters of a JSON file's text shown from where it is invalid: enough to see the token (`NaN`, say).
_SHOWN_AT_ERROR = 20
_UTF8_BOM = b"\xef\xbb\xbf"
# A line break in UTF-16, little- and big-endian.
_UTF16_LINE_BREAKS = frozenset({b"\n\x00", b"\x00\n"})
# A JSON escape in the surrogates' range, with the run of backslashes before its `u`: an even run is an
# escaped backslash followed by text (`\\ud83d`), no escape.
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u[dD]([89a-fA-F])[0-9a-fA-F]{2}")
_LOW_HALF_ESCAPE = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")

_COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"))
# "BZh", the block size, then the magic of a first block or of the end of an empty stream.
_BZIP2_MAGIC = re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)")
_PARQUET_MAGIC = b"PAR1"
# Arrow's words for compressed data it could not decompress (`zlib inflate failed: ...`).
_DECOMPRESSION_FAILED = re.compile(r"\b(inflate|decompress) failed\b")
# The compressions read, for naming them beside one that is not.
_COMPRESSIONS_READ = "bt-sync reads gzip, bzip2, zstd"
# Files that are not text, by their first bytes, for saying what a mislabelled file is.
_NOT_TEXT = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (or another OLE file)"),
    (b"ARROW1", "an Arrow IPC (Feather) file"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (
        b"\x02\x21\x4c\x18",
        f"LZ4 in its legacy format (`lz4 -l`; {_COMPRESSIONS_READ}, lz4 in its default one)",
    ),
    (b"\xfd7zXZ\x00", f"xz-compressed ({_COMPRESSIONS_READ} and lz4)"),
    (b"\x1f\x9d", f"compressed by `compress`, a .Z file ({_COMPRESSIONS_READ} and lz4)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    # UTF-32's marks before UTF-16's: little-endian UTF-32's starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "UTF-32 text"),
    (b"\x00\x00\xfe\xff", "UTF-32 text"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)


_FORMAT_BY_SUFFIX = {
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.CSV,
    ".parquet": FileFormat.PARQUET,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".json": FileFormat.JSON,
}
_FORMAT_NAMES = {
    FileFormat.CSV: "CSV",
    FileFormat.PARQUET: "Parquet",
    FileFormat.JSONL: "JSON Lines",
    FileFormat.JSON: "JSON",
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
        """Return `FILE row N, column "C": reason`, with control characters escaped."""
        where = f"{file_name} row {row}" + (f', column "{self.column}"' if self.column is not None else "")
        return printable(f"{where}: {self.reason}")


@dataclass(frozen=True, slots=True)
class RowChunk:
    """Consecutive rows: `rows[i]` is row number `first_row + i`.

    `texts[i]`, for JSON Lines only, is row i's line as read (its newline included): a row already
    shaped as an event is sent as that text, and its line is then never parsed (`rows` parses a
    run of JSON lines only when one of its rows is looked at).
    """

    first_row: int
    rows: Sequence[dict[str, Any] | RowProblem]
    texts: list[bytes] | None = None


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file and the compression its first bytes show."""

    path: Path
    compression: str | None

    def open(self) -> io.RawIOBase:
        """The content, decompressed, unbuffered."""
        if self.compression is None:
            return io.FileIO(self.path)
        # Imported only here: pyarrow, which also decompresses zstd and lz4, takes 0.15 s to import.
        import pyarrow as pa

        stream: io.RawIOBase = pa.input_stream(str(self.path), compression=self.compression)
        return stream


class _Reader(Protocol):
    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def columns_complete(self) -> bool: ...

    @property
    def json_columns(self) -> frozenset[str]:
        """Columns whose values are JSON values already (a Parquet or DuckDB JSON column's): a text value
        there is text, never parsed again (`--parse-json`)."""
        ...

    def chunks(self) -> Iterator[RowChunk]: ...

    def read_only(self, columns: Set[str]) -> None:
        """Check and convert only `columns` (those the mapping sends) from now on, where the format
        allows: a value in a column never sent must not refuse its row, or its file."""


class RowSource(_Reader, Protocol):
    """Where a push reads its rows from: a file (`SourceFile`) or a query's result (`QuerySource`)."""

    @property
    def name(self) -> str:
        """How messages name it, e.g. `data.csv`."""
        ...


class SourceFile:
    """An open input file: its column names up front, then its rows chunk by chunk.

    Args:
        path: the file to read.
        file_format: its format, or None: Parquet is known by its content, other formats by the extension.
        delimiter: what separates a CSV file's values, or None: a tab for a `.tsv` file, else a comma.

    Raises:
        PushError: the file is missing, empty, of an unknown format, or not readable as that format;
            or a delimiter is given for a file that is not CSV.
    """

    def __init__(
        self, path: Path, file_format: FileFormat | None = None, delimiter: str | None = None
    ) -> None:
        self.path = path
        if str(path) == "-" and not path.exists():
            # It was "-: no such file", where other tools read standard input.
            raise PushError(
                "- names no file: a push reads its file more than once, not from standard input; write the "
                "rows to a file, then push that"
            )
        if path.is_dir():
            raise PushError(f"{path} is a directory, not a file")
        if path.exists() and not path.is_file():
            # A push reads its file more than once (to check it, in a helper, to see it unchanged).
            raise PushError(
                f"{path} is not a regular file (a pipe?): write its content to a file, then push that"
            )
        if loops(path):  # "no such file" of a file the user sees listed
            raise PushError(f"{path} leads into a loop of symbolic links: name a file")
        if not path.is_file():
            raise PushError(f"{path}: no such file")
        if path.stat().st_size == 0:
            with path.open("rb") as raw:
                # A size of 0 with bytes to read: a file the kernel makes up (/proc), whose content
                # changes between the reads a push makes.
                holds_bytes = bool(raw.read(1))
            if holds_bytes:
                raise PushError(
                    f"{path} is not a regular file (its size is 0, yet it holds bytes): write its content "
                    "to a file, then push that"
                )
            raise PushError(f"{path.name} is empty")
        with path.open("rb") as raw:
            source = InputFile(path, _compression(raw.read(SNIFF_BYTES)))
        self.format = _content_format(source, _content_head(source), file_format)
        if delimiter is not None and self.format is not FileFormat.CSV:
            raise PushError(
                f"{path.name} is {_FORMAT_NAMES[self.format]}, not CSV: "
                f"{option('delimiter')} applies to CSV files only"
            )
        self._input = source
        separator = delimiter or _default_delimiter(path)
        # What separates the values of a CSV file (for messages about its header); None for another format.
        self.csv_delimiter = separator if self.format is FileFormat.CSV else None
        self._reader = _reader(source, self.format, separator)

    @property
    def name(self) -> str:
        """The file's name, as messages show it: its control characters escaped (a line break split a
        warning's line, an escape sequence made the terminal show another name)."""
        return printable(self.path.name)

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names; for JSON Lines and JSON, the keys of the rows read so far."""
        return self._reader.columns

    @property
    def columns_complete(self) -> bool:
        """Whether `columns` names every column: always for CSV and Parquet, after a full read for JSON."""
        return self._reader.columns_complete

    @property
    def json_columns(self) -> frozenset[str]:
        """See `_Reader.json_columns`: a Parquet file's JSON columns."""
        return self._reader.json_columns

    @property
    def typed_as_json(self) -> bool:
        """Whether every value is a JSON value as written (a JSON or JSON Lines file): a string there is
        text, never parsed (`--parse-json`), as a JSON column's is."""
        return self.format in (FileFormat.JSON, FileFormat.JSONL)

    @property
    def json_lines(self) -> InputFile | None:
        """The file, if it is read as JSON Lines: its chunks are then the runs of `jsonl_runs`."""
        return self._input if self.format is FileFormat.JSONL else None

    def chunks(self) -> Iterator[RowChunk]:
        """Yield the file's rows in order, one bounded chunk at a time; each call reads the file afresh."""
        yield from self._reader.chunks()

    def read_only(self, columns: Set[str]) -> None:
        """See `_Reader.read_only`: CSV and Parquet files read only these; JSON keeps every key."""
        self._reader.read_only(columns)


def _default_delimiter(path: Path) -> str:
    """A tab for a `.tsv` file (compressed or not), else a comma."""
    return "\t" if _format_suffix(path) == ".tsv" else ","


def _format_suffix(path: Path) -> str:
    """The extension that names a file's format, past a compression suffix: `.csv` of `data.csv.gz`."""
    name = path.name.lower()
    for compression in COMPRESSION_SUFFIXES:
        name = name.removesuffix(compression)
    return Path(name).suffix


def infer_format(path: Path) -> FileFormat:
    """Return the format named by a file's extension, ignoring a compression suffix.

    Args:
        path: e.g. `data.csv`, `data.jsonl.gz`, `data.parquet`.

    Raises:
        PushError: the extension names no supported format.
    """
    file_format = _FORMAT_BY_SUFFIX.get(_format_suffix(path))
    if file_format is None:
        raise PushError(
            f"{path.name}: cannot tell the format from the extension; use .csv, .tsv, .parquet, .jsonl "
            "or .json (optionally compressed: .gz, .bz2, .zst or .lz4), or pass "
            f"{option('format', 'csv|parquet|jsonl|json')}"
        )
    return file_format


def _compression(head: bytes) -> str | None:
    if _BZIP2_MAGIC.match(head):
        return "bz2"
    return next((codec for magic, codec in _COMPRESSION_MAGIC if head.startswith(magic)), None)


def _content_head(source: InputFile) -> bytes:
    """The first bytes of the (decompressed) content."""
    try:
        with source.open() as stream:
            head: bytes = stream.read(SNIFF_BYTES)
    except OSError as error:
        raise file_error(source.path, error) from None
    if not head:
        raise PushError(f"{source.path.name} is empty")
    return head


def _content_format(source: InputFile, head: bytes, requested: FileFormat | None) -> FileFormat:
    """The format the content shows, else the one requested or in the name, if the content fits it."""
    name = source.path.name
    if head.startswith(_PARQUET_MAGIC):
        if source.compression is not None:
            raise PushError(
                f"{name} is a {source.compression}-compressed Parquet file; decompress it first "
                "(Parquet compresses its own data)"
            )
        if requested not in (None, FileFormat.PARQUET):
            what = _FORMAT_NAMES[requested]
            raise PushError(f"{name} is a Parquet file, not {what}; pass {option('format', 'parquet')}")
        return FileFormat.PARQUET
    if source.compression is not None and (inner := _compression(head)) is not None:
        # Called binary for the NUL bytes of the inner compression's header (a download saved compressed).
        raise PushError(
            f"{name} is compressed twice: decompressed ({source.compression}), it is {inner}-compressed "
            "again; decompress it once, then push that"
        )
    file_format = requested or infer_format(source.path)
    kind = next((kind for magic, kind in _NOT_TEXT if head.startswith(magic)), None)
    if kind is None and _binary_or_utf16(head):
        kind = "a binary file, or UTF-16 or UTF-32 text (it holds NUL bytes)"
    if file_format is FileFormat.PARQUET:
        packed = f"{source.compression}-compressed " if source.compression else ""
        raise PushError(
            f"{name} is not a Parquet file: it is {packed}{kind or 'text'}; "
            f"pass {option('format', 'csv, jsonl or json')} if it holds rows as text"
        )
    if kind is not None:
        raise PushError(f"{name} is {kind}, not UTF-8 {_FORMAT_NAMES[file_format]} text")
    if file_format is FileFormat.CSV and (shown := _json_format(head)) is not None:
        # Read as CSV, its first line would be a header of odd names, and the file "a header but no rows".
        value = shown.value
        raise PushError(f"{name} holds {_FORMAT_NAMES[shown]}, not CSV; pass {option('format', value)}")
    return file_format


def _binary_or_utf16(head: bytes) -> bool:
    """Whether the NUL bytes of a file's head say it is no UTF-8 text: it is not UTF-8, or it is UTF-16's
    (a line break of two bytes, the NUL on one side, at a character's place; or a NUL in most of its
    even or odd bytes, for a head of one line). A NUL byte is a character of UTF-8 text too (a value a
    sync kept and `bt-sync sql --format csv` wrote): such a file was refused whole for one in its head,
    and sent whole when it came later.
    """
    if b"\x00" not in head:
        return False
    try:
        # The head may end within a character: only the bytes before it must be UTF-8.
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return True
    # Cyrillic, Greek or Armenian in UTF-16 is UTF-8 too, byte by byte (their low bytes are ASCII's), with
    # NULs beside its ASCII only: its line breaks tell it, nearly every one a NUL's pair (a UTF-8 value
    # ending in a NUL at a line's end makes one such pair).
    pairs = (head[at : at + 2] for at in range(0, len(head) - 1, 2))
    breaks = sum(pair in _UTF16_LINE_BREAKS for pair in pairs)
    if breaks >= 2 and breaks * 10 >= head.count(b"\n") * 9:
        return True
    return any(half.count(0) * 2 > len(half) for half in (head[::2], head[1::2]))


def _json_format(head: bytes) -> FileFormat | None:
    """The JSON format a file's first line shows, if it is JSON: an object, an array or their opening."""
    first = head.removeprefix(_UTF8_BOM).split(b"\n", 1)[0].strip()
    if first in (b"{", b"["):  # objects or an array spread over lines
        return FileFormat.JSON
    try:
        value = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None  # a header, or a first line longer than the head
    if isinstance(value, dict):
        return FileFormat.JSONL
    return FileFormat.JSON if isinstance(value, list) else None


def not_utf8(error: UnicodeDecodeError) -> str:
    """Say which byte, at which offset, is not UTF-8."""
    return f"not valid UTF-8 (byte 0x{error.object[error.start]:02x} at offset {error.start})"


def refuse_repeated_names(file_name: str, names: list[str]) -> None:
    """Refuse columns that share a name: as dict keys, all but one would be lost.

    Raises:
        PushError: naming the first repeated column.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PushError(
                printable(f'{file_name}: more than one column is named "{name}"; rename them so none is lost')
            )
        seen.add(name)


class _JsonlReader:
    """JSON Lines, one object per line, parsed with orjson.

    Not `pyarrow.json`: it infers one Arrow type per column, so a free-form
    `input` that is a string on one line and an object on the next fails, and
    objects with different keys come back padded with nulls. The columns are the
    keys seen so far; every read collects them, so after one full read they are all known.
    """

    def __init__(self, source: InputFile) -> None:
        self._source = source
        self._seen: dict[str, None] = {}
        self.columns_complete = False
        self.json_columns: frozenset[str] = frozenset()
        # A file none of whose first lines is an object is not JSON Lines at all: say so, rather than
        # report that none of its (no) columns maps to an event field. A bad line among objects is a bad
        # row like any other, even the first.
        runs = jsonl_runs(source)
        first = next(runs, None)
        runs.close()
        if first is None:
            raise PushError(f"{source.path.name} is empty")
        number, lines = first
        first_row = _jsonl_row(lines[0])
        if isinstance(first_row, RowProblem):
            # An array's `[`, or a lone `{` opening an object spread over lines: another format,
            # whatever objects the lines after hold.
            opens_another_format = lines[0].strip() == b"{" or lines[0].lstrip().startswith(b"[")
            later = (_jsonl_row(line) for line in lines[1:FORMAT_PROBE_LINES])
            first_object = next((row for row in later if not isinstance(row, RowProblem)), None)
            if first_object is None and not opens_another_format and _broken_object(lines[0]):
                # A file of bad rows only (`{"id": "a", "input": NaN}`): JSON Lines still, its rows
                # refused one by one, as `--on-error` says.
                return
            if opens_another_format or first_object is None:
                raise _not_json_lines(source.path.name, number, _without_newline(lines[0]), first_row)
            first_row = first_object
        self._seen.update(dict.fromkeys(first_row))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._seen)

    def chunks(self) -> Iterator[RowChunk]:
        return self._read()

    def read_only(self, columns: Set[str]) -> None:
        """Every key is read: a JSON value's checks are its parse, which reads the whole row."""

    def _read(self) -> Generator[RowChunk]:
        seen = self._seen
        for first_row, lines in jsonl_runs(self._source):
            rows = _JsonLines(lines)
            yield RowChunk(first_row, rows, lines)
            # Learnt once the chunk was used, from the rows that were parsed: a line sent as written,
            # never parsed, holds only keys its mapping knew (`RowMapper`'s `known_columns`).
            if rows.parsed is not None:
                objects = [row for row in rows.parsed if type(row) is dict]
                # One pass in C over every key, rather than a Python step per row.
                if not seen.keys() >= frozenset().union(*map(dict.keys, objects)):
                    for row in objects:
                        _learn_keys(seen, row)
        self.columns_complete = True


def jsonl_runs(source: InputFile) -> Generator[tuple[int, list[bytes]]]:
    """A JSON Lines file's runs of non-blank lines, each numbered by its first line (from 1), with newlines.

    The newline stays: JSON allows it after a value, and removing it would copy every line.

    Raises:
        PushError: the file cannot be read, saying how many of its rows were read.
    """
    read = 0
    try:
        with source.open() as raw:
            stream = _buffered_text(raw)
            # `readlines` splits a block into lines in C: splitting in Python cost four times more.
            while lines := stream.readlines(JSONL_READ_BYTES):
                first = read + 1
                read += len(lines)
                yield from _cut_at_blank_lines(first, lines)
    except OSError as error:
        raise file_error(source.path, error, read) from None


_Row = dict[str, Any] | RowProblem


class _JsonLines(Sequence[_Row]):
    """A run of JSON lines as rows, all parsed the first time one of them is looked at."""

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines
        self.parsed: list[_Row] | None = None

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, index: int) -> _Row: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[_Row]: ...

    def __getitem__(self, index: int | slice) -> _Row | Sequence[_Row]:
        if self.parsed is None:
            self.parsed = _jsonl_rows(self._lines)
        return self.parsed[index]


def _cut_at_blank_lines(first: int, lines: list[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """`lines`, numbered from `first`, cut at blank lines (no rows) and into runs of `CHUNK_ROWS`."""
    blank = []
    if any(map(bytes.isspace, lines)):
        blank = [index for index, line in enumerate(lines) if line.isspace()]
    start = 0
    for end in (*blank, len(lines)):
        for cut in range(start, end, CHUNK_ROWS):
            yield first + cut, lines[cut : min(cut + CHUNK_ROWS, end)]
        start = end + 1


def _jsonl_rows(lines: list[bytes]) -> list[dict[str, Any] | RowProblem]:
    """Each line's object, or what is wrong with the line."""
    try:
        rows: list[Any] = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        return [_jsonl_row(line) for line in lines]
    # The common case, every line an object, in one pass in C; else each line says what it is.
    return rows if set(map(type, rows)) == {dict} else [_jsonl_row(line) for line in lines]


def _learn_keys(seen: dict[str, None], row: dict[str, Any]) -> None:
    """Add the row's keys to `seen`, in order of first appearance."""
    # Rows almost always repeat known keys: the subset test costs less than half of building a dict.
    if not seen.keys() >= row.keys():
        seen.update(dict.fromkeys(row))


def _jsonl_row(line: bytes) -> dict[str, Any] | RowProblem:
    """The object on a line (its newline included or not), or what is wrong with the line."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        if line.endswith(b"\n"):
            # Again without the newline: the error's position then counts in the line as shown.
            return _jsonl_row(line[:-1])
        try:
            text = line.decode()
        except UnicodeDecodeError as bad_bytes:
            return RowProblem(None, not_utf8(bad_bytes), values=line.decode(errors="replace"))
        return RowProblem(None, _invalid_json(text, error), values=text)
    if not isinstance(value, dict):
        text = _without_newline(line).decode()
        return RowProblem(None, f"expected a JSON object, found {json_kind(value)}", values=text)
    return value


def _invalid_json(text: str, error: orjson.JSONDecodeError) -> str:
    """Why a line's text is no JSON (`error.pos` counts its characters), and what to do where two common
    causes show."""
    reason = f"invalid JSON ({error.msg} at char {error.pos})"
    if text.startswith(codecs.BOM_UTF8.decode()):
        # The second file's first line, where two files that begin with one were joined (`cat`).
        return f"{reason}: the line begins with a byte order mark, as a file's first line does: delete it"
    if error.msg.startswith("unexpected content after") and text[error.pos :].lstrip().startswith("{"):
        return (
            f"{reason}: objects one after another on a line are no JSON Lines; for such a file pass "
            f"{option('format', 'json')}"
        )
    return reason


def _cut_at_its_end(line: bytes) -> bool:
    """Whether `line` is valid JSON as far as it goes: the start of a value spread over more lines."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return error.pos >= len(line.rstrip())
    return False


def _broken_object(line: bytes) -> bool:
    """Whether `line` is one object on its line that does not parse (a bad row, not another format)."""
    text = line.strip()
    if b"\r" in text:  # lines ending in a lone CR: the file's lines are not JSON Lines'
        return False
    return len(text) > 1 and text.startswith(b"{") and text.endswith(b"}") and not _cut_at_its_end(line)


def _without_newline(line: bytes) -> bytes:
    return line.removesuffix(b"\n")


def _not_json_lines(file_name: str, number: int, line: bytes, problem: RowProblem) -> PushError:
    if b"\r" in line.rstrip(b"\r"):
        what = "its lines end with a lone CR (\\r), and JSON Lines needs LF or CRLF"
    elif line.lstrip().startswith(b"["):
        what = "it is a JSON array"
    elif problem.reason.startswith("invalid JSON") and not _cut_at_its_end(line):
        # Broken within the line (a bad character, a number out of range): not another format.
        return PushError(printable(f"{file_name} line {number} is not a JSON object: {problem.reason}"))
    else:
        what = problem.reason.replace("expected a JSON object, found", "it is")
    return PushError(
        printable(
            f"{file_name} line {number} is not a JSON object: {what}. JSON Lines holds one object per line; "
            f"for a JSON array, or objects spread over several lines, pass {option('format', 'json')}"
        )
    )


class _JsonReader:
    """A JSON array of objects, or objects one after another (pretty-printed or not), streamed with ijson.

    The objects are the rows, numbered from 1; like JSON Lines, the columns are the keys seen so far.
    Numbers with a fraction or exponent come out as `Decimal`s, which `map.py` writes back exactly.
    """

    def __init__(self, source: InputFile) -> None:
        self._source = source
        self._seen: dict[str, None] = {}
        self.columns_complete = False
        self.json_columns: frozenset[str] = frozenset()
        # Whether the file is read by ijson's exact parser (`_values`).
        self._exact = False
        chunks = self._read()
        first = next(chunks, None)
        chunks.close()
        name = source.path.name
        if first is None:
            raise PushError(f"{name} holds no rows")
        row = first.rows[0]
        # Not a row of objects: another kind of file. An object that holds a bad value is a bad row.
        if isinstance(row, RowProblem) and not row.reason.startswith("invalid JSON"):
            raise PushError(printable(f"{name} row 1 is not a JSON object: {row.reason}"))
        # Mapped by its first row's keys, as JSON Lines are, until a read learns the others: sending as it
        # checks, a push mapped a small file by every row's and a large one by its first 1,024 rows'.
        self._seen = dict.fromkeys(next((row for row in first.rows if isinstance(row, dict)), {}))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._seen)

    def chunks(self) -> Iterator[RowChunk]:
        return self._read()

    def read_only(self, columns: Set[str]) -> None:
        """Every key is read: a JSON value's checks are its parse, which reads the whole row."""

    def _values(self) -> Iterator[Any]:
        """The file's rows as parsed: by ijson's fast parser (yajl), unless the file holds half of a
        surrogate pair escaped alone (`\\ud83d`), which yajl turns into "?". From there on the file is read
        by ijson's exact parser, about 16 times slower, which keeps such a half as Python does."""
        name = self._source.path.name
        parsed = 0
        if not self._exact:
            try:
                with self._source.open() as raw:
                    for value in _json_values(name, _buffered_text(raw), exact=False):
                        parsed += 1
                        yield value
                return
            except _SurrogateAhead:
                self._exact = True
        with self._source.open() as raw:
            # The rows parsed before the escape are whole: read again, they are not given twice.
            yield from islice(_json_values(name, _buffered_text(raw), exact=True), parsed, None)

    def _read(self) -> Generator[RowChunk]:
        rows: list[dict[str, Any] | RowProblem] = []
        number = 0
        try:
            for value in self._values():
                number += 1
                half = half_surrogate(value) if self._exact else None
                if half is not None:
                    # As orjson refuses it in a JSON line; kept escaped, as the file has it.
                    reason = f"invalid JSON (a string holds half of a surrogate pair, {half})"
                    rows.append(RowProblem(None, reason, values=json.dumps(value, default=str)))
                elif isinstance(value, dict):
                    _learn_keys(self._seen, value)
                    rows.append(value)
                else:
                    reason = f"expected a JSON object, found {json_kind(value)}"
                    rows.append(RowProblem(None, reason, values=value))
                if len(rows) >= CHUNK_ROWS:
                    yield RowChunk(number - len(rows) + 1, rows)
                    rows = []
        # The exact parser reports some errors as the standard library's parser does.
        except (ijson.JSONError, json.JSONDecodeError) as error:
            where = file_place(self._source.path, number + 1)
            raise PushError(
                printable(
                    f"{where}: invalid JSON{_said_of_parse_error(error)}; a JSON file is "
                    f"not read past it, even with {option('on_error', 'skip')} (where its row ends cannot be "
                    "told): mend it, or write the rows as JSON Lines, where such a line is one bad row"
                )
            ) from None
        except UnicodeDecodeError as error:
            raise PushError(f"{file_place(self._source.path, number + 1)}: {not_utf8(error)}") from None
        except OSError as error:
            raise file_error(self._source.path, error, number) from None
        if rows:
            yield RowChunk(number - len(rows) + 1, rows)
        self.columns_complete = True


class _SurrogateAhead(Exception):
    """The bytes about to be parsed hold a lone surrogate escape."""


class _SurrogateWatch:
    """A stream for the fast parser, raising `_SurrogateAhead` before it hands over a lone surrogate escape
    (yajl reads a whole pair right)."""

    def __init__(self, stream: io.BufferedReader) -> None:
        self._stream = stream
        # The end of the bytes handed over: an escape, or a pair, may begin there and end in the next read.
        self._tail = b""

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        window = self._tail + data
        # An escape within the tail was judged by the read that handed it over.
        if _lone_surrogate_escape(window, len(self._tail)):
            raise _SurrogateAhead
        self._tail = window[-64:]
        return data


def _lone_surrogate_escape(window: bytes, new: int) -> bool:
    """Whether `window` holds half of a surrogate pair escaped without the other half, ending past offset
    `new`. A high half at the very end counts, its low half unseen; and a run of backslashes that starts
    the window counts as an escape's, its start unseen."""
    paired_low = -1  # where the low half of the last pair found starts
    for match in _SURROGATE_ESCAPE.finditer(window):
        if len(match.group(1)) % 2 == 0 and match.start() > 0:
            continue
        escape = match.end(1) - 1
        if match.group(2) in b"89abAB":
            if _LOW_HALF_ESCAPE.match(window, match.end()):
                paired_low = match.end()
                continue
        elif escape == paired_low:
            continue
        if match.end() > new:
            return True
    return False


def half_surrogate(value: Any) -> str | None:
    """The first half of a surrogate pair found alone in a key or string of `value` (at any depth), escaped
    as JSON writes it (`\\ud83d`); None if there is none."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as error:
            return f"\\u{ord(value[error.start]):04x}"
        return None
    if isinstance(value, dict):
        found = (half_surrogate(key) or half_surrogate(item) for key, item in value.items())
        return next((half for half in found if half is not None), None)
    if isinstance(value, list):
        return next((half for half in map(half_surrogate, value) if half is not None), None)
    return None


def _buffered_text(raw: io.RawIOBase) -> io.BufferedReader:
    """`raw` buffered, past any byte order marks: editors on Windows start UTF-8 files with one (a tool
    that adds one to text that has one, with two), and JSON allows none."""
    stream: io.BufferedReader = io.BufferedReader(raw, JSONL_READ_BYTES)
    while stream.peek(len(_UTF8_BOM)).startswith(_UTF8_BOM):
        stream.read(len(_UTF8_BOM))
    return stream


def _json_values(file_name: str, stream: io.BufferedReader, *, exact: bool) -> Iterator[Any]:
    """The elements of a top-level array, or the top-level values one after another.

    Not `exact`, by the fast parser, which raises `_SurrogateAhead` before it reads a lone surrogate escape.
    """
    start = stream.peek(JSONL_READ_BYTES).lstrip()[:1]
    if start in (b"[", b"{"):
        backend: Any = ijson_exact if exact else ijson
        source = stream if exact else _SurrogateWatch(stream)
        if start == b"[":
            return iter(backend.items(source, "item"))
        return iter(backend.items(source, "", multiple_values=True))
    if not start:
        raise PushError(f"{file_name} is empty")
    shown = printable(start.decode(errors="replace"))
    raise PushError(f'{file_name} is not JSON rows: it starts with "{shown}", not with [ or {{')


def _said_of_parse_error(error: Exception) -> str:
    """` around "NaN}, {"id"…" (lexical error: …)`: the parser's reason, after the file's text from where
    the fast parser (yajl) found it invalid.

    yajl shows the text on its message's second line and marks, on the third, the byte after the one it
    refused: counted in bytes, so the text is cut as bytes. ijson hands over a message whose text is cut
    inside a character as bytes, not text.
    """
    message = error.args[0] if error.args else ""
    if not isinstance(message, bytes | str):  # the standard library's parser, behind the exact one
        return f" ({first_line(error)})"
    lines = (message if isinstance(message, bytes) else message.encode()).split(b"\n")
    said = f" ({lines[0].decode(errors='replace').strip()})"
    if len(lines) < 3 or b"^" not in lines[2]:
        return said
    text = lines[1][max(lines[2].index(b"^") - 1, 0) :].decode(errors="replace").strip()
    shown = text[:_SHOWN_AT_ERROR] + ("…" if len(text) > _SHOWN_AT_ERROR else "")
    return f' around "{shown}"{said}' if text else said


def json_kind(value: Any) -> str:
    """Name the JSON kind of a value for an error message: "a number", "an object", "null"…

    Args:
        value: a value as parsed from JSON or read from a file.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _reader(source: InputFile, file_format: FileFormat, delimiter: str) -> _Reader:
    if file_format is FileFormat.JSONL:
        return _JsonlReader(source)
    if file_format is FileFormat.JSON:
        return _JsonReader(source)
    # Imported only here: pyarrow, which reads CSV and Parquet, takes 0.15 s to import.
    from connector.push.read_arrow import CsvReader, ParquetReader

    return CsvReader(source, delimiter) if file_format is FileFormat.CSV else ParquetReader(source)


def file_error(path: Path, error: Exception, rows_read: int = 0) -> PushError:
    """The error of a file that cannot be read, in one line, with how many of its rows were read.

    Files are read a block of rows at a time: what cannot be read lies somewhere after `rows_read` (a
    compressed file's checksum is checked at its end), not at the next row.
    """
    past = f" past row {rows_read}" if rows_read else ""
    reason = first_line(error)
    if _DECOMPRESSION_FAILED.search(reason):
        # Arrow reads bytes past a compressed stream as another one: of a file padded with zeros, it said
        # "unknown compression method", or "data is not bz2-compressed" of a file that is.
        if padding := _zero_padding(path):
            # Tape and block tools pad a file so, and `gzip -t` passes it: pointing there was no help.
            most = "+" if padding == _MOST_PADDING_READ else ""
            reason += (
                f"; its last {padding:,}{most} bytes are zeros, padding after its compressed data (which "
                "gzip and bzip2 skip) that bt-sync does not read past: decompress it and push the result"
            )
        else:
            reason += (
                "; its compressed data is damaged, or followed by bytes that are none (another file): "
                "`gzip -t`, `bzip2 -t`, `zstd -t` or `lz4 -t` tells"
            )
    return PushError(printable(f"{path.name}: cannot read it{past} ({reason})"))


# A compressed stream ends with a checksum or a length, whose bytes may be zero: up to 8 (gzip's, of no
# content); more zeros at the end are padding.
_LEAST_PADDING = 16
_MOST_PADDING_READ = 1 << 16


def _zero_padding(path: Path) -> int:
    """The zero bytes a file ends with, if more than a compressed stream may end with (up to
    `_MOST_PADDING_READ`); 0 otherwise, or if it cannot be read."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, io.SEEK_END) - _MOST_PADDING_READ))
            tail = file.read()
    except OSError:
        return 0
    zeros = len(tail) - len(tail.rstrip(b"\0"))
    return zeros if zeros >= _LEAST_PADDING else 0


def file_place(path: Path, near_row: int | None = None) -> str:
    """Where in a file a message is about: its name, and the row if known."""
    return path.name + (f" near row {near_row}" if near_row is not None else "")
