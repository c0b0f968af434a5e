"""A tree of Parquet files holding the tables, with each object's state committed beside its files.

Layout, under the root (a local directory or an `s3://` prefix):

    <table>/<key>=<object id>/part-000000.parquet    an object's rows, in files of bounded size
    <table>/<key>=<object id>/_sync_state.json       its commit record: state, files, work left to do
    <table>/<key>=__schema__/...                     an empty object, so every table always has a file
    <catalog table>/data.parquet                     one file per catalog table (projects, experiments, ...)
    _bt_sync/<table>/<key>=<object id>/*.parquet     immutable versions of the files, read by the DuckDB views

Plain engines read `<table>/*/*.parquet` with hive partitioning as the
deduplicated table: rows never move between files, and each file is replaced
atomically (a hard link to its new version renamed over it). DuckDB, though,
reads a file's footer and its data through separate opens, so a file replaced
in between fails the query; the DuckDB views therefore read the immutable
versions the commit records name as current when the query started. A replaced
version is deleted an hour later, when no query can still be reading it.

A merge writes its new versions, then commits by replacing the object's
`_sync_state.json` (atomically) with a record naming them, then updates the
tree's files. A crash before the commit leaves the old state (the versions
written are swept later); a crash after it is rolled forward by the next sync
of the object.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from connector.destinations.base import (
    LOCK_WAIT_SETTING,
    MaintainSummary,
    MergeResult,
    ObjectRef,
    StagedParts,
    SyncState,
    VersionRange,
)
from connector.destinations.file_lock import holding
from connector.destinations.filesystem import Root
from connector.destinations.parquet_merge import DataFile, ObjectFiles, is_file_name, merge_files, written_by
from connector.destinations.scratch import scratch_connection
from connector.destinations.spill import scratch_directory
from connector.errors import UnreadableFiles, WarehouseError, WarehouseLocked, first_line, for_want_of_room
from connector.state_file import StateFile, WriteOverran
from schemas.api import ApiObject
from schemas.kinds import CATALOG_TABLES, EVENT_STREAMS, KINDS, PROJECT, ObjectKind
from schemas.tables import (
    CatalogTable,
    Column,
    EventStream,
    json_struct,
    read_parquet,
    sql_identifier,
    sql_literal,
)

STATE_FILE = "_sync_state.json"
CATALOG_FILE = "data.parquet"
VERSIONS = "_bt_sync"
# The directories a root holds: each table's and the versions'.
TREE_DIRECTORIES = frozenset(
    {VERSIONS, *(stream.table for stream in EVENT_STREAMS.values()), *(t.table for t in CATALOG_TABLES)}
)
# The directory of the empty object that keeps every table's glob matching at least one file.
SCHEMA_OBJECT = "__schema__"
SCHEMA_FILE = "part-000000.parquet"
# How long a replaced version (or a deleted object's directory) stays for queries that listed it.
RETIRED_GRACE = timedelta(hours=1)
# How long the versions a failed merge wrote stay once another merge of the object fails: past it, no query
# that listed them is taken to run still.
ABANDONED_GRACE = timedelta(minutes=10)
# What a data file that cannot be read is renamed with: out of the object's files, kept for a look.
_SET_ASIDE = ".unreadable"
# A commit becomes current this long after it starts writing its record, which must be readable by
# then: a query that started in between would otherwise read the old record for one table's view and
# the new one for another's (the rows of one commit, the state of the next). A write that overran its
# moment (a slow disk, a loaded machine) is done again with the next lead; past the last, at once.
COMMIT_LEADS = (timedelta(milliseconds=20), timedelta(milliseconds=200), timedelta(seconds=2))
# A commit record naming a time further ahead of the clock than this was written on a clock set ahead.
CLOCK_AHEAD_WARNED = timedelta(minutes=1)
# A catalog write takes well under a second: waiting this long means another process is stuck.
CATALOG_LOCK_WAIT_S = 300.0
_UNREADABLE_STATE = "delete the object's directory to sync it afresh"

logger = logging.getLogger("bt_sync")


class Retired(BaseModel):
    """A version no longer current: from when it was current (`since`, None in older records) until `at`."""

    version: str
    at: datetime
    since: datetime | None = None


class SupersededState(BaseModel):
    """A state no longer current: from when it was committed (`since`, None in older records) until `at`."""

    state: SyncState
    at: datetime
    since: datetime | None = None


class ObjectRecord(StateFile):
    """An object's commit record: its state, its files, and the work a crash may have left.

    Args:
        state: the committed state.
        since: when `state` was committed; None in records written before bt-sync kept it.
        files: the object's data files and their current versions.
        open_file: the file new rows go to next.
        unpublished: files whose copy in the tree lags their committed version.
        retired: versions replaced, deleted once no query can still be reading them.
        superseded: the states before `state`, kept as long as `retired` versions, for queries that
            started before they were replaced (the `sync_state` view).
        removed_at: when the object was deleted upstream and its rows removed.
    """

    FORMAT = 1

    state: SyncState
    since: datetime | None = None
    files: list[DataFile] = Field(default_factory=list)
    open_file: str | None = None
    unpublished: list[str] = Field(default_factory=list)
    retired: list[Retired] = Field(default_factory=list)
    superseded: list[SupersededState] = Field(default_factory=list)
    removed_at: datetime | None = None


class ParquetTree:
    """The tables as a tree of Parquet files (see the module docstring).

    Args:
        root: where the tree is: a local directory or an `s3://bucket/prefix` URI.
        state_dir: this worker's scratch directory (staging, and locks for a remote root).
    """

    def __init__(self, root: str, state_dir: Path) -> None:
        self.root = Root(root)
        self._state_dir = state_dir
        self._key = hashlib.sha256(self.root.uri().encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        """A short stable identity of the tree."""
        return self._key

    @property
    def description(self) -> str:
        """Where the tree is, without credentials."""
        return self.root.display

    @property
    def scratch(self) -> Path:
        """Where syncs into this tree stage their reads."""
        return self._state_dir / "staging" / self._key

    def prepare(self) -> None:
        """Write the empty objects and catalog files that keep every table readable before data arrives.

        Raises:
            WarehouseError: the root holds another program's files where bt-sync's catalog files go.
        """
        check_tree_is_ours(self.root)
        with scratch_connection() as con:
            for stream in EVENT_STREAMS.values():
                empty = _empty_parquet(con, stream.file_columns)
                for directory in (_directory(stream, SCHEMA_OBJECT), _versions(stream, SCHEMA_OBJECT)):
                    self._write_if_changed(f"{directory}/{SCHEMA_FILE}", empty)
                self._write_if_changed(schema_record(stream), b"{}")
            for table in CATALOG_TABLES:
                if not self.root.exists(catalog_file(table)):
                    self.root.write(catalog_file(table), _empty_parquet(con, table.columns))
        self._purge_removed_objects()

    def prepared(self) -> bool:
        """Whether a sync prepared the tree: it wrote the tables' empty files (the first's is looked for)."""
        return self.root.exists(schema_record(next(iter(EVENT_STREAMS.values()))))

    def lost_catalog(self) -> list[ObjectKind]:
        """The kinds whose catalog file is missing or no Parquet file, in a tree a sync prepared before.

        Written empty by `prepare`, a deleted file made its table empty for good where the syncs that
        followed did not list its kind (`--objects logs`), and `status` called its objects deleted
        upstream; a damaged one failed every query until a sync listing its kind.
        """
        if not self.prepared():
            return []  # its first sync writes every file
        # A missing file's footer cannot be read either.
        return [kind for kind in KINDS if why_unreadable(self.root, catalog_file(kind.catalog), whole=False)]

    def _write_if_changed(self, relative: str, data: bytes) -> None:
        # Every sync prepares the tree: rewriting identical files would only cost time.
        try:
            current = self.root.read(relative)
        except WarehouseError:
            current = None  # unreadable: the write fixes it, or says why it cannot
        if current != data:
            self.root.write(relative, data)

    @contextmanager
    def lock(self, ref: ObjectRef, wait_s: float) -> Iterator[None]:
        """Hold the object against other syncs of it, waiting up to `wait_s`."""
        with self._held(
            f"{_versions(ref.stream, ref.object_id)}.lock",
            f"{ref.stream.table}/{ref.object_id}.lock",
            wait_s,
            f"syncing {ref.stream.table} {ref.name!r} ({ref.object_id})",
            LOCK_WAIT_SETTING,
        ):
            yield

    @contextmanager
    def _held(
        self, in_root: str, in_state_dir: str, wait_s: float, holder: str, wait_setting: str = ""
    ) -> Iterator[None]:
        """A lock file beside the tables, or in this machine's scratch when the tables are remote (see
        `holding`)."""
        if self.root.is_local:
            path = self.root.local(in_root)
        else:
            path = self._state_dir / "locks" / self._key / in_state_dir
        with holding(path, wait_s, holder, wait_setting=wait_setting):
            yield

    def read_state(self, ref: ObjectRef) -> SyncState | None:
        """The object's committed state, after finishing what a crash left (the caller holds the lock).

        None, as for an object never synced, when files its record names are gone (deleted by hand,
        a restore that missed some): the sync then reads its whole history again, and its merge
        rebuilds it (`merge`), instead of failing on every run.
        """
        record = self._recovered(ref.stream, ref.object_id)
        if record is None or record.removed_at is not None:
            return None
        if not self._intact(ref.stream, ref.object_id, record):
            logger.warning(
                "%s %r (%s): files its last sync committed are missing or changed; reading its whole "
                "history to rebuild it",
                ref.stream.table,
                ref.name,
                ref.object_id,
            )
            self._set_aside_changed(ref.stream, ref.object_id, record)
            return None
        self._republish_missing(ref.stream, ref.object_id, record)
        return record.state

    def _republish_missing(self, stream: EventStream, object_id: str, record: ObjectRecord) -> None:
        """Put back the tree's copies of current versions that were deleted or replaced (other engines read
        the tree; a copy restored from an older backup stayed, `--full` too, every check green)."""
        if not self.root.is_local:
            return  # the tree's copy is the only one: `_intact` found them all
        where = self._files(stream, object_id)
        # A copy in the tree is a link to its version: another file there is no copy of it.
        stale = sorted(
            f.name
            for f in record.files
            if not _same_file(
                self.root.local(f"{where.directory}/{f.name}"), self.root.local(where.version_path(f.version))
            )
        )
        if not stale:
            return
        versions = {f.name: f.version for f in record.files}
        # A file of its version's size (a warehouse copied without its links, `cp -r`) is linked again
        # without a warning.
        differing = [
            name
            for name in stale
            if _size(self.root.local(f"{where.directory}/{name}"))
            != _size(self.root.local(where.version_path(versions[name])))
        ]
        if differing:
            logger.warning(
                "%s/%s: putting back deleted or replaced files %s", stream.table, object_id, differing
            )
        self._publish(stream, object_id, record.model_copy(update={"unpublished": stale}))

    def list_states(self) -> list[SyncState]:
        """Every synced object's committed state (read only: objects may be syncing meanwhile)."""
        return [record.state for _, record in self._records() if record.removed_at is None]

    def merge(
        self,
        ref: ObjectRef,
        staged: StagedParts,
        state: SyncState,
        *,
        delete_missing_up_to: int | None,
        run_wrote: VersionRange | None = None,
    ) -> MergeResult:
        """Merge `staged` into the object's files and commit them with `state` (the caller holds the lock)."""
        record = self._recovered(ref.stream, ref.object_id)
        # An object missing some of its files is rebuilt from what the sync read: its whole history.
        live = (
            record is not None
            and record.removed_at is None
            and self._intact(ref.stream, ref.object_id, record)
        )
        previous = {f.name: f for f in record.files} if record is not None and live else {}
        # Names every version this merge writes: those no record names are deleted if it fails.
        token = uuid.uuid4().hex[:8]
        try:
            output = merge_files(
                self._files(ref.stream, ref.object_id),
                ref.stream,
                list(previous.values()),
                record.open_file if record is not None and live else None,
                staged,
                delete_missing_up_to=delete_missing_up_to,
                run_wrote=run_wrote,
                scratch=self.scratch / "merge" / ref.object_id,
                token=token,
            )
            # A rebuilt object's old files: retired, and taken out of the tree unless rewritten.
            stale = record.files if record is not None and not live else []
            written = {f.name for f in output.files}
            changed = set(output.changed)
            rows, size = sum(f.rows for f in output.files), sum(f.bytes for f in output.files)
            counted = state.model_copy(
                update={
                    "rows": rows,
                    "files": len(output.files),
                    "bytes": size,
                    "last_bytes_written": state.last_bytes_written + output.bytes_written,
                }
            )

            def committed_at(now: datetime) -> ObjectRecord:
                # Named in the record as when the new versions became current and the old ones stopped
                # being so: a query reads the files current at its own start (`views`).
                retired = [_retired(previous[name], now) for name in output.changed if name in previous]
                retired += [_retired(f, now) for f in stale]
                since, superseded = _state_history(record, now, files_changed=bool(changed))
                return ObjectRecord(
                    since=since,
                    state=counted,
                    files=[
                        f.model_copy(update={"since": now}) if f.name in changed else f for f in output.files
                    ],
                    open_file=output.open_file,
                    unpublished=[*output.changed, *(f.name for f in stale if f.name not in written)],
                    retired=[*(record.retired if record is not None else []), *retired],
                    superseded=superseded,
                )

            # Once the record names the new versions, the merge is committed; the rest can be redone.
            committed = self._commit(ref.stream, ref.object_id, record, committed_at)
        except BaseException as error:
            self._drop_uncommitted(ref, every=for_want_of_room(error), token=token)
            # A read that failed may have met a file damaged on disk.
            if isinstance(error, duckdb.Error | pa.ArrowInvalid) and (
                unreadable := self._set_aside_unreadable(self._files(ref.stream, ref.object_id), previous)
            ):
                raise UnreadableFiles(
                    f"{ref.stream.table} {ref.name!r} ({ref.object_id}): {'; '.join(unreadable)}: set aside "
                    f"as {_SET_ASIDE}, for its whole history to be read again"
                ) from error
            if isinstance(error, duckdb.OutOfMemoryException):
                # The object's failure, not the run's: the others are synced, and the summary printed.
                raise WarehouseError(
                    f"cannot merge the rows read into {ref.stream.table} {ref.name!r} ({ref.object_id}): "
                    f"{first_line(error)}; they stay staged for the next sync"
                ) from error
            raise
        self._publish(ref.stream, ref.object_id, committed)
        return MergeResult(
            inserted=output.inserted,
            updated=output.updated,
            deleted=output.deleted,
            rows=rows,
            bytes_written=output.bytes_written,
            bytes=size,
        )

    def _commit(
        self,
        stream: EventStream,
        object_id: str,
        previous: ObjectRecord | None,
        record_at: Callable[[datetime], ObjectRecord],
    ) -> ObjectRecord:
        """Write the record of a commit current at a moment just ahead (`COMMIT_LEADS`), once it is.

        The record must be readable before that moment: a write that took longer (a slow disk) is
        done again for a moment further ahead, and once every lead was overrun, at once.
        """
        latest = _latest_named(previous)
        if latest is not None and (ahead := latest - datetime.now(UTC)) > CLOCK_AHEAD_WARNED:
            # Commits stay in order: this one, too, becomes current only after that time.
            logger.warning(
                "%s %s: an earlier sync made its commits current at %s UTC, %s ahead of this machine's "
                "clock (it ran on a clock set ahead, or this one was set back): queries read the object as "
                "it was before them until then, this sync's rows too. Nothing is lost (`bt-sync status` "
                "counts the rows held)",
                stream.table,
                object_id,
                latest.strftime("%Y-%m-%d %H:%M:%S"),
                _duration(ahead),
            )
        attempts = [(lead, True) for lead in COMMIT_LEADS] + [(COMMIT_LEADS[0], False)]
        for lead, on_time in attempts:
            moment = _commit_time(previous, lead)
            record = record_at(moment)
            if moment not in (record.since, record.removed_at):
                # Only the watermark and the time of the sync changed, in place: nothing to straddle.
                self._write_record(stream, object_id, record)
                return record
            try:
                self._write_record(stream, object_id, record, before=moment if on_time else None)
            except WriteOverran:
                continue
            _wait_until_current(moment, lead)
            return record
        raise AssertionError("unreachable: the last attempt writes without a deadline")

    def _intact(self, stream: EventStream, object_id: str, record: ObjectRecord) -> bool:
        """Whether every file the record names as current still exists, on a local disk at its size.

        A tree file is a link to its version: a backup copied over it in place (`cp`, `rsync --inplace`)
        rewrote the version too, and the rows it lacked were lost for good, every check green.
        """
        where = self._files(stream, object_id)
        if self.root.is_local:
            return all(_size(self.root.local(where.version_path(f.version))) == f.bytes for f in record.files)
        # Versions are deleted once copied into the tree.
        present, wanted = set(self.root.list(where.directory)), {f.name for f in record.files}
        return wanted <= present

    def _set_aside_changed(self, stream: EventStream, object_id: str, record: ObjectRecord) -> None:
        """Rename each current version of another size than committed (`<name>.unreadable`), as its object
        is rebuilt: a query of the table reads the footer of every version there, and one cut short
        failed them all, the rebuilt object's too, until `maintain` deleted it an hour later."""
        if not self.root.is_local:
            return  # no versions there: the tree's copies, which the rebuild replaces
        where = self._files(stream, object_id)
        for data_file in record.files:
            version = where.version_path(data_file.version)
            if _size(self.root.local(version)) not in (None, data_file.bytes):
                self.root.rename(version, f"{version}{_SET_ASIDE}")

    def _set_aside_unreadable(self, where: ObjectFiles, files: dict[str, DataFile]) -> list[str]:
        """Rename each of `files` that cannot be read whole (`<name>.unreadable`), so that the object is
        no longer intact and its next read rebuilds it; say what each one's reader said.

        Only after a merge failed reading them: every row of every file is decoded.
        """
        unreadable = []
        for data_file in files.values():
            path = where.current_path(data_file)
            if (reason := why_unreadable(self.root, path, whole=True)) is not None:
                self.root.rename(path, f"{path}{_SET_ASIDE}")
                unreadable.append(f"{self.root.uri(path)} is unreadable ({reason})")
        return unreadable

    def _drop_uncommitted(self, ref: ObjectRef, *, every: bool, token: str) -> None:
        """Delete, once a merge (given `token`) failed, the versions of the object no record names: `every`
        one when it failed for want of room (the rerun needs the room), else those earlier merges wrote
        more than `ABANDONED_GRACE` ago.

        A query lists every version of a table when it is planned, keeps those the records name, and
        opens each listed one as it runs: a version deleted in between failed it ("Cannot open file"), so
        the merge's own stay (a scheduler's SIGTERM leaves them, as a kill does). Those of earlier failed
        attempts go: left an hour (`_collect_garbage`), a merge failing at each retry kept a copy of every
        file it rewrote for each.
        """
        abandoned_before = None if every else datetime.now(UTC) - ABANDONED_GRACE
        with suppress(WarehouseError, OSError):
            record = self._load(ref.stream, ref.object_id)
            self._delete_unnamed(self._files(ref.stream, ref.object_id), record, abandoned_before, token)

    def _delete_unnamed(
        self,
        where: ObjectFiles,
        record: ObjectRecord | None,
        before: datetime | None,
        sparing: str | None = None,
    ) -> None:
        """Delete the versions of an object its record names neither current nor retired (written by merges
        that never committed): a file cut short (`.tmp`, which no query lists) at once, the others written
        before `before` (every one, if None), but for those of the merge given `sparing`."""
        named: set[str] = set()
        if record is not None:
            named = {f.version for f in record.files} | {r.version for r in record.retired}
        for version in self.root.list(where.versions):
            path = where.version_path(version)
            if version in named:
                continue
            if (
                before is None
                or version.endswith(".tmp")
                or (
                    (sparing is None or not written_by(version, sparing))
                    and self.root.modified(path) < before
                )
            ):
                self.root.delete(path)

    def remove_object(self, state: SyncState) -> None:
        """Take a deleted object's rows out of the tables (the caller holds the object's lock)."""
        stream = EVENT_STREAMS[state.object_type]
        record = self._recovered(stream, state.object_id)
        if record is None or record.removed_at is not None:
            return

        def removed_at(now: datetime) -> ObjectRecord:
            return record.model_copy(
                update={
                    "files": [],
                    "open_file": None,
                    "retired": [*record.retired, *(_retired(f, now) for f in record.files)],
                    "removed_at": now,
                }
            )

        self._commit(stream, state.object_id, record, removed_at)
        for data_file in record.files:
            self.root.delete(f"{_directory(stream, state.object_id)}/{data_file.name}")

    def write_catalog(
        self, kind: ObjectKind, objects: Sequence[ApiObject], project_ids: Sequence[str] | None
    ) -> None:
        """Replace the catalog table's file: all rows, or those of `project_ids` (other projects' stay)."""
        table = kind.catalog
        path = catalog_file(table)
        # Two syncs of different projects each keep the other projects' rows: the second to write must
        # read the first one's file, or its project's rows are lost until that project's next sync.
        with (
            self._held(
                f"{VERSIONS}/{table.table}.lock",
                f"{table.table}.lock",
                CATALOG_LOCK_WAIT_S,
                f"writing {path}",
            ),
            scratch_connection() as con,
            scratch_directory() as directory,
        ):
            raw = pa.array([o.listed_json() for o in objects], pa.string())
            con.register("catalog_rows", pa.table({"raw": raw}))
            query = catalog_select(table)
            kept = self.root.read(path) if project_ids is not None else None
            if kept:
                kept_file = directory / "kept.parquet"
                kept_file.write_bytes(kept)
                owner = "id" if kind is PROJECT else "project_id"
                con.register("replaced", pa.table({"id": pa.array(list(project_ids or []), pa.string())}))
                others = (
                    f"SELECT * FROM {read_parquet(sql_literal(str(kept_file)))} "
                    f"WHERE {owner} NOT IN (SELECT id FROM replaced)"
                )
                query += f" UNION ALL BY NAME {others}"
            self.root.write(path, _parquet_bytes(con, query))

    def maintain(self, retain: timedelta) -> MaintainSummary:
        """Finish interrupted commits and delete retired versions past their grace, for every object.

        Each sync does this for the objects it syncs; this reaches the others. The grace is fixed
        (queries may still read a replaced version), so `retain` changes nothing here.
        """
        deleted: dict[str, int] = {}  # path -> bytes
        tables: set[str] = set()
        for stream, record in self._records():
            tables.add(stream.table)
            ref = ObjectRef(stream, record.state.object_id, record.state.project_id, record.state.name)
            versions = _versions(stream, record.state.object_id)
            try:
                with self.lock(ref, 0):
                    before = self.root.sizes(versions)
                    self._recovered(stream, record.state.object_id)
                    after = set(self.root.list(versions))
                    deleted |= {
                        f"{versions}/{name}": size for name, size in before.items() if name not in after
                    }
            except WarehouseLocked:
                continue  # being synced, which collects its garbage itself
        return MaintainSummary(
            tables=len(tables),  # the event tables holding an object: the others have no versions
            files_deleted=len(deleted),
            bytes_deleted=sum(deleted.values()),
        )

    def _files(self, stream: EventStream, object_id: str) -> ObjectFiles:
        return ObjectFiles(self.root, _directory(stream, object_id), _versions(stream, object_id))

    def _load(self, stream: EventStream, object_id: str) -> ObjectRecord | None:
        directory = _directory(stream, object_id)
        data = self.root.read(f"{directory}/{STATE_FILE}")
        if data is None:
            return None
        return ObjectRecord.loads(data, self.root.shown(f"{directory}/{STATE_FILE}"), _UNREADABLE_STATE)

    def _write_record(
        self, stream: EventStream, object_id: str, record: ObjectRecord, *, before: datetime | None = None
    ) -> None:
        self.root.write(f"{_directory(stream, object_id)}/{STATE_FILE}", record.dumps(), before=before)

    def _recovered(self, stream: EventStream, object_id: str) -> ObjectRecord | None:
        """The object's record after finishing a commit a crash interrupted and deleting what no query needs.

        Only for the holder of the object's lock: it writes and deletes the object's files.
        """
        record = self._load(stream, object_id)
        if record is None:
            return None
        if record.unpublished:
            record = self._publish(stream, object_id, record)
        return self._collect_garbage(stream, object_id, record)

    def _publish(self, stream: EventStream, object_id: str, record: ObjectRecord) -> ObjectRecord:
        """Bring the tree's files up to their committed versions."""
        where = self._files(stream, object_id)
        versions = {f.name: f.version for f in record.files}
        for name in record.unpublished:
            if name in versions:
                self._replace_with_version(where, name, versions[name])
            else:
                self.root.delete(f"{where.directory}/{name}")  # the merge left no row in it
        published = record.model_copy(update={"unpublished": []})
        self._write_record(stream, object_id, published)
        if not self.root.is_local:
            # Only the DuckDB views read versions, and on object storage they read the tree itself.
            for name in record.unpublished:
                if name in versions:
                    self.root.delete(where.version_path(versions[name]))
        return published

    def _replace_with_version(self, where: ObjectFiles, name: str, version: str) -> None:
        target = f"{where.directory}/{name}"
        if self.root.is_local:
            source, destination = self.root.local(where.version_path(version)), self.root.local(target)
            if destination.exists() and destination.samefile(source):
                return  # published before a crash: a rename between two links of one file would do nothing
            # In the object's directory, which exists: the record naming this version was written there first.
            temporary = destination.with_name(f".{name}.tmp")
            temporary.unlink(missing_ok=True)
            temporary.hardlink_to(source)
            temporary.replace(destination)
        else:
            self.root.copy(where.version_path(version), target)

    def _collect_garbage(self, stream: EventStream, object_id: str, record: ObjectRecord) -> ObjectRecord:
        """Delete retired versions past their grace, versions of crashed merges, a removed object's files."""
        where = self._files(stream, object_id)
        oldest_kept = datetime.now(UTC) - RETIRED_GRACE
        if record.removed_at is not None and record.removed_at < oldest_kept:
            self.root.delete_tree(where.versions)
            self.root.delete_tree(where.directory)
            return record
        expired = [r for r in record.retired if r.at < oldest_kept]
        for retired in expired:
            self.root.delete(where.version_path(retired.version))
        superseded = [s for s in record.superseded if s.at >= oldest_kept]
        for name in _leftovers(self.root.list(where.directory), record):
            self.root.delete(f"{where.directory}/{name}")
        self._delete_unnamed(where, record, oldest_kept)
        if not expired and len(superseded) == len(record.superseded):
            return record
        remaining = [r for r in record.retired if r.at >= oldest_kept]
        collected = record.model_copy(update={"retired": remaining, "superseded": superseded})
        self._write_record(stream, object_id, collected)
        return collected

    def _purge_removed_objects(self) -> None:
        """Finish the removal of objects (unless being synced): delete their directories once past the
        grace period, and before then the data files a removal killed after its commit left in the tree.
        """
        oldest_kept = datetime.now(UTC) - RETIRED_GRACE
        for stream, record in self._records():
            if record.removed_at is None:
                continue
            directory = _directory(stream, record.state.object_id)
            if record.removed_at >= oldest_kept and not _leftovers(self.root.list(directory), record):
                continue
            ref = ObjectRef(stream, record.state.object_id, record.state.project_id, record.state.name)
            try:
                with self.lock(ref, 0):
                    self._recovered(stream, record.state.object_id)
            except WarehouseLocked:
                continue

    def _records(self) -> Iterator[tuple[EventStream, ObjectRecord]]:
        for stream in EVENT_STREAMS.values():
            for entry in self.root.list(stream.table):
                key, _, object_id = entry.partition("=")
                if key != stream.key_column or object_id == SCHEMA_OBJECT:
                    continue
                record = self._load(stream, object_id)
                # A record in another object's directory is a copy (`cp -r x=id x=id.bak`): not an object.
                if record is not None and record.state.object_id == object_id:
                    yield stream, record


