"""Which events of a fetch page fit their table, decided from the page's JSON structure.

DuckDB types a page in one parse (`json_transform`), but silently: a string
where a number belongs becomes NULL, a number where text belongs becomes its
digits. So before typing, `json_structure` (the union of every event's shape,
computed by DuckDB) tells whether any event has a key the table lacks or a
value of the wrong shape. Almost every page fits, and is typed as is. A page
that does not fit is also read here, event by event, to keep each misfit in
`_extra` verbatim (the standard library's parser: it keeps integers wider than
64 bits exact, and here any other number's text a float would not write back) and to null it in its
column.
"""

from __future__ import annotations

import json
from collections.abc import Set
from dataclasses import dataclass
from functools import partial
from typing import Any

from connector.sync.deep_json import with_room_for_depth
from schemas.tables import Column, EventStream

# Shapes `json_structure` reports for JSON scalars.
_NULL = "NULL"
_TEXT = frozenset({"VARCHAR", _NULL})
_NUMBER = frozenset({"DOUBLE", "UBIGINT", "BIGINT", "HUGEINT", _NULL})
_CURSOR_NOT_TEXT = "the page's `cursor` is not text"


class PageMalformed(Exception):
    """The page is not `{"events": [objects...], "cursor": text}`: the reason, for a message."""


def events_without_id(count: int) -> PageMalformed:
    """Events whose `id` is null or missing."""
    return PageMalformed(f"{count} of its events {'has' if count == 1 else 'have'} no id (null or missing)")


def events_with_bad_version(count: int, example: object) -> PageMalformed:
    """Events whose `_xact_id` is not a version; `example` is one's text, None for a null or none."""
    shown = "null or missing" if example is None else repr(example)
    return PageMalformed(
        f"{count} of its events have a `_xact_id` that is not a 64-bit decimal number, e.g. {shown}"
    )


def is_version(value: object) -> bool:
    """Whether a JSON value is a valid `_xact_id`: the decimal digits (text or number) of a uint64."""
    text = (
        value
        if isinstance(value, str)
        else str(value)
        if isinstance(value, int) and not isinstance(value, bool)
        else ""
    )
    return text.isascii() and text.isdigit() and len(text) <= 20 and int(text) < 2**64


def check_events(page: object) -> list[dict[str, Any]]:
    """The events of a page parsed in Python (a small one), checked as `page_shape` and staging check them.

    Raises:
        PageMalformed: as for a page staged in DuckDB.
    """
    if not isinstance(page, dict):
        raise PageMalformed("the page is not a JSON object")
    if "events" not in page:
        raise PageMalformed("the page has no `events` list")
    if page.get("cursor") is not None and not isinstance(page["cursor"], str):
        raise PageMalformed(_CURSOR_NOT_TEXT)
    events = page["events"]
    if not isinstance(events, list):
        raise PageMalformed("the page's `events` is not a list")
    if not all(isinstance(event, dict) for event in events):
        raise PageMalformed("the page's `events` holds values that are not JSON objects")
    if any(event.get("id") is not None and not isinstance(event["id"], str) for event in events):
        raise PageMalformed("the page has events whose `id` is not text")
    missing = sum(1 for event in events if event.get("id") is None)
    if missing:
        raise events_without_id(missing)
    bad = [event.get("_xact_id") for event in events if not is_version(event.get("_xact_id"))]
    if bad:
        raise events_with_bad_version(len(bad), bad[0])
    return events


@dataclass(frozen=True)
class PageShape:
    """What the page's structure says about its events.

    Args:
        unknown_keys: keys some event has and the table has no column for.
        misfit_columns: typed columns some event holds a value of the wrong shape in.
    """

    unknown_keys: frozenset[str]
    misfit_columns: frozenset[str]

    @property
    def fits(self) -> bool:
        """Every event fits its table: type the page directly."""
        return not self.unknown_keys and not self.misfit_columns


def page_shape(structure: str, stream: EventStream) -> PageShape:
    """Read DuckDB's `json_structure` of a page.

    Raises:
        PageMalformed: the page is not a JSON object with an `events` list of objects,
            or its `cursor` is not text.
    """
    try:
        page = with_room_for_depth(partial(json.loads, structure))
    except ValueError as error:  # nested deeper than even that
        raise PageMalformed(str(error)) from None
    if not isinstance(page, dict):
        raise PageMalformed("the page is not a JSON object")
    if "events" not in page:
        raise PageMalformed("the page has no `events` list")
    if not _scalar_in(page.get("cursor", _NULL), _TEXT):
        raise PageMalformed(_CURSOR_NOT_TEXT)
    events = page["events"]
    if not isinstance(events, list):
        raise PageMalformed("the page's `events` is not a list")
    event = events[0] if events else _NULL
    if event == _NULL:
        return PageShape(frozenset(), frozenset())
    if not isinstance(event, dict):
        raise PageMalformed("the page's `events` holds values that are not JSON objects")
    columns = {column.name: column for column in stream.payload_columns}
    misfits = frozenset(
        name for name, shape in event.items() if name in columns and not _shape_fits(columns[name], shape)
    )
    if "id" in misfits:
        raise PageMalformed("the page has events whose `id` is not text")
    return PageShape(unknown_keys=frozenset(event.keys() - columns.keys()), misfit_columns=misfits)


