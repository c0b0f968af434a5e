"""A sync run: the catalog, then each object read, staged and merged into the destination.

This is the one function the CLI, the demo and Dagster call. Per object:
pin the newest version V, fetch the versions above the watermark (minus an
overlap window for ingestion lag) into staging, and let the destination merge
them and commit them with the new watermark, atomically. An object that fails
(a malformed response, another process holding it) is reported and the run
goes on with the others; an object deleted upstream mid-run is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from connector import interrupts
from connector.api.client import BraintrustClient
from connector.api.xact import settled_below, snapshot_pin, xact_span_for_seconds
from connector.defaults import DEFAULT_LOCK_WAIT_S, DEFAULT_OVERLAP_S, DEFAULT_PAGE_LIMIT
from connector.destinations.base import Destination, ObjectRef, SyncState, VersionRange
from connector.display import printable
from connector.errors import (
    ApiError,
    ApiMisdirected,
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFoundError,
    PaginationError,
    RequestError,
    ServerUnavailable,
    StateError,
    TableChanged,
    UnreadableFiles,
    WarehouseError,
    WarehouseLocked,
    one_line_reason,
)
from connector.progress import NullProgress, ProgressReporter, ProgressTask
from connector.sync.catalog import (
    Catalog,
    check_same_source,
    discover_catalog,
    write_catalog_whole,
)
from connector.sync.extract import extract_object, newest_version
from connector.sync.staging import Checkpoint, ObjectStaging
from schemas.api import ObjectType
from schemas.kinds import BY_OPTION, EVENT_KINDS, EVENT_STREAMS, KINDS, ObjectKind

logger = logging.getLogger("bt_sync")
# What a server answers a request whose cursor or version it no longer takes: bad request, gone,
# unprocessable.
_POSITION_REFUSED = frozenset({HTTPStatus.BAD_REQUEST, HTTPStatus.GONE, HTTPStatus.UNPROCESSABLE_ENTITY})
# A reconcile deleting more than half of an object's rows says so, from this many rows.
MOST_DELETED_UNREMARKED = 100
# Failures confined to one object (or one table's objects): the run reports them and goes on with the
# other objects. So do `ServerUnavailable` (one object's reads may be all that fails) and `WarehouseError`
# (one object's files may be all that cannot be written), until `MOST_FAILING_IN_A_ROW` objects fail with
# the same.
OBJECT_FAILURES = (
    MalformedResponse,
    PaginationError,
    RequestError,
    StateError,
    TableChanged,
    WarehouseLocked,
)
# After this many objects in a row found the API unavailable, or the warehouse unwritable, the others
# are not tried: each would spend all its retries on an API that is down, or read all its rows for a
# full disk.
MOST_FAILING_IN_A_ROW = 2
# An interrupted read's scratch untouched this long, of an object neither listed nor held, is abandoned.
ABANDONED_AFTER_S = 3600


class SyncOptions(BaseModel):
    """What to sync and how.

    Args:
        projects: project names or ids to sync; empty means every project.
        kinds: which kinds of objects to sync (`--objects`): event containers and catalog kinds.
        full: ignore watermarks and re-read every object's whole history.
        reconcile: re-read everything and delete rows (and objects) deleted upstream.
        page_limit: traces per fetch page.
        overlap_s: how far below the watermark an incremental sync re-reads.
        lock_wait_s: how long to wait for another process syncing the same object.
    """

    model_config = ConfigDict(frozen=True)

    projects: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset(kind.option for kind in KINDS)
    full: bool = False
    reconcile: bool = False
    page_limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1, le=1000)
    overlap_s: float = Field(default=DEFAULT_OVERLAP_S, ge=0, allow_inf_nan=False)
    lock_wait_s: float = Field(default=DEFAULT_LOCK_WAIT_S, ge=0, allow_inf_nan=False)

    @property
    def selected_kinds(self) -> list[ObjectKind]:
        """The selected kinds, in registry order."""
        return [kind for kind in KINDS if kind.option in self.kinds]


class ObjectStatus(StrEnum):
    """How an object's sync ended."""

    SYNCED = "synced"
    SKIPPED = "skipped"
    FAILED = "failed"