def _leftovers(names: Sequence[str], record: ObjectRecord) -> list[str]:
    """The names, among those in an object's directory, of files no query may read: what a write killed
    before its rename left, and data files its record does not name (a removal commits before it
    deletes the object's files, and once committed it is never tried again)."""
    named = {data_file.name for data_file in record.files}
    return [
        name
        for name in names
        if (name.startswith(".") and name.endswith(".tmp")) or (is_file_name(name) and name not in named)
    ]


def _commit_time(record: ObjectRecord | None, lead: timedelta) -> datetime:
    """The time a commit after `record` makes its versions current: `lead` from now, unless the clock
    was set back.

    Later than every time the record names: a version made current before the one it replaces
    stopped being so would be read together with the version that one replaced.
    """
    now = datetime.now(UTC) + lead
    latest = _latest_named(record)
    return now if latest is None else max(now, latest + timedelta(microseconds=1))


def _latest_named(record: ObjectRecord | None) -> datetime | None:
    """The latest time `record` names (a version made current or retired, a state superseded)."""
    if record is None:
        return None
    named = [f.since for f in record.files] + [t for r in record.retired for t in (r.since, r.at)]
    named += [record.since, record.removed_at, *(s.at for s in record.superseded)]
    return max((t for t in named if t is not None), default=None)


