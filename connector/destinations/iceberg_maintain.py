"""`bt-sync maintain` for Iceberg: compact small files, expire old snapshots, delete files nothing needs.

Incremental syncs add small files (each sync's new rows in each day it
touches); compaction merges each object's small files per day partition into
files of the object's size, in order of `created`, in one commit validated
like a sync's (a sync of the same object meanwhile makes it plan again).
Expiring snapshots drops old versions from the metadata; the data and
manifest files only they used, and files of commits that never landed (a
killed worker), are then deleted once older than the retention, and never
before `UNREFERENCED_GRACE`: the files of a sync or a compaction in flight,
written and not committed yet, are referenced by nothing either.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow.fs as pafs
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from connector.destinations.base import MaintainSummary
from connector.destinations.file_size import file_target_rows
from connector.destinations.iceberg_catalog import (
    STATE_PROPERTY,
    commit_object_files,
    object_files,
    object_state,
    planned_files,
    replace_rows,
    retry_conflicts,
)
from schemas.kinds import EVENT_STREAMS
from schemas.tables import EventStream

# A data file is small when it holds under this share of its object's file size.
SMALL_SHARE = 0.5
# The youngest unreferenced file maintain deletes, whatever the retention: a sync or a compaction
# commits its files at the end of the same merge that wrote them, well within the hour.
UNREFERENCED_GRACE = timedelta(hours=1)
_BY_TABLE = {stream.table: stream for stream in EVENT_STREAMS.values()}
_COUNTS = ("snapshots_expired", "files_compacted", "files_written", "files_deleted", "bytes_deleted")


class TablesNotMaintained(Exception):
    """Tables whose maintenance failed, each with its error; every other table was maintained (`done`)."""

    def __init__(self, failed: dict[str, Exception], done: MaintainSummary) -> None:
        super().__init__(f"{len(failed)} tables not maintained")
        self.failed = failed
        self.done = done


def maintain_tables(names: Sequence[str], retain: timedelta, load: Callable[[str], Table]) -> MaintainSummary:
    """Maintain every table (see the module docstring).

    Args:
        names: the tables.
        retain: keep snapshots, and unreferenced files, younger than this (files at least
            `UNREFERENCED_GRACE`).
        load: loads a table afresh (again after a conflicting commit).

    Raises:
        TablesNotMaintained: some tables failed, once every other was maintained (one table's failure,
            a ref or a file another engine made, stopped the maintenance of every table after it).
    """
    now = datetime.now(UTC)
    files_before = now - max(retain, UNREFERENCED_GRACE)
    done: list[MaintainSummary] = []
    failed: dict[str, Exception] = {}
    for name in names:
        try:
            done.append(_maintain(name, now - retain, files_before, load))
        except Exception as error:  # pyiceberg's, the catalog's or the store's: this table's alone
            failed[name] = error
    summary = MaintainSummary(
        tables=len(done),
        **{field: sum(getattr(one, field) for one in done) for field in _COUNTS},
    )
    if failed:
        raise TablesNotMaintained(failed, summary)
    return summary


def _maintain(
    name: str, snapshots_before: datetime, files_before: datetime, load: Callable[[str], Table]
) -> MaintainSummary:
    stream = _BY_TABLE.get(name)
    compacted, written = (
        _compact_event_table(name, stream, load) if stream is not None else _compact_whole(name, load)
    )
    expired = retry_conflicts(f"expiring snapshots of {name}", lambda: _expire(load(name), snapshots_before))
    deleted, freed = _delete_unreferenced(load(name), files_before)
    return MaintainSummary(
        snapshots_expired=expired,
        files_compacted=compacted,
        files_written=written,
        files_deleted=deleted,
        bytes_deleted=freed,
    )


def _expire(table: Table, horizon: datetime) -> int:
    """Drop the snapshots older than `horizon` but the current one and those a tag or a branch names
    (another engine's: pyiceberg refuses to expire them, and the traceback stopped every later table's
    maintenance); returns how many."""
    current = table.current_snapshot()
    kept = {ref.snapshot_id for ref in table.metadata.refs.values()}
    if current is not None:
        kept.add(current.snapshot_id)
    expired = [
        s.snapshot_id
        for s in table.snapshots()
        if s.timestamp_ms < horizon.timestamp() * 1000 and s.snapshot_id not in kept
    ]
    if expired:
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        except ValueError as error:
            if "does not exist" not in str(error):
                raise
            # Another `maintain` expired some of them meanwhile (a schedule's and a hand-run one): planned
            # again on the table as it is now, where it failed in pyiceberg's words, with a snapshot's repr.
            raise CommitFailedException("another writer expired some of these snapshots first") from None
    return len(expired)


def _compact_event_table(name: str, stream: EventStream, reload: Callable[[str], Table]) -> tuple[int, int]:
    table = reload(name)
    objects = {str(task.file.partition[0]) for task in planned_files(table.scan())}
    compacted = written = 0
    for object_id in sorted(objects):

        def attempt(object_id: str = object_id) -> tuple[int, int]:
            return _compact_object(reload(name), stream, object_id)

        done, made = retry_conflicts(f"compacting {name} {object_id}", attempt)
        compacted, written = compacted + done, written + made
    return compacted, written


def _compact_object(table: Table, stream: EventStream, object_id: str) -> tuple[int, int]:
    tasks = object_files(table, stream, object_id)
    target = file_target_rows(sum(t.file.record_count for t in tasks))
    by_day: defaultdict[object, list[DataFile]] = defaultdict(list)
    for task in tasks:
        if task.file.record_count < target * SMALL_SHARE:
            by_day[task.file.partition[1]].append(task.file)
    small = [files for files in by_day.values() if len(files) > 1]
    if not small:
        return 0, 0
    removed = [f for files in small for f in files]
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    write_uuid, counter = uuid.uuid4(), itertools.count()
    added: list[DataFile] = []
    for files in small:
        rows = scan.to_table([t for t in tasks if t.file in files]).sort_by([("created", "ascending")])
        for start in range(0, rows.num_rows, target):
            added += _dataframe_to_data_files(
                table.metadata, rows.slice(start, target), table.io, write_uuid, counter
            )
    commit_object_files(
        table,
        stream,
        object_id,
        removed,
        added,
        snapshot_properties={"bt-sync.maintain": "compact"},
        set_properties=_recounted(table, object_id, [t.file for t in tasks if t.file not in removed] + added),
    )
    return len(removed), len(added)


def _recounted(table: Table, object_id: str, files: Sequence[DataFile]) -> dict[str, str]:
    """The object's state with its files and bytes after a compaction, in the same commit as its files."""
    state = object_state(table, object_id)
    if state is None:
        return {}
    recounted = state.model_copy(
        update={"files": len(files), "bytes": sum(f.file_size_in_bytes for f in files)}
    )
    return {STATE_PROPERTY + object_id: recounted.model_dump_json()}