class ObjectSummary(BaseModel):
    """What a sync did to one object (`rows` and `bytes`: all its rows and data files after the sync)."""

    object_type: ObjectType
    object_id: str
    name: str
    table: str
    status: ObjectStatus = ObjectStatus.SYNCED
    error: str | None = None
    version: int | None = None
    mode: str = "incremental"
    resumed: bool = False
    pages: int = 0
    rows_fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rows: int = 0
    bytes_written: int = 0
    bytes: int = 0
    seconds: float = 0.0


class SyncSummary(BaseModel):
    """What a sync run did.

    Args:
        catalog: objects listed per catalog table (`projects`, `experiments`, ...).
    """

    started_at: datetime
    seconds: float
    catalog: dict[str, int]
    objects: list[ObjectSummary]
    removed_objects: list[str]
    requests: int
    retries: int

    @property
    def rows_fetched(self) -> int:
        """Row versions received from the API, over every object."""
        return sum(o.rows_fetched for o in self.objects)

    @property
    def failures(self) -> list[ObjectSummary]:
        """The objects that could not be synced."""
        return [o for o in self.objects if o.status is ObjectStatus.FAILED]


def run_sync(
    client: BraintrustClient,
    destination: Destination,
    options: SyncOptions,
    progress: ProgressReporter | None = None,
) -> SyncSummary:
    """Sync the catalog and every selected object into the destination.

    Args:
        client: the API client.
        destination: where the tables are, prepared here once the API answered the catalog's listing
            (`open_destination(..., prepare=False)`): a key the API rejects writes nothing.
        options: what to sync.
        progress: where to show progress; nothing is shown when None.
    """
    started, clock = datetime.now(UTC), time.monotonic()
    requests_before, retries_before = client.stats.requests, client.stats.retries
    kinds = options.selected_kinds
    catalog = discover_catalog(client, options.projects, kinds)
    check_same_source(catalog.listed_project_ids, destination.list_states())
    write_catalog_whole(client, destination, catalog, kinds)
    run = _SyncRun(client, destination, options, progress or NullProgress())
    objects = [run.sync_object(ref) for ref in catalog.refs(kinds)]
    # Not once the run stopped (a key the API stopped taking, a redirect): its checks would fail alike.
    reconciling = options.reconcile and run.stopped is None
    removed = remove_vanished(client, destination, catalog, kinds, options.lock_wait_s) if reconciling else []
    return SyncSummary(
        started_at=started,
        seconds=round(time.monotonic() - clock, 3),
        catalog={kind.name: catalog.count(kind) for kind in catalog.objects},
        objects=objects,
        removed_objects=removed,
        requests=client.stats.requests - requests_before,
        retries=client.stats.retries - retries_before,
    )


def sync_object(
    client: BraintrustClient,
    destination: Destination,
    ref: ObjectRef,
    options: SyncOptions,
    progress: ProgressReporter | None = None,
) -> ObjectSummary:
    """Sync one object (e.g. one Dagster partition), without touching the catalog tables.

    Raises:
        the object's failure (see `OBJECT_FAILURES`), or NotFoundError when it was deleted upstream.
    """
    return _SyncRun(client, destination, options, progress or NullProgress()).sync_one(ref)


def remove_vanished(
    client: BraintrustClient,
    destination: Destination,
    catalog: Catalog,
    kinds: Iterable[ObjectKind],
    lock_wait_s: float,
) -> list[str]:
    """Remove the objects deleted upstream (within the listed projects and `kinds`) from the destination.

    When the catalog lists every project, the objects of a project deleted upstream go too. An object
    the catalog lacks is removed only once the API says it is gone: one created after the listing, and
    synced meanwhile by another run, is not in it either.

    Returns:
        the removed objects, as `object_type:object_id`.
    """
    states = destination.list_states()
    check_same_source(catalog.listed_project_ids, states)
    selected = {kind.events.object_type for kind in kinds if kind.events is not None}
    live = {(ref.object_type, ref.object_id) for ref in catalog.refs(kinds)}
    project_ids = {project.id for project in catalog.projects}
    unlisted = [
        state
        for state in states
        if (state.object_type, state.object_id) not in live
        and state.object_type in selected
        and (catalog.every_project or state.project_id in project_ids)
    ]
    removed = []
    for state in unlisted:
        ref = ObjectRef(EVENT_STREAMS[state.object_type], state.object_id, state.project_id, state.name)
        try:
            if _exists_upstream(client, ref):
                continue
        except ApiError as error:
            # Kept until a reconcile can tell: one object's check must not cost the run its summary.
            logger.warning(
                "%s %r (%s) is missing from the listing, but the API could not say whether it was deleted "
                "(%s): its rows stay until a later reconcile",
                ref.stream.table,
                ref.name,
                ref.object_id,
                error,
            )
            continue
        with destination.lock(ref, lock_wait_s):
            destination.remove_object(state)
        removed.append(f"{state.object_type.value}:{state.object_id}")
    if catalog.every_project:
        held = {(state.object_type, state.object_id) for state in states}
        _clear_abandoned_reads(client, destination, selected, live | held)
    return removed