def _wait_until_current(moment: datetime, lead: timedelta) -> None:
    """Return once a commit made current at `moment`, `lead` ahead of its start, is: a query started after
    the sync reads it.

    At most `lead`: after a clock set back, a commit's moment can be far ahead of the clock.
    """
    delay = min(moment - datetime.now(UTC), lead).total_seconds()
    if delay > 0:
        time.sleep(delay)


def _state_history(
    record: ObjectRecord | None, at: datetime, *, files_changed: bool
) -> tuple[datetime | None, list[SupersededState]]:
    """When a commit `at` after `record` makes its state current, and the states it supersedes.

    Only a commit that changes files supersedes the state (a removed object's, as of its removal).
    One that changes nothing but the watermark and the time of the sync replaces the state in place,
    keeping its `since`, or the record would grow by every sync of the hour, and every query read it
    all: a query then sees the newer watermark over the same rows.
    """
    if record is None:
        return at, []
    if not files_changed and record.removed_at is None:
        return record.since, record.superseded
    replaced = SupersededState(state=record.state, since=record.since, at=record.removed_at or at)
    return at, [*record.superseded, replaced]


def why_unreadable(root: Root, path: str, *, whole: bool) -> str | None:
    """What pyarrow's reader says of the Parquet file at `path` (relative to `root`): of its footer, or
    (`whole`) of every row too; None when it reads."""
    try:
        with root.fs.open_input_file(root.full(path)) as handle:
            if not whole:
                pq.read_metadata(handle)
                return None
            for _ in pq.ParquetFile(handle).iter_batches():
                pass
    except (OSError, pa.ArrowException) as error:
        return first_line(error)
    return None


