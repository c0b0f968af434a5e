"""The version history of one object's events, and paging over it.

Every version ever written is kept, in fetch order reversed: ascending
(`_xact_id`, `root_span_id`, `id`). Writes only ever append (each request gets a
larger `_xact_id` than any before it), so a position in the history is a stable
bookmark: the cursor is just "continue below position p, with pin v". A page
serves at most one version of each id.
Versions are kept pre-serialized so a page is served by joining bytes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from connector.emulator import json_text
from connector.emulator.errors import bad_request

# (root_span_id, id, serialized row) of one new version.
Version = tuple[str, str, bytes]


@dataclass(frozen=True)
class Page:
    """One fetch page.

    Attributes:
        rows: serialized rows, newest first.
        cursor: the cursor of the next page, or None when this page is empty.
        cursor_here: a cursor that fetches this same page again (for the
            `repeat_cursor` fault, which simulates a cursor that does not advance).
        cursor_again: another cursor to this same page, spelt differently (for the `empty_page`
            fault: a server may answer an empty page whose cursor moves on without skipping rows).
    """

    rows: list[bytes]
    cursor: str | None
    cursor_here: str
    cursor_again: str


class History:
    """Append-only version history of one object's events."""

    def __init__(self, object_id: str) -> None:
        self.object_id = object_id
        self._xacts = array("Q")
        self._root_span_ids: list[str] = []
        self._ids: list[str] = []
        self._blobs: list[bytes] = []
        self._latest: dict[str, int] = {}  # id -> position of its live version
        self._deleted_at: dict[str, list[int]] = {}  # id -> xacts of its deletions
        # Comments on rows not written yet, by row id (see `rows.apply_events`).
        self.waiting_comments: dict[str, list[dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._blobs)

    def append(self, xact: int, versions: Iterable[Version], deleted: Iterable[str] = ()) -> None:
        """Record one write request: its deletions, then its new versions.

        `xact` must be larger than every xact appended before.
        """
        for row_id in deleted:
            self._deleted_at.setdefault(row_id, []).append(xact)
            self._latest.pop(row_id, None)
        for root_span_id, row_id, blob in sorted(versions, key=lambda version: (version[0], version[1])):
            self._latest[row_id] = len(self._blobs)
            self._xacts.append(xact)
            self._root_span_ids.append(root_span_id)
            self._ids.append(row_id)
            self._blobs.append(blob)

    def latest(self, row_id: str) -> dict[str, Any] | None:
        """Return the live version of a row, or None if it never existed or is deleted."""
        position = self._latest.get(row_id)
        return None if position is None else json_text.loads(self._blobs[position])

    def live_rows(self) -> list[dict[str, Any]]:
        return [json_text.loads(self._blobs[position]) for position in self._latest.values()]

    def live_count(self) -> int:
        return len(self._latest)

    def page(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        version: int | None = None,
        max_xact_id: int | None = None,
        max_root_span_id: str | None = None,
    ) -> Page:
        """Return the next page of versions, newest first, holding at most `limit` traces.

        Args:
            limit: how many distinct `root_span_id`s the page may hold.
            cursor: from the previous page; it carries that page's version pin.
            version: pin: only versions with `_xact_id <= version`.
            max_xact_id: deprecated manual cursor: only versions strictly below
                (`max_xact_id`, `max_root_span_id`) in fetch order.
            max_root_span_id: see `max_xact_id`.
        """
        end = len(self._blobs)
        if cursor is not None:
            end, version = self._decode(cursor)
        if version is not None:
            end = min(end, bisect_right(self._xacts, version))
        if max_xact_id is not None:
            end = min(end, self._position_below(max_xact_id, max_root_span_id))
        rows, next_end = self._collect(end, limit, version)
        next_cursor = self._encode(next_end, version) if rows else None
        return Page(
            rows=rows,
            cursor=next_cursor,
            cursor_here=self._encode(end, version),
            cursor_again=self._encode(end, version, again=True),
        )

    def _collect(self, end: int, limit: int, version: int | None) -> tuple[list[bytes], int]:
        """Return the page's rows below `end` and where the next page ends.

        A page holds one version per id, its newest below `end`: the spec lets
        earlier versions come back on later pages only (`FetchLimit`), and the
        SDK keeps every row it is served. Earlier versions passed over here are
        consumed with the page, so a fetch that fits one page serves none.
        """
        rows: list[bytes] = []
        traces: set[str] = set()
        ids: set[str] = set()
        row_ids, root_span_ids, blobs = self._ids, self._root_span_ids, self._blobs
        position = end - 1
        while position >= 0:
            row_id = row_ids[position]
            if row_id in ids or (self._deleted_at and self._hidden(position, version)):
                position -= 1
                continue
            root_span_id = root_span_ids[position]
            if root_span_id not in traces:
                if len(traces) >= limit:
                    break
                traces.add(root_span_id)
            ids.add(row_id)
            rows.append(blobs[position])
            position -= 1
        return rows, position + 1

    def _hidden(self, position: int, version: int | None) -> bool:
        # A deletion at xact d hides every version written before it, for any
        # reader whose pin has reached d; a row re-created later is visible again.
        deletions = self._deleted_at.get(self._ids[position])
        if not deletions:
            return False
        xact = self._xacts[position]
        return any(xact < deleted and (version is None or deleted <= version) for deleted in deletions)

    def _position_below(self, max_xact_id: int, max_root_span_id: str | None) -> int:
        if max_root_span_id is None:
            return bisect_right(self._xacts, max_xact_id)
        low = bisect_left(self._xacts, max_xact_id)
        high = bisect_right(self._xacts, max_xact_id, lo=low)
        return bisect_left(self._root_span_ids, max_root_span_id, low, high)

    def _encode(self, end: int, version: int | None, *, again: bool = False) -> str:
        state: dict[str, object] = {"o": self.object_id, "p": end, "v": version}
        if again:
            state["n"] = secrets.token_hex(4)
        raw = orjson.dumps(state)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode(self, cursor: str) -> tuple[int, int | None]:
        try:
            state = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            end, version, object_id = state["p"], state["v"], state["o"]
        except (binascii.Error, ValueError, TypeError, KeyError) as error:
            raise bad_request("cursor is not one this server issued") from error
        if object_id != self.object_id or not isinstance(end, int) or not isinstance(version, int | None):
            raise bad_request("cursor belongs to a different object or is malformed")
        return min(end, len(self._blobs)), version