def _clear_abandoned_reads(
    client: BraintrustClient,
    destination: Destination,
    object_types: Iterable[ObjectType],
    known: set[tuple[ObjectType, str]],
) -> None:
    """Delete the staged rows of interrupted first reads of objects deleted upstream since.

    Nothing else reaches them: the object is neither listed nor held, so no sync resumes or clears its
    read, and a large first load's parts stayed in the scratch directory for good. A read another run
    may be making (of an object created after the listing) checkpoints every page: one touched within
    `ABANDONED_AFTER_S` is left alone, as is one the API still has.
    """
    for object_type in object_types:
        for directory in sorted((destination.scratch / object_type.value).glob("*")):
            if (object_type, directory.name) in known or not _abandoned(directory):
                continue
            ref = ObjectRef(EVENT_STREAMS[object_type], directory.name, "", directory.name)
            try:
                if _exists_upstream(client, ref):
                    continue
            except ServerUnavailable:
                return  # each would spend its retries: a later reconcile tells
            except ApiError:
                continue
            ObjectStaging(destination.scratch, ref).clear()
            logger.info(
                "removed the staged rows of an interrupted read of %s %s: deleted upstream",
                object_type.value,
                directory.name,
            )


def _abandoned(directory: Path) -> bool:
    """Whether `directory` is an object's scratch no read has touched for `ABANDONED_AFTER_S`."""
    try:
        touched = max(entry.stat().st_mtime for entry in (directory, *directory.iterdir()))
    except OSError:  # not a directory, or gone meanwhile
        return False
    return time.time() - touched > ABANDONED_AFTER_S


def _exists_upstream(client: BraintrustClient, ref: ObjectRef) -> bool:
    """Whether the API has the object (a GET of it answers), rather than a 404."""
    kind = next(kind for kind in EVENT_KINDS if kind.events is ref.stream)
    try:
        client.get_object(kind, ref.object_id)
    except NotFoundError:
        return False
    return True


