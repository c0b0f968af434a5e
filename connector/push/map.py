"""Map the columns of a file or a query's result onto dataset event fields; validate and serialise each row.

One column mapped to `input` (or `expected`, `metadata`) becomes the value
itself; several become an object `{column: value}`. With `parse_json`, text
that looks like a JSON object or array is parsed (never the values of a query's
JSON columns, which are JSON values already: a string stays a string; nor a JSON
file's, for which the push turns it off). `metadata` always ends up an
object, `tags` a list of strings; a query's event rows also fill `origin`, keeping
the one a row holds already (a dataset record's, in its `origin` column). A
row's id is its id column, else a hash of the project, dataset and mapped row,
so pushing the same rows again replaces them instead of duplicating them.

A JSON line that already is the event its mapping would make is sent as its own
text, once checked (`event_lines.py`), and is never parsed into a dict: parsing,
mapping and serialising every row again was most of the validation pass's CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from array import array
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import repeat
from typing import Any, NamedTuple, NoReturn, cast

import orjson

from connector.display import counted, printable
from connector.errors import PushError
from connector.push.batch import MAX_EVENT_BYTES
from connector.push.event_lines import EventLines
from connector.push.origin import BadOrigin, OriginColumns, held_origin
from connector.push.read import RowChunk, RowProblem, half_surrogate, json_kind
from connector.push.spelling import option, options
from connector.sync.surrogates import id_as_sent

ID_HEX_CHARS = 32
# The separators a CSV file is likely to use, looked for in a lone column's name: a comma first.
_USUAL_SEPARATORS = (",", ";", "\t", "|")
# The first line by which a spreadsheet (Excel) names a CSV file's separator, before the header.
_SEPARATOR_LINE = re.compile(r"sep=(.)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which columns feed which event fields.

    Args:
        id: the column holding row ids, or None to derive ids from the row's content.
        input: columns combined into `input`.
        expected: columns combined into `expected`.
        metadata: columns combined into `metadata`.
        tags: the column holding tags, or None.
        origin: the columns naming the event each row came from, or None.
        held_origin: the column of a query's result holding origins its rows have already, or None.
    """

    id: str | None
    input: tuple[str, ...]
    expected: tuple[str, ...]
    metadata: tuple[str, ...]
    tags: str | None
    origin: OriginColumns | None = None
    held_origin: str | None = None

    def columns(self) -> set[str]:
        """Every column the mapping reads."""
        single = {column for column in (self.id, self.tags, self.held_origin) if column is not None}
        origin = self.origin.columns() if self.origin else set()
        return single.union(self.input, self.expected, self.metadata, origin)


# The fields one or more columns feed (an option given once for each).
_OBJECT_FIELDS = ("input", "expected", "metadata")
# The flag naming the column of each field that a column of the field's own name feeds by default.
_FIELD_FLAGS = {
    "id": "id_column",
    "input": "input",
    "expected": "expected",
    "metadata": "metadata",
    "tags": "tags",
}


def _fed(mapping: ColumnMapping) -> dict[str, tuple[str, ...]]:
    """The columns feeding each field."""
    one = {"id": mapping.id, "tags": mapping.tags}
    many = {"input": mapping.input, "expected": mapping.expected, "metadata": mapping.metadata}
    return {**{field: () if column is None else (column,) for field, column in one.items()}, **many}


def alike_columns(columns: Sequence[str], mapping: ColumnMapping) -> dict[str, str]:
    """The fields no column feeds whose name a column has but for case or blanks at its ends (`ID`,
    `Input `, as a spreadsheet's export may name them), with that column: it fed nothing (names are
    taken as they are)."""
    fed, claimed = _fed(mapping), mapping.columns()
    alike = {}
    for field in _FIELD_FLAGS:
        if fed[field] or field in columns:
            continue
        named = [column for column in columns if column.strip().casefold() == field and column not in claimed]
        if len(named) == 1:
            alike[field] = named[0]
    return alike


def flags_mapping(columns: dict[str, str]) -> str:
    """The options mapping each field's column (`--id-column ID --input Input`)."""
    return options(
        {
            _FIELD_FLAGS[field]: [column] if field in _OBJECT_FIELDS else column
            for field, column in columns.items()
        }
    )


