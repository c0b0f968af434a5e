"""Extraction of one object: pin a version, page newest-first, stage, checkpoint.

Only one page and one part's worth of rows are in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connector.api.client import BraintrustClient
from connector.api.pagination import FetchPaginator, PagePosition
from connector.api.xact import parse_xact
from connector.progress import ProgressTask
from connector.sync.shape import RowShaper
from connector.sync.staging import Checkpoint, ObjectStaging
from schemas.api import FetchEventsRequest, FetchEventsResponse
from schemas.tables import EventStream

DEFAULT_PAGE_LIMIT = 1000
# An incremental read starts with small pages and doubles them while every row is new:
# the last page always overshoots into already-synced rows, and this keeps that overshoot
# proportional to the change instead of a full page.
INCREMENTAL_FIRST_LIMIT = 1
PART_ROWS = 20_000


@dataclass(frozen=True)
class ObjectRef:
    """One event container to sync.

    Args:
        stream: which table it feeds.
        object_id: the project id (logs), experiment id or dataset id.
        project_id: the project it belongs to.
        name: a human name for progress and summaries.
    """

    stream: EventStream
    object_id: str
    project_id: str
    name: str


def newest_version(client: BraintrustClient, ref: ObjectRef) -> int | None:
    """Return the newest visible `_xact_id` of the object, or None when it has no rows."""
    page = client.fetch_page(ref.stream.object_type, ref.object_id, FetchEventsRequest(limit=1))
    return max((parse_xact(e["_xact_id"]) for e in page.events), default=None)


def extract_object(
    client: BraintrustClient,
    ref: ObjectRef,
    staging: ObjectStaging,
    checkpoint: Checkpoint,
    progress: ProgressTask,
    *,
    page_limit: int = DEFAULT_PAGE_LIMIT,
) -> Checkpoint:
    """Fetch the object's versions above `checkpoint.cutoff` at `checkpoint.version` into staging.

    Continues from `checkpoint.position` (a resumed sync) and returns the final
    checkpoint with `done=True`. Parts are typed and written on a background
    thread while the next pages are fetched; the checkpoint on disk is updated
    once a part is on disk, so a crash loses at most two parts' pages.
    """
    shaper = RowShaper(ref.stream.payload_columns)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bt-sync-stage")
    batches: list[pa.RecordBatch] = []
    rows = pages = fetched = 0
    next_part = len(checkpoint.parts)
    writing: _PartInFlight | None = None
    try:
        for page in _prefetched_pages(client, ref, checkpoint, page_limit):
            batch = shaper.shape(page.events, checkpoint.cutoff)
            pages += 1
            fetched += len(page.events)
            if batch.num_rows:
                batches.append(batch)
                rows += batch.num_rows
            progress.advance(rows=len(page.events), pages=1)
            if rows >= PART_ROWS or page.last:
                checkpoint = _record(writing, checkpoint, staging)
                file = writer.submit(staging.write_part, ref.stream, batches, next_part) if batches else None
                next_part += 1 if batches else 0
                writing = _PartInFlight(file, page.position_after, pages, fetched, page.last)
                batches, rows, pages, fetched = [], 0, 0, 0
        return _record(writing, checkpoint, staging)
    finally:
        writer.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class _PartInFlight:
    """A part being written, and the progress it completes once it is on disk."""

    file: Future[str] | None
    position_after: PagePosition
    pages: int
    fetched: int
    done: bool


def _record(part: _PartInFlight | None, checkpoint: Checkpoint, staging: ObjectStaging) -> Checkpoint:
    """Wait for `part` to be written, then checkpoint it; returns the new checkpoint."""
    if part is None:
        return checkpoint
    parts = [*checkpoint.parts, part.file.result()] if part.file is not None else checkpoint.parts
    checkpoint = checkpoint.model_copy(
        update={
            "position": part.position_after,
            "parts": parts,
            "done": part.done,
            "pages": checkpoint.pages + part.pages,
            "rows_fetched": checkpoint.rows_fetched + part.fetched,
        }
    )
    staging.save(checkpoint)
    return checkpoint


@dataclass(frozen=True)
class _FetchedPage:
    events: list[dict[str, Any]]
    position_after: PagePosition
    last: bool


def _prefetched_pages(
    client: BraintrustClient, ref: ObjectRef, checkpoint: Checkpoint, page_limit: int
) -> Iterator[_FetchedPage]:
    """Yield the pages to stage, in order, with the next page's request already in flight.

    Fetching one page ahead overlaps the server's work and the network with
    shaping and staging the current page. Paging stops at the end of the data
    or at the first page that reaches the cutoff (everything after it is older).
    """
    cutoff = checkpoint.cutoff
    first_limit = page_limit if cutoff is None else min(INCREMENTAL_FIRST_LIMIT, page_limit)
    paginator = FetchPaginator(checkpoint.version, first_limit, checkpoint.position)
    object_type, object_id = ref.stream.object_type, ref.object_id
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bt-sync-fetch")
    try:
        in_flight: Future[FetchEventsResponse] | None = pool.submit(
            client.fetch_page, object_type, object_id, paginator.request()
        )
        while in_flight is not None:
            page = in_flight.result()
            paginator.update(page)
            oldest = min((parse_xact(e["_xact_id"]) for e in page.events), default=None)
            last = not paginator.has_next or (cutoff is not None and oldest is not None and oldest <= cutoff)
            paginator.limit = min(paginator.limit * 2, page_limit)
            in_flight = (
                None if last else pool.submit(client.fetch_page, object_type, object_id, paginator.request())
            )
            yield _FetchedPage(page.events, paginator.position, last)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
