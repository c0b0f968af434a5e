"""Link a dataset record back to the span it was curated from, through the API's `origin` reference.

A query over the synced tables that returns event rows with their object and id (say
`SELECT id, project_id, _xact_id, input, ... FROM project_logs`) carries everything the
API's `ObjectReference` needs: `object_type`, `object_id`, `id` and, optionally, `_xact_id`.
Which event table the rows came from is read off the object column the result has: every
event table has `project_id`, so `experiment_id` or `dataset_id` outranks it, and a result
holding both of those names no single table, so gets no origin.

A row read from `dataset_records` or `experiment_events` may hold an `origin` already: the span
its record was curated from. That origin is the record's lineage, and a push keeps it
(`held_origin`); the link to the row read is made only where the row holds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from typing import Any

from connector.api.xact import format_xact, parse_xact
from schemas.api import UUID_TEXT, ObjectType
from schemas.kinds import EVENT_STREAMS
from schemas.tables import ID, XACT_ID

# The column of a query's result holding the origins its rows have already (the event tables' own).
ORIGIN_COLUMN = "origin"
# The object types an origin may name (the API's `ObjectReference`).
_OBJECT_TYPES = frozenset({"project_logs", "experiment", "dataset", "prompt", "function", "prompt_session"})
# Columns every event table has: naming one of them says nothing about which table a row is from.
_COMMON = set.intersection(*({c.name for c in s.payload_columns} for s in EVENT_STREAMS.values()))


class BadOrigin(Exception):
    """A value that cannot go into `origin`.

    Args:
        column: the column holding it.
        reason: what is wrong, for a human.
    """

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OriginColumns:
    """The columns of a query's result naming the event each row came from.

    Args:
        object_type: the event container's type, as `origin.object_type` spells it.
        object_id: the column of the container's id (`project_id`, `experiment_id` or `dataset_id`).
        id: the column of the event's id.
        xact_id: the column of the event's `_xact_id`, if the result has one.
    """

    object_type: str
    object_id: str
    id: str = ID.name
    xact_id: str | None = None

    @property
    def table(self) -> str:
        """The event table the rows are of."""
        return EVENT_STREAMS[ObjectType(self.object_type)].table

    def columns(self) -> set[str]:
        """Every column the origin reads."""
        return {self.object_id, self.id} | ({self.xact_id} if self.xact_id else set())

    def of(self, row: dict[str, Any]) -> dict[str, str] | None:
        """The `origin` of one row; None when its object or id is null (e.g. from an outer join).

        Raises:
            BadOrigin: the object id or id is not text, or `_xact_id` is no 64-bit unsigned whole number.
        """
        object_id, event_id = _text(self.object_id, row), _text(self.id, row)
        if object_id is None or event_id is None:
            return None
        origin = {"object_type": self.object_type, "object_id": object_id, "id": event_id}
        if (
            self.xact_id is not None
            and (xact_id := _xact_id(self.xact_id, row.get(self.xact_id))) is not None
        ):
            origin["_xact_id"] = xact_id
        return origin


def find_origin(columns: Sequence[str]) -> OriginColumns | None:
    """The origin columns of a result with these columns, if it holds event rows with their object and id.

    Args:
        columns: the result's column names.
    """
    present = set(columns)
    if ID.name not in present:
        return None
    streams = [stream for stream in EVENT_STREAMS.values() if stream.key_column in present]
    specific = [stream for stream in streams if stream.key_column not in _COMMON] or streams
    if len(specific) != 1:
        return None
    (stream,) = specific
    return OriginColumns(
        object_type=stream.object_type.value,
        object_id=stream.key_column,
        xact_id=XACT_ID.name if XACT_ID.name in present else None,
    )


def held_origin(column: str, value: Any) -> dict[str, Any]:
    """`value`, the origin a row holds already, checked to be an API `ObjectReference`, its `_xact_id` as
    the API's decimal string (the tables hold it as UBIGINT: sent as a number, readers that parse JSON
    numbers as doubles rounded it).

    Raises:
        BadOrigin: it is not an object naming an object type, an object's UUID and an event id, with a
            whole `_xact_id` and a `created` time (text, or a date or time, sent as ISO 8601) if any.
    """
    if not isinstance(value, dict):
        raise BadOrigin(column, f"an origin is an object, found {value!r}")
    if value.get("object_type") not in _OBJECT_TYPES:
        allowed = ", ".join(sorted(_OBJECT_TYPES))
        raise BadOrigin(
            column, f"an origin's object_type is one of {allowed}, found {value.get('object_type')!r}"
        )
    for key in ("object_id", "id"):
        if not isinstance(found := value.get(key), str) or not found:
            raise BadOrigin(column, f"an origin's {key} is text, found {found!r}")
    if not UUID_TEXT.fullmatch(value["object_id"]):
        raise BadOrigin(column, f"an origin's object_id is its object's UUID, found {value['object_id']!r}")
    origin: dict[str, Any] = dict(value)
    if isinstance(created := origin.get("created"), date):  # a TIMESTAMP's, as the tables type `created`
        origin["created"] = created.isoformat()
    elif not isinstance(created, str | None):
        raise BadOrigin(column, f"an origin's created is a time, found {created!r}")
    if "_xact_id" in origin:
        origin["_xact_id"] = _xact_id(column, origin["_xact_id"])
    return origin


def _text(column: str, row: dict[str, Any]) -> str | None:
    value = row.get(column)
    if value is None or (isinstance(value, str) and value):
        return value
    raise BadOrigin(column, f"an origin needs a text id here, found {value!r}")


def _xact_id(column: str, value: Any) -> str | None:
    if value is None:
        return None
    # The API sends and takes `_xact_id` as a uint64's decimal string (`0012` as `12`); the tables hold
    # it as UBIGINT.
    if isinstance(value, int | str) and not isinstance(value, bool):
        with suppress(ValueError):
            return format_xact(parse_xact(value))
    # A number as written, not as Python's `Decimal('1.5')`; text quoted.
    shown = repr(value) if isinstance(value, str) else str(value)
    raise BadOrigin(column, f"an origin's _xact_id is a 64-bit unsigned whole number, found {shown}")
