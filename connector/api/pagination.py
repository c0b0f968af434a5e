"""Paging through `fetch`: the opaque cursor, or the deprecated manual cursor.

Braintrust returns `cursor` on every non-empty page. A server that sends rows
but no cursor is treated as one that only knows the deprecated
`max_xact_id`/`max_root_span_id` paging, which continues strictly after the
last (`_xact_id`, `root_span_id`) of the page. Either way a cursor that repeats
or a position that does not move is an error, never an endless loop.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from connector.api.xact import format_xact, parse_xact
from connector.errors import PaginationError
from schemas.api import FetchEventsRequest, FetchEventsResponse


class PagePosition(BaseModel):
    """Where the next page starts: an opaque cursor, or a manual (xact, root span) position."""

    model_config = ConfigDict(frozen=True)

    cursor: str | None = None
    max_xact_id: int | None = None
    max_root_span_id: str | None = None


class FetchPaginator:
    """Builds each fetch request from the previous response.

    Args:
        version: the pinned `_xact_id` sent on every page.
        limit: traces per page; may be changed between pages.
        position: where to resume (from a checkpoint), or None to start at the newest row.
    """

    def __init__(self, version: int, limit: int, position: PagePosition | None = None) -> None:
        self._version = format_xact(version)
        self.limit = limit
        self.position = position or PagePosition()
        self._seen_cursors: set[str] = {self.position.cursor} if self.position.cursor else set()
        self.has_next = True

    def request(self) -> FetchEventsRequest:
        """The request for the next page."""
        position = self.position
        return FetchEventsRequest(
            limit=self.limit,
            version=self._version,
            cursor=position.cursor,
            max_xact_id=None if position.max_xact_id is None else format_xact(position.max_xact_id),
            max_root_span_id=position.max_root_span_id,
        )

    def update(self, page: FetchEventsResponse) -> None:
        """Advance past `page`; sets `has_next` to False at the end of the data.

        Raises:
            PaginationError: the cursor repeated or the manual position did not move.
        """
        if not page.events:
            self.has_next = False
            return
        if page.cursor:
            if page.cursor in self._seen_cursors:
                raise PaginationError(
                    "the API returned a fetch cursor it had already returned; stopping instead of looping. "
                    "Rerun the sync: it resumes from its last checkpoint."
                )
            self._seen_cursors.add(page.cursor)
            self.position = PagePosition(cursor=page.cursor)
            return
        xact, root_span_id = _last_position(page.events)
        previous = self.position
        if previous.max_xact_id is not None and (xact, root_span_id) >= (
            previous.max_xact_id,
            previous.max_root_span_id or "",
        ):
            raise PaginationError(
                "fetch paging by max_xact_id did not move past the previous page; stopping."
            )
        self.position = PagePosition(max_xact_id=xact, max_root_span_id=root_span_id)


def _last_position(events: list[dict[str, Any]]) -> tuple[int, str]:
    # Pages are ordered by (_xact_id, root_span_id) descending: the smallest tuple is where to continue.
    return min((parse_xact(e["_xact_id"]), str(e.get("root_span_id", ""))) for e in events)
