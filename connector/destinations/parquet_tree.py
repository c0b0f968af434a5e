"""A tree of Parquet files holding the tables, with each object's state committed beside its files.

Layout, under the root (a local directory or an `s3://` prefix):

    <table>/<key>=<object id>/part-000000.parquet   an object's rows, in files of bounded size
    <table>/<key>=<object id>/_sync_state.json      its commit record: state, files, pending renames
    <table>/<key>=__schema__/...                    an empty object, so every table always has a file
    <catalog table>/data.parquet                    one file per catalog table (projects, experiments, ...)

Plain engines read `<table>/*/*.parquet` with hive partitioning as the
deduplicated table. A merge writes new files under temporary names, then
commits by replacing the object's `_sync_state.json` (atomically) with a record
listing the renames still to do, then renames. A crash before the commit
leaves the old state (the temporaries are swept later); a crash after it is
rolled forward by the next sync of the object. A reader sees each file whole,
and never two versions of a row: rows never move between files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from connector.destinations.base import MergeResult, ObjectRef, StagedParts, SyncState
from connector.destinations.filesystem import Root
from connector.destinations.parquet_merge import DataFile, Swap, merge_files
from connector.errors import WarehouseLocked
from connector.state_file import StateFile
from schemas.api import ApiObject
from schemas.kinds import CATALOG_TABLES, EVENT_STREAMS, PROJECT, ObjectKind
from schemas.tables import CatalogTable, EventStream, json_struct, sql_identifier, sql_literal

STATE_FILE = "_sync_state.json"
CATALOG_FILE = "data.parquet"
# The directory of the empty object that keeps every table's glob matching at least one file.
SCHEMA_OBJECT = "__schema__"
# How long the emptied directory of a deleted object stays, for queries that listed its files.
REMOVED_OBJECT_GRACE = timedelta(hours=1)
_UNREADABLE_STATE = "delete the object's directory to sync it afresh"


class ObjectRecord(StateFile):
    """An object's commit record: its state, its files, and renames not yet done.

    Args:
        state: the committed state.
        files: the object's data files.
        open_file: the file new rows go to next.
        pending: temporary files to rename over their final names (a commit interrupted half-way).
        removed_at: when the object was deleted upstream and its rows removed.
    """

    FORMAT = 1

    state: SyncState
    files: list[DataFile] = []
    open_file: str | None = None
    pending: list[Swap] = []
    removed_at: datetime | None = None


class ParquetTree:
    """The tables as a tree of Parquet files (see the module docstring).

    Args:
        root: where the tree is: a local directory or an `s3://bucket/prefix` URI.
        state_dir: this worker's scratch directory (staging, locks for a remote root).
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
        """Write the empty objects and catalog files that keep every table readable before data arrives."""
        for stream in EVENT_STREAMS.values():
            directory = f"{stream.table}/{stream.key_column}={SCHEMA_OBJECT}"
            self.root.write(f"{directory}/part-000000.parquet", _empty_parquet(_file_schema(stream)))
            self.root.write(f"{directory}/{STATE_FILE}", b"{}")
        for table in CATALOG_TABLES:
            if not self.root.exists(f"{table.table}/{CATALOG_FILE}"):
                self.root.write(f"{table.table}/{CATALOG_FILE}", _empty_parquet(_catalog_schema(table)))
        self._purge_removed_objects()

    @contextmanager
    def lock(self, ref: ObjectRef, wait_s: float) -> Iterator[None]:
        """Hold the object against other syncs of it, waiting up to `wait_s`."""
        if self.root.is_local:
            path = self.root.local(f"{_directory(ref.stream, ref.object_id)}/.lock")
        else:
            path = self._state_dir / "locks" / self._key / ref.stream.table / f"{ref.object_id}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise WarehouseLocked(
                f"another bt-sync process is syncing {ref.stream.table} {ref.name!r} ({ref.object_id}) "
                f"and still held it after {wait_s:.0f}s (--lock-wait)"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def read_state(self, ref: ObjectRef) -> SyncState | None:
        """The object's committed state (finishing an interrupted commit first)."""
        record = self._recovered(ref.stream, ref.object_id)
        return None if record is None or record.removed_at is not None else record.state

    def list_states(self) -> list[SyncState]:
        """Every synced object's committed state (read only: objects may be syncing meanwhile)."""
        return [record.state for record in self._records() if record.removed_at is None]

    def merge(
        self, ref: ObjectRef, staged: StagedParts, state: SyncState, *, delete_missing: bool
    ) -> MergeResult:
        """Merge `staged` into the object's files and commit them with `state`."""
        directory = _directory(ref.stream, ref.object_id)
        record = self._recovered(ref.stream, ref.object_id)
        files = record.files if record is not None and record.removed_at is None else []
        output = merge_files(
            self.root,
            directory,
            ref.stream,
            files,
            record.open_file if record is not None else None,
            staged,
            delete_missing=delete_missing,
            scratch=self.scratch / "merge" / ref.object_id,
        )
        rows = sum(f.rows for f in output.files)
        committed = state.model_copy(
            update={
                "rows": rows,
                "files": len(output.files),
                "bytes": sum(f.bytes for f in output.files),
                "last_bytes_written": output.bytes_written,
            }
        )
        self._commit(
            directory,
            ObjectRecord(
                state=committed, files=output.files, open_file=output.open_file, pending=output.swaps
            ),
        )
        return MergeResult(
            inserted=output.inserted,
            updated=output.updated,
            deleted=output.deleted,
            rows=rows,
            bytes_written=output.bytes_written,
        )

    def remove_object(self, state: SyncState) -> None:
        """Empty a deleted object's files and mark it removed; its directory goes after a grace period.

        The caller holds the object's lock.
        """
        stream = EVENT_STREAMS[state.object_type]
        directory = _directory(stream, state.object_id)
        record = self._recovered(stream, state.object_id)
        if record is None:
            return
        empty = _empty_parquet(_file_schema(stream))
        # Emptied rather than deleted: a query that already listed the files must still find them.
        for data_file in record.files:
            self.root.write(f"{directory}/{data_file.name}", empty)
        removed = record.model_copy(
            update={"files": [], "open_file": None, "pending": [], "removed_at": datetime.now(UTC)}
        )
        self.root.write(f"{directory}/{STATE_FILE}", removed.dumps())

    def write_catalog(
        self, kind: ObjectKind, objects: Sequence[ApiObject], project_ids: Sequence[str] | None
    ) -> None:
        """Replace the catalog table's file: all rows, or those of `project_ids` (other projects' rows stay)."""
        table = kind.catalog
        path = f"{table.table}/{CATALOG_FILE}"
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET arrow_lossless_conversion = true")
            con.register(
                "catalog_rows",
                pa.table({"raw": pa.array([o.model_dump_json() for o in objects], pa.string())}),
            )
            query = _catalog_select(table)
            kept = self.root.read(path) if project_ids is not None else None
            if kept:
                owner = "id" if kind is PROJECT else "project_id"
                con.register("kept_rows", pq.read_table(pa.BufferReader(kept)))
                con.register("replaced", pa.table({"id": pa.array(list(project_ids or []), pa.string())}))
                query += f" UNION ALL BY NAME SELECT * FROM kept_rows WHERE {owner} NOT IN (SELECT id FROM replaced)"
            self.root.write(path, _parquet_bytes(con.sql(query).to_arrow_table()))

    def _load(self, stream: EventStream, object_id: str) -> ObjectRecord | None:
        directory = _directory(stream, object_id)
        data = self.root.read(f"{directory}/{STATE_FILE}")
        if data is None:
            return None
        return ObjectRecord.loads(data, f"{self.root.display}/{directory}/{STATE_FILE}", _UNREADABLE_STATE)

    def _recovered(self, stream: EventStream, object_id: str) -> ObjectRecord | None:
        """The object's record, after renaming the files of a commit that a crash interrupted.

        Only for the holder of the object's lock: it renames and deletes files of the object.
        """
        directory = _directory(stream, object_id)
        record = self._load(stream, object_id)
        if record is None:
            return None
        if record.pending:
            self._finish_renames(directory, record)
            record = record.model_copy(update={"pending": []})
            self.root.write(f"{directory}/{STATE_FILE}", record.dumps())
        self._sweep_temporaries(directory)
        return record

    def _commit(self, directory: str, record: ObjectRecord) -> None:
        # The record names the renames still to do: once it is written the merge is committed.
        self.root.write(f"{directory}/{STATE_FILE}", record.dumps())
        self._finish_renames(directory, record)
        self.root.write(f"{directory}/{STATE_FILE}", record.model_copy(update={"pending": []}).dumps())

    def _finish_renames(self, directory: str, record: ObjectRecord) -> None:
        for swap in record.pending:
            if self.root.exists(f"{directory}/{swap.temporary}"):
                self.root.rename(f"{directory}/{swap.temporary}", f"{directory}/{swap.final}")

    def _sweep_temporaries(self, directory: str) -> None:
        """Delete files a merge wrote and never committed (its process died first)."""
        for name in self.root.list(directory):
            if name.startswith(".part-") and name.endswith(".tmp"):
                self.root.delete(f"{directory}/{name}")

    def _records(self) -> Iterator[ObjectRecord]:
        for stream in EVENT_STREAMS.values():
            for entry in self.root.list(stream.table):
                key, _, object_id = entry.partition("=")
                if key != stream.key_column or object_id == SCHEMA_OBJECT:
                    continue
                record = self._load(stream, object_id)
                if record is not None:
                    yield record

    def _purge_removed_objects(self) -> None:
        oldest_kept = datetime.now(UTC) - REMOVED_OBJECT_GRACE
        for record in self._records():
            if record.removed_at is not None and record.removed_at < oldest_kept:
                stream = EVENT_STREAMS[record.state.object_type]
                self.root.delete_tree(_directory(stream, record.state.object_id))


def _directory(stream: EventStream, object_id: str) -> str:
    return f"{stream.table}/{stream.key_column}={object_id}"


def _file_schema(stream: EventStream) -> str:
    return ", ".join(f"{sql_identifier(c.name)} {c.duckdb_type}" for c in stream.file_columns)


def _catalog_schema(table: CatalogTable) -> str:
    return ", ".join(f"{sql_identifier(c.name)} {c.duckdb_type}" for c in table.columns)


def _empty_parquet(columns: str) -> bytes:
    """A Parquet file with no rows and these columns."""
    with duckdb.connect() as con:
        con.execute("SET arrow_lossless_conversion = true")
        con.execute(f"CREATE TEMP TABLE empty ({columns})")
        return _parquet_bytes(con.sql("SELECT * FROM empty").to_arrow_table())


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue())


def _catalog_select(table: CatalogTable) -> str:
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
