"""Extraction of one object: pin a version, page newest-first, stage, checkpoint.

Only one page and one part's worth of rows are in memory at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from connector.client import BraintrustClient
from connector.pagination import FetchPaginator
from connector.progress import ProgressTask
from connector.shape import RowShaper
from connector.staging import Checkpoint, ObjectStaging
from connector.xact import parse_xact
from schemas.api import FetchEventsRequest
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
    checkpoint with `done=True`. The checkpoint on disk is updated after each
    part, so a crash loses at most one part's pages.
    """
    shaper = RowShaper(ref.stream.payload_columns)
    first_limit = page_limit if checkpoint.cutoff is None else min(INCREMENTAL_FIRST_LIMIT, page_limit)
    paginator = FetchPaginator(checkpoint.version, first_limit, checkpoint.position)
    pending: list[pa.RecordBatch] = []
    pending_rows = pages = fetched = 0
    reached_cutoff = False
    while paginator.has_next and not reached_cutoff:
        page = client.fetch_page(ref.stream.object_type, ref.object_id, paginator.request())
        paginator.update(page)
        shaped = shaper.shape(page.events, checkpoint.cutoff)
        reached_cutoff = (
            checkpoint.cutoff is not None
            and shaped.min_xact is not None
            and shaped.min_xact <= checkpoint.cutoff
        )
        paginator.limit = min(paginator.limit * 2, page_limit)
        pages += 1
        fetched += shaped.rows_seen
        if shaped.batch.num_rows:
            pending.append(shaped.batch)
            pending_rows += shaped.batch.num_rows
        progress.advance(rows=shaped.rows_seen, pages=1)
        finished = reached_cutoff or not paginator.has_next
        if pending_rows >= PART_ROWS or finished:
            parts = list(checkpoint.parts)
            if pending:
                parts.append(staging.write_part(pending, len(parts)))
            checkpoint = checkpoint.model_copy(
                update={
                    "position": paginator.position,
                    "parts": parts,
                    "done": finished,
                    "pages": checkpoint.pages + pages,
                    "rows_fetched": checkpoint.rows_fetched + fetched,
                }
            )
            staging.save(checkpoint)
            pending, pending_rows, pages, fetched = [], 0, 0, 0
    return checkpoint
