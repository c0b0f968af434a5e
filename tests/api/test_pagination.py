"""The fetch paginator: each request follows the page before it, and a paging that stops moving stops."""

from __future__ import annotations

import re

import pytest

from connector.api.pagination import MAX_EMPTY_PAGES, EndOfHistory, FetchPaginator, PageEnd, PagePosition
from connector.errors import PaginationError
from schemas.api import FetchEventsRequest

VERSION = 1000198294685155348
# What a user reads when paging stops: the whole text, so that a change to it is a choice.
RERUN = "Rerun the sync: it resumes from its last checkpoint."
REPEATED_CURSOR = (
    f"the API returned a fetch cursor it had already returned; stopping instead of looping. {RERUN}"
)
TOO_MANY_EMPTY_PAGES = (
    f"the API returned {MAX_EMPTY_PAGES} empty pages in a row, each with a new cursor; stopping. {RERUN}"
)
NOT_MOVING = "fetch paging by max_xact_id did not move past the previous page; stopping."


def whole(message: str) -> str:
    """A `match` pattern for exactly `message`."""
    return f"^{re.escape(message)}$"


def test_the_first_request_is_pinned_and_starts_at_the_newest_row() -> None:
    paginator = FetchPaginator(VERSION, 10)
    assert paginator.request() == FetchEventsRequest(limit=10, version=str(VERSION))
    assert paginator.has_next and paginator.position == PagePosition()


def test_each_request_carries_the_previous_page_s_cursor_and_the_current_limit() -> None:
    paginator = FetchPaginator(VERSION, 10)
    paginator.update(PageEnd("c1", 10, (5, "r")))
    paginator.limit = 40
    assert paginator.request() == FetchEventsRequest(limit=40, version=str(VERSION), cursor="c1")
    assert paginator.has_next and paginator.position == PagePosition(cursor="c1")


def test_a_page_without_cursor_or_events_is_the_end() -> None:
    paginator = FetchPaginator(VERSION, 10)
    paginator.update(PageEnd("c1", 3, (5, "r")))
    paginator.update(PageEnd(None, 0, None))
    assert not paginator.has_next


def test_a_repeated_cursor_is_an_error_also_the_one_a_resumed_read_started_from() -> None:
    paginator = FetchPaginator(VERSION, 10)
    paginator.update(PageEnd("c1", 10, (9, "r")))
    paginator.update(PageEnd("c2", 10, (8, "r")))
    with pytest.raises(PaginationError, match=whole(REPEATED_CURSOR)):
        paginator.update(PageEnd("c1", 10, (7, "r")))
    resumed = FetchPaginator(VERSION, 10, PagePosition(cursor="c2"))
    assert resumed.request().cursor == "c2"
    with pytest.raises(PaginationError, match=whole(REPEATED_CURSOR)):
        resumed.update(PageEnd("c2", 10, (7, "r")))


def test_empty_pages_with_new_cursors_are_followed_until_too_many_come_in_a_row() -> None:
    paginator = FetchPaginator(VERSION, 10)
    for n in range(MAX_EMPTY_PAGES - 1):
        paginator.update(PageEnd(f"empty-{n}", 0, None))
    paginator.update(PageEnd("full", 5, (3, "r")))  # a page with events starts the count again
    for n in range(MAX_EMPTY_PAGES - 1):
        paginator.update(PageEnd(f"again-{n}", 0, None))
    assert paginator.has_next
    with pytest.raises(PaginationError, match=whole(TOO_MANY_EMPTY_PAGES)):
        paginator.update(PageEnd("one-too-many", 0, None))


def test_without_cursors_paging_continues_below_the_oldest_row_of_the_page() -> None:
    paginator = FetchPaginator(VERSION, 10)
    paginator.update(PageEnd(None, 10, (1000000000, "root-b")))
    assert paginator.has_next
    assert paginator.request() == FetchEventsRequest(
        limit=10, version=str(VERSION), max_xact_id="1000000000", max_root_span_id="root-b"
    )
    # Same version, an earlier trace: still moving.
    paginator.update(PageEnd(None, 10, (1000000000, "root-a")))
    paginator.update(PageEnd(None, 10, (999999999, "root-z")))
    assert paginator.position == PagePosition(max_xact_id=999999999, max_root_span_id="root-z")


@pytest.mark.parametrize("oldest", [(999999999, "root-z"), (999999999, "root-zz"), (1000000000, "a")])
def test_without_cursors_a_page_that_does_not_move_down_is_an_error(oldest: tuple[int, str]) -> None:
    paginator = FetchPaginator(VERSION, 10)
    paginator.update(PageEnd(None, 10, (999999999, "root-z")))
    with pytest.raises(PaginationError, match=whole(NOT_MOVING)):
        paginator.update(PageEnd(None, 10, oldest))


def test_a_manual_position_without_a_root_span_compares_as_the_lowest() -> None:
    paginator = FetchPaginator(VERSION, 10, PagePosition(max_xact_id=50))
    paginator.update(PageEnd(None, 10, (49, "")))
    assert paginator.position == PagePosition(max_xact_id=49, max_root_span_id="")
    with pytest.raises(PaginationError):
        FetchPaginator(VERSION, 10, PagePosition(max_xact_id=50)).update(PageEnd(None, 10, (50, "")))


def test_the_request_after_a_cursor_drops_the_manual_position() -> None:
    paginator = FetchPaginator(VERSION, 10, PagePosition(max_xact_id=50, max_root_span_id="r"))
    paginator.limit = 20
    assert paginator.request_after("next") == FetchEventsRequest(
        limit=20, version=str(VERSION), cursor="next"
    )


def test_the_end_is_believed_when_told_twice_in_a_row() -> None:
    end = EndOfHistory()
    assert [end.believed(at_end) for at_end in (True, False, True, True)] == [False, False, False, True]


def test_the_end_is_believed_at_once_when_not_asked_twice() -> None:
    end = EndOfHistory(ask_twice=False)
    assert [end.believed(at_end) for at_end in (False, True)] == [False, True]