class _SyncRun:
    def __init__(
        self,
        client: BraintrustClient,
        destination: Destination,
        options: SyncOptions,
        progress: ProgressReporter,
    ) -> None:
        self.client = client
        self.destination = destination
        self.options = options
        self.progress = progress
        self.full_read = options.full or options.reconcile
        self._unavailable_in_a_row = 0
        self._unwritable_in_a_row = 0
        # Why the objects left are not tried, once one met what would fail them all alike: a 401 mid-run
        # (the key revoked or expired after the listing), a redirect, TLS that cannot be set up. Those
        # before it keep their summaries.
        self.stopped: str | None = None
        # What the warehouse held when an object first failed: what the failed objects still hold.
        self._committed: dict[tuple[str, str], SyncState] | None = None
        # What the object being synced fetched so far in this run, and since when: a failed object's
        # summary says it (its seconds too: waiting for another sync's lock, say).
        self._fetched = _Fetched()
        self._object_started = time.monotonic()

    def sync_object(self, ref: ObjectRef) -> ObjectSummary:
        """Sync one object, turning its own failures into its summary's status."""
        self._fetched = _Fetched()
        self._object_started = time.monotonic()
        if self.stopped is not None:
            return self._failed(ref, f"not tried: {self.stopped} for an object before")
        if self._unavailable_in_a_row >= MOST_FAILING_IN_A_ROW:
            return self._failed(ref, "not tried: the API was unavailable for the objects before")
        if self._unwritable_in_a_row >= MOST_FAILING_IN_A_ROW:
            return self._failed(ref, "not tried: the warehouse could not be written for the objects before")
        try:
            summary = self._sync_or_fail(ref)
        except ServerUnavailable as error:
            self._unavailable_in_a_row += 1
            return self._failed(ref, str(error))
        except WarehouseError as error:
            interrupts.raise_if_interrupted(error)
            self._unwritable_in_a_row += 1
            return self._failed(ref, str(error))
        self._unavailable_in_a_row = self._unwritable_in_a_row = 0
        return summary

    def _sync_or_fail(self, ref: ObjectRef) -> ObjectSummary:
        try:
            return self.sync_one(ref)
        except NotFoundError as error:
            # A proxy's or a replica's passing 404 is not a deletion.
            if _exists_upstream(self.client, ref):
                return self._failed(ref, f"{error} (yet the object exists: not taken as deleted)")
            ObjectStaging(self.destination.scratch, ref).clear()
            logger.warning(
                "%s %r (%s) was deleted upstream during the sync: skipped (sync --reconcile removes its "
                "rows)",
                ref.stream.table,
                ref.name,
                ref.object_id,
            )
            skipped = _summary(
                ref, ObjectStatus.SKIPPED, "deleted upstream during the sync", full_read=self.full_read
            )
            return self._holding(ref, skipped)
        except AuthError as error:
            # A 401 would fail every object alike; a 403 not: Braintrust grants access object by object,
            # so a key may read only some of them.
            if error.status == HTTPStatus.UNAUTHORIZED:
                self.stopped = "the API rejected the key"
            return self._failed(ref, str(error))
        except ApiMisdirected as error:
            self.stopped = "the API could not be reached as set"
            return self._failed(ref, str(error))
        except OBJECT_FAILURES as error:
            return self._failed(ref, str(error))

    def _failed(self, ref: ObjectRef, error: str) -> ObjectSummary:
        """A failed object's summary, with the rows, files and watermark it still holds."""
        return self._holding(ref, _summary(ref, ObjectStatus.FAILED, error, full_read=self.full_read))

    def _holding(self, ref: ObjectRef, unsynced: ObjectSummary) -> ObjectSummary:
        """`unsynced`, the summary of an object that failed or was skipped, with the rows, files and
        watermark it still holds: nothing of it was committed, and a scheduler reading zeros would take
        its table for emptied. Its pages and versions are those its reads fetched and staged before it
        stopped."""
        fetched = self._fetched
        unsynced = unsynced.model_copy(
            update={
                "pages": fetched.pages,
                "rows_fetched": fetched.rows,
                "resumed": fetched.resumed,
                "seconds": round(time.monotonic() - self._object_started, 3),
            }
        )
        if self._committed is None:
            try:
                states = self.destination.list_states()
            except Exception:  # any destination's, its catalog's or its object store's
                # The warehouse cannot be read (the failure may say why): the counts stay unknown, and the
                # object's own failure, not this one, is what its summary reports.
                states = []
            self._committed = {(state.object_type, state.object_id): state for state in states}
        held = self._committed.get((ref.object_type, ref.object_id))
        if held is None:  # never synced (or rebuilt): its read was of its whole history
            return unsynced.model_copy(update={"mode": "full"})
        return unsynced.model_copy(update={"version": held.version, "rows": held.rows, "bytes": held.bytes})

    def sync_one(self, ref: ObjectRef) -> ObjectSummary:
        """Sync one object; a resumed read is followed by a read up to the current newest version."""
        with self.destination.lock(ref, self.options.lock_wait_s):
            try:
                summary, held_before = self._sync_locked(ref)
            except (UnreadableFiles, _PositionRefused) as error:
                # Read afresh: files set aside leave the object incomplete (its whole history is read to
                # rebuild it); a position the API no longer takes (a cursor that expired) failed every later
                # sync of it, `--full` too.
                logger.warning("%s", error)
                ObjectStaging(self.destination.scratch, ref).clear()
                self._fetched = _Fetched()  # what the first read staged is gone
                summary, held_before = self._sync_locked(ref)
            if summary.resumed:
                # The resumed read was pinned at the old snapshot: read on to what was written since (only
                # that, after a resumed `--full` too: not its whole history again).
                caught_up, _ = self._sync_locked(ref, after=summary, held_before=held_before)
                summary = _combined(summary, caught_up)
        return summary

    def _sync_locked(
        self, ref: ObjectRef, *, after: ObjectSummary | None = None, held_before: int | None = None
    ) -> tuple[ObjectSummary, int | None]:
        """Read and commit one object; returns its summary and the newest version it held before (None:
        no row).

        `after`: the resumed read of this run that this read catches up after, whose counts the commit's
        state adds to its own (it describes the run); `held_before`: the newest version held before that
        read's commit, which tells the rows it wrote (`_written_by`): the run counted them already.
        """
        clock = time.monotonic()
        catch_up = after is not None
        staging = ObjectStaging(self.destination.scratch, ref)
        previous = self.destination.read_state(ref)
        checkpoint = self._resumable(ref, staging, previous)
        resumed = checkpoint is not None
        self._fetched.resumed |= resumed
        # What the interrupted run fetched: the checkpoint counts the whole read, the summary and the commit's
        # `last_pages` and `last_fetched_rows` this run's requests only.
        fetched_before = (checkpoint.pages, checkpoint.rows_fetched) if checkpoint is not None else (0, 0)
        if checkpoint is None:
            checkpoint = self._start(ref, previous, catch_up=catch_up)
            with staging.writing():
                staging.save(checkpoint)
        if checkpoint.version and not checkpoint.done:
            # The API pages through every version of each row: the count is of versions, not the table's rows.
            task = _Counting(
                # Escaped: a name's line break split a Dagster run's log line, and the terminal's bar.
                self.progress.task(f"{ref.stream.table} · {printable(ref.name)}", counts="versions"),
                self._fetched,
            )
            try:
                checkpoint = extract_object(
                    self.client,
                    ref,
                    staging,
                    checkpoint,
                    task,
                    page_limit=self.options.page_limit,
                    object_rows=previous.rows if previous else 0,
                )
            except RequestError as error:
                saved = staging.load()
                # The one request a resumed read sends that a fresh one would not is its first: the errors
                # by which a server refuses what a request names (a cursor expired, gone, not readable)
                # refuse the position saved. Any other keeps the parts staged for the next run.
                if resumed and saved == checkpoint and error.status in _POSITION_REFUSED:
                    raise _PositionRefused(
                        f"{ref.stream.table} {ref.name!r} ({ref.object_id}): the API refused the position "
                        f"the interrupted read had reached ({error}): reading it afresh"
                    ) from None
                raise
            finally:
                task.close()
        state = SyncState(
            object_type=ref.object_type,
            object_id=ref.object_id,
            name=ref.name,
            project_id=ref.project_id,
            table_name=ref.stream.table,
            version=_newest(checkpoint.watermark or None, previous.version if previous else None),
            last_fetched_rows=checkpoint.rows_fetched
            - fetched_before[1]
            + (after.rows_fetched if after else 0),
            last_pages=checkpoint.pages - fetched_before[0] + (after.pages if after else 0),
            # The destination adds what this commit writes.
            last_bytes_written=after.bytes_written if after else 0,
            synced_at=datetime.now(UTC),
            read_at=checkpoint.read_at,
        )
        if gone := staging.missing(checkpoint):
            raise StateError(
                f"what its read staged was removed while it ran ({gone[0]} is gone from {staging.directory}, "
                "under the --state-dir); nothing was committed, and the next sync reads the object afresh"
            )
        try:
            result = self.destination.merge(
                ref,
                staging.staged(checkpoint),
                state,
                delete_missing_up_to=(
                    checkpoint.existed_bound if self.options.reconcile and checkpoint.cutoff is None else None
                ),
                # After a resumed read's commit: its rows are not updated again in the run's counts.
                run_wrote=_written_by(after, held_before),
            )
        except BaseException as error:
            # A first load takes the staged parts into the tree: one that failed (a full disk) leaves none to
            # resume from, and the next sync reads the object afresh, without warning of damage.
            if staging.missing(checkpoint):
                staging.clear()
            if isinstance(error, OSError | duckdb.IOException):
                # Its scratch under --state-dir, or the tree, could not be written (a full disk): this
                # object's failure, as staging's is; it stopped the whole run, without a summary.
                raise WarehouseError(f"cannot merge the rows read: {one_line_reason(error)}") from None
            raise
        staging.clear()
        held = previous.rows if previous is not None else 0
        if self.options.reconcile and result.deleted * 2 > held >= MOST_DELETED_UNREMARKED:
            # Deleting what its read did not meet, a reconcile trusts the API's end of the history: most of
            # an object gone at once is more often a server's wrong answer than its users' work.
            logger.warning(
                "%s %r (%s): the reconcile deleted %s of its %s rows, which the API no longer lists; if they "
                "were not deleted upstream, `bt-sync sync --full` brings them back",
                ref.stream.table, ref.name, ref.object_id, f"{result.deleted:,}", f"{held:,}",
            )  # fmt: skip
        summary = ObjectSummary(
            object_type=ref.object_type,
            object_id=ref.object_id,
            name=ref.name,
            table=ref.stream.table,
            version=state.version,
            mode="incremental" if checkpoint.cutoff is not None else "full",
            resumed=resumed,
            pages=checkpoint.pages - fetched_before[0],
            rows_fetched=checkpoint.rows_fetched - fetched_before[1],
            inserted=result.inserted,
            updated=result.updated,
            deleted=result.deleted,
            rows=result.rows,
            bytes_written=result.bytes_written,
            bytes=result.bytes,
            seconds=round(time.monotonic() - clock, 3),
        )
        return summary, previous.version if previous is not None else None

    def _start(self, ref: ObjectRef, previous: SyncState | None, *, catch_up: bool) -> Checkpoint:
        started_at = datetime.now(UTC)
        # Taken for empty, an object a reconcile reads has every row it holds deleted.
        deletes = self.options.reconcile and previous is not None and previous.rows > 0
        newest = newest_version(self.client, ref, confirm_empty=deletes)
        read_at = _read_at(self.client.server_time, started_at)
        committed = previous.version if previous else None
        cutoff = self._cutoff(previous, catch_up=catch_up)
        if newest is None or (cutoff is not None and newest <= cutoff):
            # Nothing to read: no row, or none above the cutoff (an object unchanged since a read that met
            # every write up to its watermark). The cutoff says which read it was.
            return Checkpoint(
                version=0,
                watermark=newest or 0,
                cutoff=cutoff,
                started_at=started_at,
                read_at=read_at,
                existed_up_to=_newest(newest, committed),
                done=True,
            )
        return Checkpoint(
            version=snapshot_pin(newest, time.time()),
            watermark=newest,
            cutoff=cutoff,
            started_at=started_at,
            read_at=read_at,
            existed_up_to=_newest(newest, committed),
        )

    def _resumable(
        self, ref: ObjectRef, staging: ObjectStaging, previous: SyncState | None
    ) -> Checkpoint | None:
        """The checkpoint of an interrupted read to resume, or None (leftovers discarded) to start afresh."""
        checkpoint = staging.load()
        if checkpoint is None:
            return None
        # Left behind by a crash after the merge committed, before the staging was cleared.
        already_committed = previous is not None and previous.synced_at >= checkpoint.started_at
        # A read down to a watermark, when more is needed: the whole history (a full sync, or an object
        # with nothing committed: never synced, or to be rebuilt after its files went missing), or the
        # rows above a committed watermark now below that one (the tables restored from a backup).
        committed = None if previous is None else previous.version
        too_narrow = checkpoint.cutoff is not None and (
            self.full_read or committed is None or committed < checkpoint.cutoff
        )
        # A reconcile deletes the rows its read did not meet: a read resumed at the interrupted run's
        # snapshot met rows deleted since, and a read after it that catches up meets only new versions.
        # Only a whole read at a snapshot of this run's converges to a clean reconcile, so it reads afresh.
        if already_committed or too_narrow or self.options.reconcile:
            staging.clear()
            return None
        damage = staging.damage(checkpoint)
        if damage is not None:
            # What it staged comes from the API again: read afresh rather than stop every sync of it.
            logger.warning(
                "%s %r (%s): the interrupted read cannot resume, %s: reading it afresh",
                ref.stream.table, ref.name, ref.object_id, damage,
            )  # fmt: skip
            staging.clear()
            return None
        return checkpoint

    def _cutoff(self, previous: SyncState | None, *, catch_up: bool) -> int | None:
        """The version above which an incremental read keeps rows: the watermark less the overlap window,
        which re-reads the rows that may have shown only after the last read met their neighbours. A
        read that began once they had all shown met them: an object whose last writes had settled then
        is read from its watermark (unchanged, not at all), not again in its last writes every sync."""
        if (self.full_read and not catch_up) or previous is None or previous.version is None:
            return None
        cutoff = previous.version - xact_span_for_seconds(self.options.overlap_s)
        if previous.read_at is not None:
            settled = settled_below(previous.read_at.timestamp(), self.options.overlap_s)
            cutoff = max(cutoff, min(previous.version, settled))
        return max(0, cutoff)


