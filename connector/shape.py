"""Turning one fetch page into an Arrow record batch for staging.

A staged row is (`id`, `_xact_id`, `_raw`, `_extra`): the event's JSON text is
typed later by DuckDB in one pass, so Python does one serialisation per row and
nothing per column. Keys the table has no column for, and values whose JSON
type does not fit their column, go to `_extra` so nothing is lost when the API
changes shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ShapedPage:
    """A page ready for staging.

    Args:
        batch: rows above the cutoff, in `STAGING_SCHEMA`.
        min_xact: the smallest `_xact_id` on the page (None for an empty page).
        rows_seen: rows on the page, including those at or below the cutoff.
    """

    batch: pa.RecordBatch
    min_xact: int | None
    rows_seen: int


class RowShaper:
    """Shapes pages for one table.

    Args:
        columns: the table's payload columns (what `json_transform` will read).
    """

    def __init__(self, columns: Iterable[Column]) -> None:
        self._accepts = {c.name: c.accepts for c in columns}
        self._known = frozenset(self._accepts)

    def shape(self, events: list[dict[str, Any]], cutoff: int | None) -> ShapedPage:
        """Shape a page, dropping versions at or below `cutoff` (already synced)."""
        ids: list[str] = []
        xacts: list[int] = []
        raws: list[bytes] = []
        extras: list[bytes | None] = []
        min_xact: int | None = None
        for event in events:
            xact = parse_xact(event["_xact_id"])
            if min_xact is None or xact < min_xact:
                min_xact = xact
            if cutoff is not None and xact <= cutoff:
                continue
            ids.append(str(event["id"]))
            xacts.append(xact)
            raws.append(orjson.dumps(event))
            extras.append(self._extra(event))
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(ids, pa.string()),
                pa.array(xacts, pa.uint64()),
                pa.array(raws, pa.string()),
                pa.array(extras, pa.string()),
            ],
            schema=STAGING_SCHEMA,
        )
        return ShapedPage(batch=batch, min_xact=min_xact, rows_seen=len(events))

    def _extra(self, event: dict[str, Any]) -> bytes | None:
        extra = {key: event[key] for key in event.keys() - self._known}
        for key, accepts in self._accepts.items():
            value = event.get(key)
            if value is not None and not _fits(value, accepts, key):
                extra[key] = value
        return orjson.dumps(extra) if extra else None


def _fits(value: Any, accepts: tuple[type, ...], key: str) -> bool:
    # bool is an int in Python; a JSON `true` must not pass as a number or an id.
    if isinstance(value, bool) and bool not in accepts:
        return False
    if not isinstance(value, accepts):
        return False
    if isinstance(value, dict) and key == "scores":
        return all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in value.values()
        )
    if isinstance(value, list) and key in ("tags", "span_parents"):
        return all(isinstance(v, str) for v in value)
    return True