def fields_whose_column_feeds_another(columns: Sequence[str], mapping: ColumnMapping) -> dict[str, str]:
    """The fields no column feeds whose column of their own name another flag maps (`--metadata tags`),
    each with that flag: the field is left empty in every row."""
    fed = _fed(mapping)
    return {
        field: next(option(_FIELD_FLAGS[other]) for other, names in fed.items() if field in names)
        for field in _FIELD_FLAGS
        if field in columns and not fed[field] and field in mapping.columns()
    }


def resolve_mapping(
    file_name: str,
    columns: Sequence[str],
    *,
    id_column: str | None = None,
    input_columns: Sequence[str] = (),
    expected_columns: Sequence[str] = (),
    metadata_columns: Sequence[str] = (),
    tags_column: str | None = None,
    origin: OriginColumns | None = None,
    origin_column: str | None = None,
    check: bool = True,
    holder: str = "the file",
    csv_delimiter: str | None = None,
) -> ColumnMapping:
    """Combine the mapping flags with the defaults and check every mapped column exists.

    A field without a flag takes the column of the same name (`id`, `input`,
    `expected`, `metadata`, `tags`) when the file has one and no other field's flag claims it
    (`--id-column` does not: the column an id is taken from is sent too).

    Args:
        file_name: the input's name, for error messages.
        columns: the input's column names.
        id_column: `--id-column`.
        input_columns: `--input`, possibly repeated.
        expected_columns: `--expected`, possibly repeated.
        metadata_columns: `--metadata`, possibly repeated.
        tags_column: `--tags`.
        origin: the columns naming the event each row came from, if any.
        origin_column: the column whose origins the rows hold already, for a query's result
            (`origin`); it feeds `origin` when the result has it and no flag claims it.
        check: raise when the mapping is incomplete; False while `columns` may still grow
            (JSON rows, whose keys are known only once the whole file was read).
        holder: what has the columns, for error messages ("the file", "the result").
        csv_delimiter: the separator a CSV file's header was read with; None for any other input.

    Raises:
        PushError: a mapped column is missing, or nothing maps to input, expected or metadata.
    """
    given = {
        "id_column": (id_column,) if id_column else (),
        "input": tuple(input_columns),
        "expected": tuple(expected_columns),
        "metadata": tuple(metadata_columns),
        "tags": (tags_column,) if tags_column else (),
    }
    flagged = {option(name): names for name, names in given.items()}
    for flag, names in flagged.items():
        if repeated := [name for position, name in enumerate(names) if name in names[:position]]:
            # Merged, the field would become an object of one key instead of the column's value.
            raise PushError(printable(f'{flag} names "{repeated[0]}" more than once; give each column once'))
    # A column an id is taken from still belongs in the record: `--id-column input` leaves `input` its
    # field (left out, every record lacked it, without a word).
    claimed = {column for name, names in given.items() if name != "id_column" for column in names}

    def pick(name: str, default: str) -> tuple[str, ...]:
        if given[name]:
            return given[name]
        return (default,) if default in columns and default not in claimed else ()

    mapping = ColumnMapping(
        id=next(iter(pick("id_column", "id")), None),
        input=pick("input", "input"),
        expected=pick("expected", "expected"),
        metadata=pick("metadata", "metadata"),
        tags=next(iter(pick("tags", "tags")), None),
        origin=origin,
        held_origin=origin_column if origin_column in columns and origin_column not in claimed else None,
    )
    if check:
        _check(file_name, columns, flagged, mapping, holder, csv_delimiter)
    return mapping


def _check(
    file_name: str,
    columns: Sequence[str],
    flagged: dict[str, tuple[str, ...]],
    mapping: ColumnMapping,
    holder: str,
    csv_delimiter: str | None,
) -> None:
    present = set(columns)
    missing = [
        f'"{column}" (from {flag})'
        for flag, names in flagged.items()
        for column in names
        if column not in present
    ]
    listing = f"{holder} has columns: {_listing(columns, csv_delimiter)}"
    if missing:
        raise PushError(printable(f"{file_name}: no column {', '.join(missing)}; {listing}"))
    if not (mapping.input or mapping.expected or mapping.metadata):
        alike = alike_columns(columns, mapping)
        remedy = f"; pass {flags_mapping(alike)} (names are taken as written)" if alike else ""
        raise PushError(
            printable(
                f"{file_name}: no column maps to input, expected or metadata; name them with "
                f"{option('input')}/{option('expected')}/{option('metadata')} ({listing}){remedy}"
            )
        )