def _read_at(answered: datetime | None, started_at: datetime) -> datetime | None:
    """When a read began, for the next sync's cutoff: the earlier of the API's clock (`answered`, the
    `Date` of its answer for the newest version: this thread's last) and this machine's (`started_at`),
    so that a write shown late is missed only where both run ahead (a proxy's `Date` alone, or this
    machine's clock alone, two hours ahead, made every write look settled). None without a `Date`."""
    return None if answered is None else min(answered, started_at)


def parse_object_kinds(text: str) -> frozenset[str]:
    """Parse `--objects logs,experiments,...` into registry options.

    Raises:
        ConfigError: an unknown or empty selection.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BY_OPTION]
    if unknown or not names:
        meant = [f"for {name} give {_KIND_MEANT[name]}" for name in unknown if name in _KIND_MEANT]
        hint = f" ({'; '.join(meant)})" if meant else ""
        raise ConfigError(
            f"--objects takes a comma-separated subset of {', '.join(BY_OPTION)}; got {text!r}{hint}"
        )
    return frozenset(names)


# What a kind given wrongly most likely meant: an event table's name (`project_logs`), the singular.
_KIND_MEANT = {kind.events.table: kind.option for kind in EVENT_KINDS if kind.events is not None} | {
    kind.option.removesuffix("s"): kind.option for kind in KINDS
}


class _PositionRefused(Exception):
    """The API refused (HTTP 400, 410 or 422) the first request of a read resumed from a checkpoint: the
    warning."""


@dataclass
class _Fetched:
    """Pages and row versions an object's reads fetched and staged in this run, and whether its read
    resumed an interrupted run's."""

    pages: int = 0
    rows: int = 0
    resumed: bool = False


