"""Paging through `fetch`: the opaque cursor, or the deprecated manual cursor.

Braintrust returns `cursor` on every page but the last, including pages that
happen to hold no events (they are followed, not taken as the end). A server
that sends rows but no cursor is treated as one that only knows the deprecated
`max_xact_id`/`max_root_span_id` paging, which continues strictly after the
last (`_xact_id`, `root_span_id`) of the page. Either way a cursor that repeats,
a position that does not move, or a run of empty pages is an error, never an
endless loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from connector.api.xact import format_xact
from connector.errors import PaginationError
from schemas.api import FetchEventsRequest

# Empty pages that each carry a new cursor: this many in a row means the server is not making progress.
MAX_EMPTY_PAGES = 100


class PagePosition(BaseModel):
    """Where the next page starts: an opaque cursor, or a manual (xact, root span) position."""

    model_config = ConfigDict(frozen=True)

    cursor: str | None = None
    max_xact_id: int | None = None
    max_root_span_id: str | None = None


@dataclass(frozen=True)
class PageEnd:
    """What paging needs to know of a page.

    Args:
        cursor: the page's `cursor`, None when the server sent none.
        events: how many events it held.
        oldest: its smallest (`_xact_id`, `root_span_id`): where manual paging continues.
    """

    cursor: str | None
    events: int
    oldest: tuple[int, str] | None


class EndOfHistory:
    """Believes the end of an object's history (an empty page without a cursor) only when told it twice
    in a row: one wrong answer, a server's or a proxy's, would end a read early for good (a first load
    would lack every older row, a reconcile delete them), at the cost of a request a read.

    Args:
        ask_twice: False where a wrong end costs nothing lasting (it only puts a read off to the next
            sync): it is then believed the first time.
    """

    def __init__(self, *, ask_twice: bool = True) -> None:
        self._ask_twice = ask_twice
        self._told = False

    def believed(self, at_end: bool) -> bool:
        """Whether paging stops here: `at_end` says this page is the end, told a second time in a row (or
        once, not asking twice). Any other page starts the count again."""
        if not at_end:
            self._told = False
            return False
        if self._told or not self._ask_twice:
            return True
        self._told = True  # the same request again
        return False


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
        self._empty_in_a_row = 0
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

    def request_after(self, cursor: str) -> FetchEventsRequest:
        """The request for the page after one whose cursor is `cursor` (to send before `update`)."""
        return self.request().model_copy(
            update={"cursor": cursor, "max_xact_id": None, "max_root_span_id": None}
        )

    def update(self, page: PageEnd) -> None:
        """Advance past `page`; sets `has_next` to False at the end of the data.

        Raises:
            PaginationError: the cursor repeated, the manual position did not move, or
                too many empty pages came in a row.
        """
        self._empty_in_a_row = 0 if page.events else self._empty_in_a_row + 1
        if page.cursor:
            self._follow(page.cursor)
            return
        if page.oldest is None:
            self.has_next = False
            return
        xact, root_span_id = page.oldest
        previous = self.position
        if previous.max_xact_id is not None and (xact, root_span_id) >= (
            previous.max_xact_id,
            previous.max_root_span_id or "",
        ):
            raise PaginationError(
                "fetch paging by max_xact_id did not move past the previous page; stopping."
            )
        self.position = PagePosition(max_xact_id=xact, max_root_span_id=root_span_id)

    def _follow(self, cursor: str) -> None:
        if cursor in self._seen_cursors:
            raise PaginationError(
                "the API returned a fetch cursor it had already returned; stopping instead of looping. "
                "Rerun the sync: it resumes from its last checkpoint."
            )
        if self._empty_in_a_row >= MAX_EMPTY_PAGES:
            raise PaginationError(
                f"the API returned {MAX_EMPTY_PAGES} empty pages in a row, each with a new cursor; stopping. "
                "Rerun the sync: it resumes from its last checkpoint."
            )
        self._seen_cursors.add(cursor)
        self.position = PagePosition(cursor=cursor)