def _listing(columns: Sequence[str], csv_delimiter: str | None) -> str:
    """The columns, quoted as the missing names are (`id, input` from a header `id, input` is
    `"id", " input"`), and what to do about a CSV file read with another separator than its own."""
    listed = ", ".join(f'"{column}"' for column in columns) if columns else "(none)"
    return listed + _separator_hint(columns, csv_delimiter)


def _separator_hint(columns: Sequence[str], csv_delimiter: str | None) -> str:
    """The flag reading a CSV file whose header, read with `csv_delimiter`, is one column holding another
    usual separator (a spreadsheet's export in many languages is separated by `;`; a comma-separated file
    read with `--delimiter ';'`). Nothing for other columns, or for an input that is not a CSV file: a
    JSON key or a query's column may hold a `;`, and the flag applies to CSV only. A spreadsheet's first
    line naming the separator (`sep=;`) is read as the header: it must go."""
    if csv_delimiter is None:
        return ""
    header = csv_delimiter.join(columns)
    if named := _SEPARATOR_LINE.fullmatch(header):
        # Read as the header, whichever separator it was read with: the flag alone leaves `sep=` a column.
        flag = "" if named[1] == csv_delimiter else f" and pass {option('delimiter', repr(named[1]))}"
        return (
            f"; its first line, {header!r}, is a spreadsheet's naming its separator: delete that line{flag}"
        )
    if len(columns) != 1:
        return ""
    separator = next((s for s in _USUAL_SEPARATORS if s != csv_delimiter and s in columns[0]), None)
    if separator is None:
        return ""
    return f"; its header looks separated by {separator!r}: pass {option('delimiter', repr(separator))}"


class Event(NamedTuple):
    """A row mapped to a dataset event.

    A named tuple, not a frozen dataclass: one is made for every row, and a tuple is made in
    half the time.

    Args:
        id: the event's id.
        json: the event serialised as one JSON object, id included.
        origin: where its `origin` comes from (`held`, `linked`), None when it has none.
    """

    id: str
    json: bytes
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class MappedChunk:
    """A chunk's rows as events: the valid rows' numbers, ids and events, in order; the others' problems,
    and the ids of those whose id column holds one (`refused_ids`, by row number)."""

    numbers: list[int]
    ids: list[str]
    events: list[bytes]
    problems: list[tuple[int, RowProblem]]
    refused_ids: dict[int, str]