class _Counting:
    """A read's progress task that also adds what it is told to `fetched`."""

    def __init__(self, task: ProgressTask, fetched: _Fetched) -> None:
        self._task = task
        self._fetched = fetched

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        self._fetched.rows += rows
        self._fetched.pages += pages
        self._task.advance(rows=rows, pages=pages)

    def close(self) -> None:
        self._task.close()


def _summary(ref: ObjectRef, status: ObjectStatus, error: str, *, full_read: bool) -> ObjectSummary:
    """The summary of an object that did not sync: the mode says what was asked for."""
    return ObjectSummary(
        object_type=ref.object_type,
        object_id=ref.object_id,
        name=ref.name,
        table=ref.stream.table,
        status=status,
        error=error,
        mode="full" if full_read else "incremental",
    )


def _written_by(resumed: ObjectSummary | None, held_before: int | None) -> VersionRange | None:
    """The versions at which the `resumed` read's commit wrote rows: above the newest held before it,
    up to the newest it committed (None: no resumed read, or one that wrote nothing)."""
    if resumed is None or resumed.version is None:
        return None
    return VersionRange(above=held_before or 0, up_to=resumed.version)


def _combined(first: ObjectSummary, second: ObjectSummary) -> ObjectSummary:
    """One summary for a resumed read and the read that caught up after it."""
    return second.model_copy(
        update={
            "resumed": True,
            "mode": first.mode,
            "pages": first.pages + second.pages,
            "rows_fetched": first.rows_fetched + second.rows_fetched,
            "inserted": first.inserted + second.inserted,
            "updated": first.updated + second.updated,
            "deleted": first.deleted + second.deleted,
            "bytes_written": first.bytes_written + second.bytes_written,
            "seconds": round(first.seconds + second.seconds, 3),
        }
    )


def _newest(*versions: int | None) -> int | None:
    present = [v for v in versions if v is not None]
    return max(present) if present else None
