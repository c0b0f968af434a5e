"""Turning one fetch page into an Arrow record batch for staging.

A staged row is (`id`, `_xact_id`, `_raw`, `_extra`): the event's JSON text is
typed later by DuckDB in one pass, so Python does one serialisation per row and
nothing per column. Keys the table has no column for, and values whose JSON
type does not fit their column, go to `_extra` so nothing is lost when the API
changes shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pyarrow as pa

from connector.xact import parse_xact
from schemas.tables import Column

STAGING_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("_xact_id", pa.uint64(), nullable=False),
        pa.field("_raw", pa.string(), nullable=False),
        pa.field("_extra", pa.string()),
    ]
)


class RowShaper:
    """Shapes pages for one table.

    Args:
        columns: the table's payload columns (what `json_transform` will read).
    """

    def __init__(self, columns: Iterable[Column]) -> None:
        columns = tuple(columns)
        self._known = frozenset(c.name for c in columns)
        # JSON columns take any value, so only the typed columns need a check per row.
        self._checks = {c.name: _fit_check(c) for c in columns if c.duckdb_type != "JSON"}
        self._typed = frozenset(self._checks)

    def shape(self, events: list[dict[str, Any]], cutoff: int | None) -> pa.RecordBatch:
        """Shape a page into `STAGING_SCHEMA`, dropping versions at or below `cutoff` (already synced)."""
        ids: list[str] = []
        xacts: list[int] = []
        raws: list[bytes] = []
        extras: list[bytes | None] = []
        for event in events:
            xact = parse_xact(event["_xact_id"])
            if cutoff is not None and xact <= cutoff:
                continue
            ids.append(str(event["id"]))
            xacts.append(xact)
            raws.append(orjson.dumps(event))
            extras.append(self._extra(event))
        return pa.RecordBatch.from_arrays(
            [
                pa.array(ids, pa.string()),
                pa.array(xacts, pa.uint64()),
                pa.array(raws, pa.string()),
                pa.array(extras, pa.string()),
            ],
            schema=STAGING_SCHEMA,
        )

    def _extra(self, event: dict[str, Any]) -> bytes | None:
        keys = event.keys()
        # Set operations run in C: most rows have no unknown key and only a dozen typed ones.
        misfits = [
            key for key in keys & self._typed if event[key] is not None and not self._checks[key](event[key])
        ]
        unknown = keys - self._known
        if not misfits and not unknown:
            return None
        return orjson.dumps({key: event[key] for key in (*unknown, *misfits)})


def _fit_check(column: Column) -> Callable[[Any], bool]:
    """A predicate telling whether a JSON value fits the typed column."""
    # Exact type checks: a JSON `true` is a bool, which `isinstance` would also accept as an int.
    accepted = frozenset(column.accepts)
    if column.name == "scores":
        return lambda value: (
            type(value) is dict and all(v is None or type(v) in (int, float) for v in value.values())
        )
    if column.duckdb_type == "VARCHAR[]":
        return lambda value: type(value) is list and all(type(v) is str for v in value)
    return lambda value: type(value) in accepted