class _BadValue(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class RowMapper:
    """Turns a row read from a file or a query into a serialised dataset event, or says what is wrong with it.

    Args:
        mapping: which columns feed which fields.
        project: the project name, part of every derived id.
        dataset: the dataset name, part of every derived id.
        parse_json: parse text that looks like a JSON object or array.
        known_columns: the columns known when the mapping was made. A JSON line is taken as its
            event only if its keys are among them, so a line that holds a key not seen before is
            parsed, and its reader learns the key.
        json_columns: columns whose values are JSON values already, never parsed again.
        max_event_bytes: the largest serialised event one request can carry.
        into_dataset: the id of the dataset pushed into, if it exists: a record read from it and
            pushed under its own id would link to itself, so it gets no link.
        stored_ids: the rows are the warehouse's (a query's result): ids, and the ids origins link to,
            are sent as the API has them (`id_as_sent`), or one holding the text of a lone surrogate's
            escape came back as a new record, its backslashes doubled.

    Attributes:
        origins: how many of the rows made into events kept the origin they held (`held`), and
            how many link to the row they are (`linked`).
    """

    def __init__(
        self,
        mapping: ColumnMapping,
        *,
        project: str,
        dataset: str,
        parse_json: bool,
        known_columns: Sequence[str],
        json_columns: frozenset[str] = frozenset(),
        max_event_bytes: int = MAX_EVENT_BYTES,
        into_dataset: str | None = None,
        stored_ids: bool = False,
    ) -> None:
        self.mapping = mapping
        self._sent_id = id_as_sent if stored_ids else _as_it_is
        self._max_event_bytes = max_event_bytes
        # The numbers of the rows made into events with an origin, by where it comes from, increasing.
        self._origin_rows: defaultdict[str, array[int]] = defaultdict(lambda: array("Q"))
        # The rows refused as they were read (a line that does not parse, a CSV row of too many values):
        # their ids, which an earlier row of theirs would have been left out for, are unknown.
        self.refused_unread: array[int] = array("Q")
        link = mapping.origin
        pushed_under_its_id = link is not None and link.object_type == "dataset" and mapping.id == link.id
        self._itself = into_dataset if pushed_under_its_id else None
        self._id_salt = orjson.dumps([project, dataset])
        # Worked out once, not per row: a push maps millions of rows.
        fields = (("input", mapping.input), ("expected", mapping.expected), ("metadata", mapping.metadata))
        # A field fed by one column, and one fed by several (an object of them).
        self._single = [(field, columns[0]) for field, columns in fields if len(columns) == 1]
        self._combined = [(field, columns) for field, columns in fields if len(columns) > 1]
        self._parsed_columns = (mapping.columns() - json_columns) if parse_json else frozenset()
        own_name_keys = _own_name_keys(mapping, known_columns)
        # What makes a JSON line its event under this mapping (None: no line can be); `LinesAhead` uses it.
        self.event_lines = (
            EventLines(own_name_keys, self._parsed_columns & own_name_keys, max_event_bytes)
            if own_name_keys
            else None
        )

    def event(self, row: dict[str, Any]) -> Event | RowProblem:
        """Return the row as one JSON event `{"id": ..., "input": ..., ...}`, or the problem with it."""
        try:
            payload = self._payload(row)
            if (origin := self._origin(row)) is not None:
                payload["origin"] = origin[1]
            if (id_column := self.mapping.id) is not None:
                if id_column not in row:  # a JSON row: a mistyped --id-column shows here first
                    keys = ", ".join(list(row)[:_KEYS_SHOWN]) or "none"
                    raise _BadValue(
                        id_column, f'the row has no key "{id_column}", which holds the ids; its keys: {keys}'
                    )
                row_id = self._sent_id(_column_id(id_column, row.get(id_column)))
                event = _json({"id": row_id, **payload})
            else:
                # Hashed with its keys sorted, so that the same row in another key order keeps its id;
                # sent in its own order, as the file has it.
                row_id = hashlib.sha256(self._id_salt + _json(payload, sort_keys=True)).hexdigest()
                row_id = row_id[:ID_HEX_CHARS]
                body = _json(payload)
                event = b"".join((b'{"id":', orjson.dumps(row_id), b"," if payload else b"", body[1:]))
        except (_BadValue, BadOrigin) as bad:
            return RowProblem(bad.column, bad.reason, values=row)
        except _NoJsonNumber as error:
            return RowProblem(None, str(error), values=row)
        except orjson.JSONEncodeError as error:
            if "Recursion" in str(error):
                return RowProblem(None, _TOO_DEEP, values=row)
            return RowProblem(None, f"cannot be written as JSON ({error})", values=row)
        if len(event) > self._max_event_bytes:
            return RowProblem(
                None,
                f"the row is {len(event):,} bytes as JSON, over the {self._max_event_bytes:,} bytes "
                "one insert request may carry",
                values=row,
            )
        return Event(row_id, event, None if origin is None else origin[0])

    def chunk(self, chunk: RowChunk, decided: list[str | None] | None = None) -> MappedChunk:
        """`event` for each of the chunk's rows that is not a problem already.

        A JSON line that is its event already is taken as its text: when every line of the chunk is,
        the chunk's rows are never parsed.

        Args:
            chunk: the rows.
            decided: `event_lines.ids(chunk.texts)`, if it was worked out already (`LinesAhead`).
        """
        numbers = range(chunk.first_row, chunk.first_row + len(chunk.rows))
        texts = chunk.texts
        if decided is not None and self.event_lines:
            as_written = decided
        elif texts is not None and self.event_lines:
            as_written = self.event_lines.ids(texts)
        else:
            as_written = []
        if texts is not None and as_written and None not in as_written:
            return MappedChunk(list(numbers), cast("list[str]", as_written), texts, [], {})
        mapped = MappedChunk([], [], [], [], {})
        for index, (number, row_id) in enumerate(zip(numbers, as_written or repeat(None), strict=False)):
            outcome: Event | RowProblem
            if row_id is not None and texts is not None:
                outcome = Event(row_id, texts[index])
            elif isinstance(row := chunk.rows[index], RowProblem):
                outcome = row
            else:
                outcome = self.event(row)
            if isinstance(outcome, RowProblem):
                if (
                    texts is not None
                    and outcome.values is chunk.rows[index]
                    and (outcome.reason == _TOO_DEEP or _rounded(outcome.values))
                ):
                    # The parsed row lost the digits of a number beyond 64 bits, or no JSON writer takes
                    # it: the line as written keeps them, for the row to be mended and pushed again.
                    outcome = replace(outcome, values=texts[index].decode(errors="replace").rstrip("\r\n"))
                mapped.problems.append((number, outcome))
                if (refused_id := self._refused_id(chunk.rows[index])) is not None:
                    mapped.refused_ids[number] = refused_id
                elif self.mapping.id is not None and isinstance(chunk.rows[index], RowProblem):
                    self.refused_unread.append(number)
            else:
                mapped.numbers.append(number)
                mapped.ids.append(outcome.id)
                mapped.events.append(outcome.json)
                if outcome.origin is not None:
                    self._origin_rows[outcome.origin].append(number)
        return mapped

    def _refused_id(self, row: dict[str, Any] | RowProblem) -> str | None:
        """The id a refused row would have had, if its id column holds a valid one: as the last row of its
        id, it still replaces the earlier ones (a row is never left out for a row before it)."""
        if (id_column := self.mapping.id) is None:
            return None  # a hash of the row's content: no other row's id
        values = row.values if isinstance(row, RowProblem) else row
        if not isinstance(values, dict) or id_column not in values:
            return None
        try:
            return self._sent_id(_column_id(id_column, values[id_column]))
        except _BadValue:
            return None

    @property
    def origins(self) -> Counter[str]:
        """How many of the rows made into events kept the origin they held (`held`), and how many link to
        the row they are (`linked`)."""
        return Counter({kind: len(rows) for kind, rows in self._origin_rows.items()})

    def origins_of(self, rows: Iterable[int]) -> Counter[str]:
        """`origins`, of `rows` only (by number: rows left out for a later row's id, rows refused)."""
        found: Counter[str] = Counter()
        if not self._origin_rows:
            return found  # nothing to look for: `rows` may be a long stream
        for number in rows:
            for kind, numbers in self._origin_rows.items():
                at = bisect_left(numbers, number)
                found[kind] += at < len(numbers) and numbers[at] == number
        return found

    def _payload(self, row: dict[str, Any]) -> dict[str, Any]:
        mapping = self.mapping
        payload: dict[str, Any] = {}
        # The common case inline, without a call per field: each row goes through here.
        for field, column in self._single:
            if (value := row.get(column)) is not None:
                payload[field] = self._parsed(column, value) if isinstance(value, str) else value
        for field, columns in self._combined:
            payload[field] = {column: self._value(column, row.get(column)) for column in columns}
        if (metadata := payload.get("metadata")) is not None and not isinstance(metadata, dict):
            payload["metadata"] = {mapping.metadata[0]: metadata}
        if (tags_column := mapping.tags) is not None and (
            tags := _tags(tags_column, row.get(tags_column), parsed=tags_column in self._parsed_columns)
        ) is not None:
            payload["tags"] = tags
        return payload

    def _origin(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The row's `origin`, and where it comes from: the one it holds (`held`), else a link to
        itself as the event it is (`linked`); None for neither, or for a link to the very record the
        row is pushed as (re-curating a dataset in place)."""
        mapping = self.mapping
        if (column := mapping.held_origin) is not None and (value := row.get(column)) is not None:
            return "held", held_origin(column, self._value(column, value))
        if mapping.origin is None or (link := mapping.origin.of(row)) is None:
            return None
        if self._itself is not None and link["object_id"] == self._itself:
            return None
        return "linked", link | {"id": self._sent_id(link["id"])}

    def _value(self, column: str, value: Any) -> Any:
        return self._parsed(column, value) if isinstance(value, str) else value

    def _parsed(self, column: str, text: str) -> Any:
        """The text's JSON value if it looks like a JSON object or array and the column's text is parsed."""
        if column not in self._parsed_columns or not _looks_like_json(text):
            return text
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as error:
            reason = f"invalid JSON ({error.msg} at char {error.pos})"
            as_text = option("parse_json", False)
            raise _BadValue(column, f"{reason}; pass {as_text} to send such values as text") from None


def _as_it_is(text: str) -> str:
    return text


def _looks_like_json(value: Any) -> bool:
    """Text that starts like a JSON object or array: what `--parse-json` parses."""
    return type(value) is str and value.lstrip()[:1] in ("{", "[")


def _own_name_keys(mapping: ColumnMapping, known_columns: Sequence[str]) -> frozenset[str]:
    """The keys a row may have for its text to be its event: known fields fed by a column of their own name.

    Empty unless ids come from a column named `id`: a hashed id is not in the row's text.
    """
    if mapping.id != "id" or mapping.origin is not None or "id" not in known_columns:
        return frozenset()
    fields = {"input": mapping.input, "expected": mapping.expected, "metadata": mapping.metadata}
    own = {field for field, columns in fields.items() if columns == (field,)}
    return frozenset({"id", *own, *(("tags",) if mapping.tags == "tags" else ())}).intersection(known_columns)


_BEYOND_64_BITS = 2**63
# The integers orjson writes as they are (signed and unsigned 64-bit); JSON writers round the others.
SMALLEST_EXACT_INTEGER, LARGEST_EXACT_INTEGER = -(2**63), 2**64 - 1
# Keys of a row named in a message, at most.
_KEYS_SHOWN = 10


class WholeNumber(Decimal):
    """A whole number of a decimal type beyond 64 bits (a HUGEINT): an integer, kept as an exact decimal
    because JSON writers round such integers."""


# Digits enough for an integer beyond 64 bits, -9223372036854775809 say (they also match within text).
_MAYBE_WIDE_INTEGER = re.compile(r"\d{19}")
_TOO_DEEP = "its values nest deeper than the 255 levels JSON writers take"


def exact_json(text: str) -> Any:
    """A JSON column's text as the value it holds, an integer beyond 64 bits as the exact `WholeNumber` it
    is: orjson reads one as the nearest double, so text that may hold one goes to the standard library's
    parser, slower.

    Raises:
        ValueError: `text` is not JSON (NaN and infinity are not, nor is a number beyond a double's range).
    """
    if _MAYBE_WIDE_INTEGER.search(text) is None:
        return orjson.loads(text)
    try:
        value = json.loads(
            text, parse_int=_exact_integer, parse_float=_finite_float, parse_constant=_no_constant
        )
    except RecursionError:
        raise ValueError("invalid JSON: nested too deep") from None
    half = half_surrogate(value)
    if half is not None:  # which orjson refuses, and with it every JSON writer here
        raise ValueError(f"invalid JSON: a string holds half of a surrogate pair, {half}")
    return value


def _finite_float(digits: str) -> float:
    number = float(digits)
    if math.isinf(number):
        raise ValueError(f"invalid JSON: {digits} is beyond a double's range")
    return number


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"invalid JSON: {name} is not a JSON number")


def _exact_integer(digits: str) -> int | WholeNumber:
    # Python reads at most 4,300 digits as an `int`; a decimal any number.
    if len(digits) <= len(str(SMALLEST_EXACT_INTEGER)):
        number = int(digits)
        if SMALLEST_EXACT_INTEGER <= number <= LARGEST_EXACT_INTEGER:
            return number
    return WholeNumber(digits)


def _rounded(value: Any) -> bool:
    """Whether a parsed JSON value holds a number a JSON parser may have rounded (an integer beyond 64 bits,
    which orjson reads as the nearest double).

    Walked with a list, not by recursion: a row refused for nesting too deep (600 levels) is one.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and item.is_integer() and abs(item) >= _BEYOND_64_BITS:
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _column_id(column: str, value: Any) -> str:
    """A row's id from its id column: text, or an integer written as text."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int | WholeNumber) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        # Blanks alone, which may not show (U+2028) and which a one-line message would squeeze: by code point.
        blanks = " ".join(sorted({f"U+{ord(blank):04X}" for blank in value}))
        raise _BadValue(
            column,
            f"an id of {counted(len(value), 'blank characters')} alone ({blanks}); every row needs a value "
            "in the id column",
        )
    if value is None or isinstance(value, str):
        raise _BadValue(column, "empty id; every row needs a value in the id column")
    found = f"an id must be text or an integer, found {_kind_and_value(value)}"
    if isinstance(value, float) and value.is_integer() and abs(value) >= _BEYOND_64_BITS:
        # JSON parsers read an integer beyond 64 bits as the nearest double, its digits gone; the parsed row
        # no longer tells it from a number written so (`1e19`), which is said, as any other number is.
        found += " (an integer beyond 64 bits is read so, not exactly: give the id as text)"
    raise _BadValue(column, found)


class _NoJsonNumber(TypeError):
    """A number beyond a double's range (raised inside orjson, which makes it its error's cause)."""


def _json(payload: dict[str, Any], *, sort_keys: bool = False) -> bytes:
    """The payload as JSON, its objects' keys in their own order unless `sort_keys`.

    An integer beyond 64 bits (a JSON file's, which ijson reads exactly) is written as the double JSON
    readers make of it, as a JSON Lines row's is.
    """
    option = orjson.OPT_SORT_KEYS if sort_keys else None
    try:
        return orjson.dumps(payload, default=_exact_number, option=option)
    except orjson.JSONEncodeError as error:
        if isinstance(error.__cause__, _NoJsonNumber):
            raise error.__cause__ from None
        if error.__cause__ is not None or "Integer" not in str(error):
            raise  # a value nested deeper than orjson writes (255 levels), say: a bad row
        return orjson.dumps(big_ints_replaced(payload, _rounded_int), default=_exact_number, option=option)


def big_ints_replaced(value: Any, replace: Callable[[int], Any]) -> Any:
    """`value` (a row's value, parsed JSON) with each integer beyond 64 bits, which orjson does not write,
    made `replace(integer)`."""
    if isinstance(value, dict):
        return {key: big_ints_replaced(item, replace) for key, item in value.items()}
    if isinstance(value, list):
        return [big_ints_replaced(item, replace) for item in value]
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not SMALLEST_EXACT_INTEGER <= value <= LARGEST_EXACT_INTEGER
    ):
        return replace(value)
    return value


def _rounded_int(value: int) -> float:
    """An integer beyond 64 bits as the double JSON readers make of it."""
    try:
        return float(value)
    except OverflowError:
        raise _NoJsonNumber(_beyond_a_double(value)) from None


def _exact_number(value: Any) -> orjson.Fragment:
    """Write a `Decimal` (a Parquet decimal, a JSON fraction) as the exact JSON number it is.

    Raises:
        _NoJsonNumber: it is beyond a double's range, where the API's JSON reader cannot follow.
    """
    if isinstance(value, Decimal) and value.is_finite():
        if math.isinf(float(value)):
            raise _NoJsonNumber(_beyond_a_double(value))
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _beyond_a_double(value: Decimal | int) -> str:
    shown = str(value)
    if isinstance(value, int) and len(shown) > 20:  # an integer's digits may be hundreds
        shown = f"{shown[:12]}… ({len(shown.lstrip('-'))} digits)"
    return f"the number {shown} is beyond a double's range, which JSON readers (the API's too) cannot hold"


def _tags(column: str, value: Any, *, parsed: bool) -> list[str] | None:
    """Tags from a list of strings, a JSON array string, or a comma-separated string; None for no tags.

    A list, or an array's text, is sent as it is, an empty one too: only text with no tag in it, or no
    value at all, means there are none. Text the column's text is not `parsed` in (`--no-parse-json`, a
    JSON column's string) is split on its commas unless it is a JSON array: `[draft],wip` is two tags.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if parsed and text.startswith("{") and isinstance(whole := _json_or_none(text), dict):
            # An object's text, as other columns read one: refused as one (split on its commas, it made
            # tags of its pieces).
            value = whole
        elif not text.startswith("["):
            return _split_tags(text)
        elif not parsed:
            array = _json_or_none(text)
            if not isinstance(array, list):
                return _split_tags(text)
            value = array  # its tags checked as any list's
        else:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                as_text = option("parse_json", False)
                raise _BadValue(
                    column,
                    f"invalid JSON array of tags ({error.msg} at char {error.pos}); with {as_text}, text "
                    "that is no JSON array is split on its commas (and other columns' text kept as text)",
                ) from None
    if not isinstance(value, list):
        raise _BadValue(
            column, f"tags must be a list of strings or comma-separated text, found {json_kind(value)}"
        )
    for position, tag in enumerate(value, start=1):
        if not isinstance(tag, str):
            raise _BadValue(
                column, f"tags must be strings, found {_kind_and_value(tag)} at position {position}"
            )
    return value


def _split_tags(text: str) -> list[str] | None:
    return [tag.strip() for tag in text.split(",") if tag.strip()] or None


def _json_or_none(text: str) -> Any:
    """`text` parsed as JSON; None if it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _kind_and_value(value: Any, limit: int = 40) -> str:
    """`a number 2`, `an object {"a":1}`: the value as JSON writes it, cut at `limit`; `null` alone."""
    if value is None:
        return "null"
    text = orjson.dumps(value, default=str).decode()
    return f"{json_kind(value)} {text if len(text) <= limit else text[: limit - 1] + '…'}"