def _retired(data_file: DataFile, at: datetime) -> Retired:
    """The entry of a version that stops being current `at`."""
    return Retired(version=data_file.version, at=at, since=data_file.since)


def _directory(stream: EventStream, object_id: str) -> str:
    return f"{stream.table}/{stream.key_column}={object_id}"


def schema_record(stream: EventStream) -> str:
    """The path, from the root, of the record of an event table's schema object, which every sync writes
    (`prepare`): `{}`, naming no object."""
    return f"{_directory(stream, SCHEMA_OBJECT)}/{STATE_FILE}"


def catalog_file(table: CatalogTable) -> str:
    """The path, from the root, of a catalog table's file, which every sync writes (`prepare`)."""
    return f"{table.table}/{CATALOG_FILE}"


def _versions(stream: EventStream, object_id: str) -> str:
    return f"{VERSIONS}/{_directory(stream, object_id)}"


def _holds_columns(root: Root, relative: str, table: CatalogTable) -> bool:
    """Whether the file at `relative` is a Parquet file with the catalog `table`'s columns."""
    try:
        names: list[str] = pq.read_schema(root.full(relative), filesystem=root.fs).names
    except (OSError, pa.ArrowException):
        return False
    return names == [column.name for column in table.columns]


def _size(path: Path) -> int | None:
    """The file's size in bytes; None where it is missing."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def _same_file(one: Path, other: Path) -> bool:
    """Whether both paths are links to one file (False where either is missing)."""
    try:
        return one.samefile(other)
    except OSError:
        return False


def check_tree_is_ours(root: Root) -> None:
    """Refuse a root holding files where bt-sync's catalog tables go that bt-sync did not write: Parquet
    files with other columns, or no Parquet at all. A root holding `_bt_sync` is taken as bt-sync's
    without reading them (it writes that directory first); one without it may still be (a restore that
    left it out, which the syncs rebuild).

    A directory of another program's exports: a sync wrote bt-sync's tree among its files, then failed
    binding the views to such a file, blaming the DuckDB file and the disk, run after run.

    Raises:
        WarehouseError: it holds some.
    """
    if VERSIONS in root.list(""):
        return
    foreign = [
        relative
        for table in CATALOG_TABLES
        if root.exists(relative := catalog_file(table)) and not _holds_columns(root, relative, table)
    ]
    if foreign:
        raise WarehouseError(
            f"the tables' directory {root.display} holds {', '.join(foreign)}, which bt-sync did not write "
            "(not its columns, or not Parquet it can read; it writes them beside its _bt_sync directory): "
            "give --parquet a directory of its own, a new one or one bt-sync synced into (a file of its "
            "own that is damaged: delete it, and the next sync writes it again)"
        )


def _empty_parquet(con: duckdb.DuckDBPyConnection, columns: Sequence[Column]) -> bytes:
    """A Parquet file with no rows and these columns."""
    nulls = ", ".join(f"NULL::{c.duckdb_type} AS {sql_identifier(c.name)}" for c in columns)
    return _parquet_bytes(con, f"SELECT {nulls} LIMIT 0")


def _parquet_bytes(con: duckdb.DuckDBPyConnection, query: str) -> bytes:
    """The result of `query` as a Parquet file, written by DuckDB as it writes the data files.

    Not through Arrow: DuckDB hands a BOOLEAN to Arrow as an 8-bit integer when the conversion keeps
    JSON columns JSON, and the tables' column types would then differ from file to file.
    """
    with scratch_directory() as directory:
        path = directory / "table.parquet"
        con.execute(f"COPY ({query}) TO {sql_literal(str(path))} (FORMAT parquet, COMPRESSION zstd)")
        return path.read_bytes()


def catalog_select(table: CatalogTable) -> str:
    """A DuckDB query typing the API objects in `catalog_rows` (a `raw` JSON column) as `table`'s rows."""
    typed = table.typed_columns
    selected = []
    for column in typed:
        value = f"s.{sql_identifier(column.name)}"
        if column.duckdb_type == "TIMESTAMPTZ":
            value = f"try_cast({value} AS TIMESTAMPTZ)"
        elif column.duckdb_type == "UBIGINT":
            value = f"try_cast({value} AS UBIGINT)"
        selected.append(f"{value} AS {sql_identifier(column.name)}")
    struct = sql_literal(json_struct(typed))
    return (
        f"SELECT {', '.join(selected)}, raw::JSON AS _raw, now() AS _synced_at "
        f"FROM (SELECT raw, json_transform(raw, {struct}) AS s FROM catalog_rows)"
    )


def _duration(span: timedelta) -> str:
    """A span of time in whole minutes (or hours and minutes), for a message."""
    minutes = round(span.total_seconds() / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