def _compact_whole(name: str, reload: Callable[[str], Table]) -> tuple[int, int]:
    """A small unpartitioned table (catalog, sync_state) becomes one file again."""

    def attempt() -> tuple[int, int]:
        table = reload(name)
        files = planned_files(table.scan())
        if len(files) < 2:
            return 0, 0
        replace_rows(table, table.scan().to_arrow(), {"bt-sync.maintain": "compact"})
        return len(files), 1

    return retry_conflicts(f"compacting {name}", attempt)


def _delete_unreferenced(table: Table, horizon: datetime) -> tuple[int, int]:
    """Delete files under the table's location that nothing refers to and older than `horizon`."""
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        return 0, 0
    referenced = _referenced(table)
    scheme, netloc, base = PyArrowFileIO.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)
    prefix = "" if scheme == "file" else f"{scheme}://"
    deleted = freed = 0
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
        if info.type != pafs.FileType.File:
            continue
        location = prefix + info.path
        modified = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=UTC)
        if location in referenced or _local(location) in referenced or modified >= horizon:
            continue
        fs.delete_file(info.path)
        deleted, freed = deleted + 1, freed + int(info.size or 0)
    return deleted, freed


def _referenced(table: Table) -> set[str]:
    metadata = table.metadata
    paths = {table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    # Statistics another engine wrote (Trino's ANALYZE, Spark's): the table's metadata names them.
    paths.update(stats.statistics_path for stats in (*metadata.statistics, *metadata.partition_statistics))
    for snapshot in metadata.snapshots:
        paths.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            paths.add(manifest.manifest_path)
            paths.update(
                entry.data_file.file_path
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
            )
    return {_local(p) for p in paths} | paths


def _local(location: str) -> str:
    return location.removeprefix("file://")
