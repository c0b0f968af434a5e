"""Reading one object: pin a version, page newest first, stage every page, checkpoint after each.

The next page is requested while the current one is being typed and written:
the cursor is read off the end of the raw body (checked afterwards against
DuckDB's full parse), so the network and the server's work overlap with
staging. Only one page is in memory at a time.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from connector.api.client import BraintrustClient, PageTooLarge
from connector.api.pagination import MAX_EMPTY_PAGES, EndOfHistory, FetchPaginator, PageEnd
from connector.api.xact import parse_xact
from connector.destinations.base import ObjectRef
from connector.errors import MalformedResponse, PaginationError
from connector.progress import ProgressTask
from connector.sync.deep_json import with_room_for_depth
from connector.sync.shape import PageMalformed, check_events
from connector.sync.stage import PageStager, StagedPage
from connector.sync.staging import Checkpoint, ObjectStaging
from schemas.api import FetchEventsRequest

# Pages start small and grow while they go on, toward the size in bytes that keeps staging's memory
# bounded whatever the size of a row: `--page-limit` is the most traces a page may hold. A page's bytes
# are bounded by its aim, the bytes per trace of the page before, and by `OVERSIZED_PAGE` when the
# traces turn heavier; how fast pages grow only sets how many traces the aim is estimated from. A full
# read grows eightfold (10, 80, 640, ... traces): at 200,000 rows it fetched 37 pages into 41 files,
# where doubling took 41 pages and 51 files, each page and file costing DuckDB a few milliseconds of
# fixed work. An incremental read starts smallest and grows more slowly: its last page always
# overshoots into already-synced rows, and a page of at most half the traces read before it keeps that
# overshoot within half the change.
# 7 MB rather than 8: a sync's peak memory fell by 35-45 MB (at 200,000 and at a million rows), for
# 11-14% more pages and no CPU beyond this machine's noise.
PAGE_TARGET_BYTES = 7 * 2**20
# A page over this many times its aim is not read to its end but asked for again with fewer traces: its
# traces weigh far more than the ones the aim was taken from (the newest traces light, older ones heavy),
# and holding it would take this process its size twice over, typing it DuckDB about ten times. A page
# of one trace is taken whatever it weighs.
OVERSIZED_PAGE = 2
FULL_FIRST_LIMIT = 10
FULL_GROWTH = 8
INCREMENTAL_FIRST_LIMIT = 1
# `{"events": [...], "cursor": "..."}`: a cursor that is the body's last member is the top-level one,
# since only the top-level object can close the body.
_TRAILING_CURSOR = re.compile(rb'[{,]\s*"cursor"\s*:\s*(null|"(?:[^"\\]|\\.)*")\s*}\s*$')
_TAIL_BYTES = 8192


def newest_version(client: BraintrustClient, ref: ObjectRef, *, confirm_empty: bool = False) -> int | None:
    """The newest visible `_xact_id` of the object, or None when it has no rows.

    `confirm_empty`: no rows, the end of the history, is asked for twice before it is believed, as a
    read's end is (`EndOfHistory`), where one wrong answer would make a reconcile delete every row of the
    object. Elsewhere it would only put off a read to the next sync: an object with no rows is asked for
    once.

    Raises:
        MalformedResponse: the page breaks the API's contract.
    """
    request = FetchEventsRequest(limit=1)
    end = EndOfHistory(ask_twice=confirm_empty)
    for _ in range(MAX_EMPTY_PAGES):
        body = client.fetch_raw(ref.object_type, ref.object_id, request)
        try:
            # The standard library's parser: the one-trace page may hold integers wider than 64 bits.
            page = with_room_for_depth(partial(json.loads, body))
            events = check_events(page)
        except ValueError as error:
            raise _malformed(client, ref, PageMalformed(f"the page is not valid JSON ({error})")) from None
        except PageMalformed as malformed:
            raise _malformed(client, ref, malformed) from None
        cursor = page.get("cursor")
        if events:
            return max(parse_xact(str(event["_xact_id"])) for event in events)
        at_end = not cursor  # none, or empty text: `check_events` refused a cursor of any other type
        if end.believed(at_end):
            return None
        if not at_end:  # an empty page with a cursor: the newest row is further on
            request = FetchEventsRequest(limit=1, cursor=cursor)
    raise PaginationError(
        f"{ref.stream.table} {ref.name!r}: {MAX_EMPTY_PAGES} empty pages in a row; stopping."
    )


def _raised_by_the_first_rows(checkpoint: Checkpoint, page: StagedPage) -> dict[str, int]:
    """The read's bounds, raised to the newest row of its first page with rows.

    A row written after the read's start but before that page was served is on it, and so is every
    row older than it (or it was deleted): the read meets them all. As the watermark, it is a row the
    next syncs need not read again; as `existed_up_to`, one a reconcile that did not meet it may take
    for deleted. Left below it, a row met this way and deleted since stayed in the warehouse until a
    newer row was written.
    """
    if checkpoint.rows_fetched or page.newest_xact is None:
        return {}
    newest = page.newest_xact
    return {
        "watermark": max(checkpoint.watermark, newest),
        "existed_up_to": max(checkpoint.existed_bound, newest),
    }


def extract_object(
    client: BraintrustClient,
    ref: ObjectRef,
    staging: ObjectStaging,
    checkpoint: Checkpoint,
    progress: ProgressTask,
    *,
    page_limit: int,
    object_rows: int,
) -> Checkpoint:
    """Fetch the object's versions above `checkpoint.cutoff` at `checkpoint.version` into staging.

    Continues from `checkpoint.position` (a resumed read) and returns the final
    checkpoint, with `done=True`. The checkpoint on disk is updated after every
    page, once its parts are on disk.

    Args:
        object_rows: rows the object already holds in the destination (sizes the staged parts).

    Raises:
        MalformedResponse: a page breaks the API's contract (an event without an id, ...).
        PaginationError: the cursor repeated or stopped advancing.
    """
    cutoff = checkpoint.cutoff
    paginator = FetchPaginator(
        checkpoint.version,
        min(FULL_FIRST_LIMIT if cutoff is None else INCREMENTAL_FIRST_LIMIT, page_limit),
        checkpoint.position,
    )
    stager = PageStager(
        ref.stream,
        staging,
        checkpoint.parts,
        ordered=checkpoint.ordered,
        oldest_xact=checkpoint.oldest_xact,
        object_rows=object_rows + checkpoint.rows_staged,
    )
    fetcher = _Fetcher(client, ref)
    # Traces asked for so far: every page but the last holds as many as it was asked for.
    traces_read = 0
    # The last page staged, and the checkpoint naming it: saved once its parts are on disk, while
    # the next page is read (never before: a checkpoint names only parts that exist).
    pending: tuple[StagedPage, Checkpoint, int] | None = None
    end = EndOfHistory()
    try:
        in_flight = fetcher.fetch(paginator.request())
        while True:
            try:
                body = in_flight.result()
            except PageTooLarge as too_large:
                # Nothing was asked for after it yet: the paginator is still where the page starts. Its
                # size puts the aim below the limit asked for, which the next limit then holds.
                paginator.limit = next_limit(paginator.limit, too_large.size, page_limit)
                in_flight = fetcher.fetch(paginator.request())
                continue
            traces_read += paginator.limit
            paginator.limit = next_limit(
                paginator.limit, len(body), page_limit, traces_read=None if cutoff is None else traces_read
            )
            early = trailing_cursor(body) if cutoff is None else None
            if early is not None:
                # A full read wants the next page whatever this one holds: ask for it now.
                in_flight = fetcher.fetch(paginator.request_after(early))
            with staging.writing():
                page = _stage(client, stager, body, cutoff, ref)
            if early is not None and page.cursor != early:
                raise PaginationError(
                    f"the cursor at the end of a page of {ref.name!r} is not the page's cursor"
                )
            paginator.update(PageEnd(page.cursor, page.events, page.oldest))
            # The end told again confirms the first answer: no page of its own.
            confirmed = end.believed(not paginator.has_next)
            if not paginator.has_next and not confirmed:
                paginator.has_next = True  # ask for it again
            # Down to the cutoff once no later trace can be newer: a page's oldest row said so only where
            # the API pages by rows, not by whole traces (a trace's older spans come with its new one).
            done = not paginator.has_next or (
                cutoff is not None and page.trace_floor is not None and page.trace_floor <= cutoff
            )
            checkpoint = checkpoint.model_copy(
                update={
                    **_raised_by_the_first_rows(checkpoint, page),
                    "position": paginator.position,
                    "parts": [*checkpoint.parts, *page.parts],
                    "done": done,
                    "pages": checkpoint.pages + (0 if confirmed else 1),
                    "rows_fetched": checkpoint.rows_fetched + page.events,
                    "rows_staged": checkpoint.rows_staged + page.rows,
                    "ordered": stager.ordered,
                    "oldest_xact": stager.oldest_xact,
                }
            )
            if early is None and not done:
                in_flight = fetcher.fetch(paginator.request())
            if pending is not None:
                _save(staging, progress, *pending)
            pending = (page, checkpoint, 0 if confirmed else 1)
            if done:
                _save(staging, progress, *pending)
                return checkpoint
    finally:
        fetcher.close()
        stager.close()


def _save(
    staging: ObjectStaging, progress: ProgressTask, page: StagedPage, checkpoint: Checkpoint, pages: int
) -> None:
    """Checkpoint a page once its parts are on disk (`pages`: 0 for the end of the history told again)."""
    with staging.writing():
        page.wait()
        staging.save(checkpoint)
    progress.advance(rows=page.events, pages=pages)


def next_limit(limit: int, page_bytes: int, most: int, *, traces_read: int | None = None) -> int:
    """The next page's limit: `FULL_GROWTH` times this one's, but aim at `PAGE_TARGET_BYTES` and stay
    within `most`.

    An incremental read passes `traces_read`, the traces read so far: its next page holds at most twice
    this one's traces and at most half as many as were read.
    """
    toward_target = limit * PAGE_TARGET_BYTES // max(page_bytes, 1)
    growth = FULL_GROWTH * limit if traces_read is None else min(2 * limit, traces_read // 2)
    return max(1, min(most, growth, toward_target))


def trailing_cursor(body: bytes | bytearray) -> str | None:
    """The cursor, when the body ends with it (a cheap look at the tail); None otherwise, when null or
    empty, or when it is not a JSON string (`"\\x"`): the page's parse then says the body is not valid
    JSON."""
    match = _TRAILING_CURSOR.search(body[-_TAIL_BYTES:])
    if match is None or match.group(1) == b"null":
        return None
    try:
        cursor = json.loads(match.group(1))
    except ValueError:
        return None
    # An empty cursor is none: the SDK stops at a falsy one, and sent back it is no position.
    return cursor if isinstance(cursor, str) and cursor else None


def _stage(
    client: BraintrustClient, stager: PageStager, body: bytes | bytearray, cutoff: int | None, ref: ObjectRef
) -> StagedPage:
    try:
        return stager.stage(body, cutoff)
    except PageMalformed as malformed:
        raise _malformed(client, ref, malformed) from None


def _malformed(client: BraintrustClient, ref: ObjectRef, malformed: PageMalformed) -> MalformedResponse:
    """The error of a malformed page, which may quote its values: the key hidden, should one be it (Dagster
    keeps an error as it is given)."""
    return MalformedResponse(
        client.without_key(
            f"a fetch page of {ref.stream.table} {ref.name!r} ({ref.object_id}) is malformed: {malformed}; "
            "nothing was committed for it"
        )
    )


class _Fetcher:
    """Fetches pages on a background thread, one at a time."""

    def __init__(self, client: BraintrustClient, ref: ObjectRef) -> None:
        self._client = client
        self._ref = ref
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bt-sync-fetch")

    def fetch(self, request: FetchEventsRequest) -> Future[bytes | bytearray]:
        """The page `request` asks for; past `OVERSIZED_PAGE` times its aim, `PageTooLarge` instead,
        unless it is a page of one trace, taken whatever it weighs."""
        most = None if (request.limit or 1) == 1 else OVERSIZED_PAGE * PAGE_TARGET_BYTES
        return self._pool.submit(
            self._client.fetch_raw, self._ref.object_type, self._ref.object_id, request, most_bytes=most
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
