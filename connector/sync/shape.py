"""Turning one fetch page into an Arrow record batch for staging.

A staged row is (`id`, `_xact_id`, `_raw`, `_extra`): the event's JSON text is
typed later by DuckDB in one pass, so Python does one serialisation per row and
nothing per column. Keys the table has no column for, and values whose JSON
type does not fit their column, go to `_extra` so nothing is lost when the API
changes shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa

from connector.api.xact import parse_xact
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
        # JSON columns take any value, so only the typed columns need a check per row; most are
        # scalars whose check is an exact type test (a JSON `true` must not pass as a number).
        self._scalar_types = {
            c.name: frozenset(c.accepts)
            for c in columns
            if c.duckdb_type != "JSON" and c.duckdb_type not in _NESTED_TYPES
        }
        self._nested_types = {c.name: c.duckdb_type for c in columns if c.duckdb_type in _NESTED_TYPES}
        self._typed = frozenset(c.name for c in columns if c.duckdb_type != "JSON")

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
        misfits = []
        # Set operations run in C: most rows have no unknown key and a dozen typed ones.
        for key in keys & self._typed:
            value = event[key]
            if value is None:
                continue
            scalar_types = self._scalar_types.get(key)
            if scalar_types is not None:
                fits = type(value) in scalar_types
            else:
                fits = _nested_fits(self._nested_types[key], value)
            if not fits:
                misfits.append(key)
        unknown = keys - self._known
        if not misfits and not unknown:
            return None
        return orjson.dumps({key: event[key] for key in (*unknown, *misfits)})


_NESTED_TYPES = frozenset({"MAP(VARCHAR, DOUBLE)", "VARCHAR[]"})


def _nested_fits(duckdb_type: str, value: Any) -> bool:
    """Whether a JSON value fits a map-of-numbers or list-of-strings column."""
    if duckdb_type == "MAP(VARCHAR, DOUBLE)":
        return type(value) is dict and all(v is None or type(v) in (int, float) for v in value.values())
    return type(value) is list and all(type(v) is str for v in value)