def _shape_fits(column: Column, shape: Any) -> bool:
    """Whether every value with this (merged) shape fits the column without loss."""
    if column.is_json or shape == _NULL:
        return True
    if column.name == "_xact_id":
        # Validated value by value in SQL: a malformed version fails the object instead.
        return True
    if column.duckdb_type in ("VARCHAR", "TIMESTAMPTZ"):
        return _scalar_in(shape, _TEXT)
    if column.duckdb_type == "BOOLEAN":
        return _scalar_in(shape, {"BOOLEAN", _NULL})
    if column.duckdb_type == "VARCHAR[]":
        return isinstance(shape, list) and _scalar_in(shape[0], _TEXT)
    if column.duckdb_type == "MAP(VARCHAR, DOUBLE)":
        return isinstance(shape, dict) and all(_scalar_in(value, _NUMBER) for value in shape.values())
    raise AssertionError(f"no shape rule for {column.duckdb_type}")


def _scalar_in(shape: Any, kinds: Set[str]) -> bool:
    """Whether a shape is one of the scalar `kinds` (an object's shape is a dict, an array's a list)."""
    return isinstance(shape, str) and shape in kinds


@dataclass(frozen=True)
class EventMisfits:
    """For each event of a page that does not fit (by position): its `_extra` and misfit columns."""

    ordinals: list[int]
    extras: list[str | None]
    misfits: list[list[str]]


def event_misfits(body: bytes | bytearray, stream: EventStream, shape: PageShape) -> EventMisfits:
    """Go through a page that does not fit, event by event: what each one keeps in `_extra`.

    Raises:
        PageMalformed: a value nests deeper than the reader goes.
    """
    try:
        return with_room_for_depth(partial(_event_misfits, body, stream, shape))
    except ValueError as error:
        raise PageMalformed(str(error)) from None


@dataclass(frozen=True)
class _Number:
    """A number with a fraction or an exponent that a float would not write back as the page wrote it:
    `1e400` would be kept as `Infinity`, which is no JSON, `1e-400` as `0.0`, `1.50` as `1.5`."""

    text: str


def _number(text: str) -> float | _Number:
    value = float(text)
    return value if repr(value) == text else _Number(text)


def _extra_text(extra: dict[str, Any]) -> str:
    """The event's kept keys as JSON, each number as the page wrote it."""
    try:
        return json.dumps(extra, ensure_ascii=False)  # in C: almost every number writes back as it was
    except TypeError:  # a `_Number` among them
        return _json_text(extra)


def _json_text(value: object) -> str:
    """`value` as JSON, as `json.dumps` writes it, but its `_Number`s as the page wrote them: one frame a
    level (no generator's), so that it goes as deep as the reader (`with_room_for_depth`)."""
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, dict):
        members = []
        for key, item in value.items():
            members.append(f"{json.dumps(key, ensure_ascii=False)}: {_json_text(item)}")
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list):
        items = []
        for item in value:
            items.append(_json_text(item))
        return "[" + ", ".join(items) + "]"
    return json.dumps(value, ensure_ascii=False)


def _event_misfits(body: bytes | bytearray, stream: EventStream, shape: PageShape) -> EventMisfits:
    events = json.loads(body, parse_float=_number)["events"]
    checked = {
        column.name: column for column in stream.payload_columns if column.name in shape.misfit_columns
    }
    result = EventMisfits([], [], [])
    for ordinal, event in enumerate(events):
        misfits = [name for name, column in checked.items() if not _value_fits(column, event.get(name))]
        # In the event's order: a set's order changes with the process's string hashing, and the same row
        # synced twice would differ in its `_extra`'s text.
        kept = shape.unknown_keys.union(misfits)
        extra = {key: value for key, value in event.items() if key in kept}
        if extra:
            result.ordinals.append(ordinal + 1)
            result.extras.append(_extra_text(extra))
            result.misfits.append(misfits)
    return result


def _value_fits(column: Column, value: Any) -> bool:
    if value is None:
        return True
    if column.duckdb_type in ("VARCHAR", "TIMESTAMPTZ"):
        return isinstance(value, str)
    if column.duckdb_type == "BOOLEAN":
        return isinstance(value, bool)
    if column.duckdb_type == "VARCHAR[]":
        return isinstance(value, list) and all(item is None or isinstance(item, str) for item in value)
    if column.duckdb_type == "MAP(VARCHAR, DOUBLE)":
        return isinstance(value, dict) and all(
            item is None or (isinstance(item, int | float | _Number) and not isinstance(item, bool))
            for item in value.values()
        )
    return True
