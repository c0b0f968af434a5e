"""Merging an object's staged rows into its Parquet files, rewriting only the files the change touches.

Every row lives in one file of its object for good (updates rewrite that
file; new rows go to the object's open file, then to new ones), so a reader
can never see two versions of a row, and a sync writes bytes in proportion to
what changed. A first load of an object keeps its staged parts as its files.
The plan (which ids are new, newer or deleted, and in which file) is computed
in DuckDB from the ids and versions only; payloads are read once, for the
rows that changed.

Each file written is a new version with a name of its own, complete before
it appears (a temporary name, then a rename); nothing existing is modified.
Committing the new versions is the caller's job.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from connector.destinations.base import StagedParts, VersionRange
from connector.destinations.file_size import file_target_rows
from connector.destinations.filesystem import Root
from connector.destinations.merge_plan import plan_actions
from connector.destinations.scratch import merge_connection, object_scratch
from connector.destinations.unique_ids import each_id_once
from schemas.tables import EventStream, read_parquet, sql_identifier, sql_literal, sql_path_list

# A file's rows begin with these (none), whose columns may all be NULL: DuckDB writes a column its
# statistics show no NULL in as REQUIRED, and a rewritten file's rows, read from files holding none in
# `input`, gave `input` REQUIRED where a first load's files have it OPTIONAL; pyarrow takes one file's
# schema for a whole tree, and then refused to write the table it read ("declared non-nullable but
# contains nulls"). A filter the optimizer cannot fold away keeps the branch, and its statistics.
_NO_ROWS_ALL_NULLABLE = (
    "SELECT t.* FROM (SELECT 1) AS one LEFT JOIN template AS t ON false WHERE random() < 0"
)
# The id, version and file of each row an object holds, as read from object storage.
_CURRENT_KEYS = pa.schema([("id", pa.string()), ("old_x", pa.uint64()), ("file", pa.string())])
_FILE_NAME = re.compile(r"part-[0-9]{6,}\.parquet")


class DataFile(BaseModel):
    """One Parquet file of an object.

    Args:
        name: its name in the object's directory of the tree (`part-000003.parquet`).
        version: the immutable file holding its current content, in the object's version directory.
        rows: rows it holds.
        bytes: its size.
        since: when the commit that made `version` current was made; None in records written before
            bt-sync kept it (their versions are read as current all along).
    """

    name: str
    version: str
    rows: int
    bytes: int
    since: datetime | None = None


@dataclass(frozen=True)
class ObjectFiles:
    """Where an object's files are: its directory in the tree, and its directory of immutable versions."""

    root: Root
    directory: str
    versions: str

    def version_path(self, version: str) -> str:
        """The path of a version, relative to the root."""
        return f"{self.versions}/{version}"

    def current_path(self, data_file: DataFile) -> str:
        """Where a file's current content is: its version on a local disk; on object storage, where
        versions are deleted once copied into the tree, the tree's copy."""
        if self.root.is_local:
            return self.version_path(data_file.version)
        return f"{self.directory}/{data_file.name}"


@dataclass(frozen=True)
class MergeOutput:
    """An object's files after a merge.

    Args:
        files: every file of the object afterwards.
        open_file: the file new rows go to next.
        changed: the names of the files that have a new version, or that are gone (no row stayed).
        inserted: rows new to the object.
        updated: rows replaced by a newer version.
        deleted: rows removed.
        bytes_written: bytes of the versions written.
    """

    files: list[DataFile]
    open_file: str | None
    changed: list[str]
    inserted: int
    updated: int
    deleted: int
    bytes_written: int


def file_name(number: int) -> str:
    """The name of data file `number` of an object."""
    return f"part-{number:06d}.parquet"


def is_file_name(name: str) -> bool:
    """Whether `name` is one `file_name` gives."""
    return _FILE_NAME.fullmatch(name) is not None


def merge_files(
    where: ObjectFiles,
    stream: EventStream,
    files: Sequence[DataFile],
    open_file: str | None,
    staged: StagedParts,
    *,
    delete_missing_up_to: int | None,
    run_wrote: VersionRange | None = None,
    scratch: Path,
    token: str,
) -> MergeOutput:
    """Plan and write the new versions of the files that merging `staged` into an object's `files` changes.

    Args:
        where: the object's directories.
        stream: the object's table.
        files: the object's current files.
        open_file: the file new rows go to next.
        staged: the fetched rows.
        delete_missing_up_to: `staged` holds the whole object, read by a read that met every live row
            up to this `_xact_id`: a row held, no newer and not in `staged`, was deleted upstream (None:
            delete nothing).
        run_wrote: the versions of the rows this run's earlier commit wrote: replaced, no update is
            counted (`plan_actions`).
        scratch: a local directory for DuckDB's spill files and uploads.
        token: a text no other merge of the object uses, in the name of every version written
            (`written_by`).
    """
    with object_scratch(scratch), _connect(scratch) as con:
        if not sum(f.rows for f in files) and delete_missing_up_to is None and each_id_once(con, staged):
            return _first_load(where, files, staged, token)
        return _Merge(con, where, stream, files, open_file, staged.paths, scratch, token).run(
            delete_missing_up_to, run_wrote
        )


def _connect(scratch: Path) -> duckdb.DuckDBPyConnection:
    con = merge_connection(scratch)
    # JSON columns then reach Arrow (and Parquet written through it) as JSON, not plain text.
    con.execute("SET arrow_lossless_conversion = true")
    return con


def _first_load(
    where: ObjectFiles, files: Sequence[DataFile], staged: StagedParts, token: str
) -> MergeOutput:
    number = _next_number(files)
    new_files: list[DataFile] = []
    for path in staged.paths:
        name = file_name(number)
        version = _version_name(name, token)
        rows, size = pq.read_metadata(path).num_rows, path.stat().st_size
        _put(where, path, version)
        new_files.append(DataFile(name=name, version=version, rows=rows, bytes=size))
        number += 1
    return MergeOutput(
        files=[*files, *new_files],
        # Parts come newest first: the first holds the most recent rows, where new ones belong.
        open_file=new_files[0].name if new_files else None,
        changed=[f.name for f in new_files],
        inserted=sum(f.rows for f in new_files),
        updated=0,
        deleted=0,
        bytes_written=sum(f.bytes for f in new_files),
    )


class _Merge:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        where: ObjectFiles,
        stream: EventStream,
        files: Sequence[DataFile],
        open_file: str | None,
        incoming: Sequence[Path],
        scratch: Path,
        token: str,
    ) -> None:
        self._con = con
        self._where = where
        self._files = {f.name: f for f in files}
        self._open_file = open_file
        self._paths = [str(path) for path in incoming]
        self._incoming = sql_path_list(self._paths)
        self._scratch = scratch
        self._token = token
        # The new and newer rows, by the file they go to (`_write_changes`).
        self._changes = scratch / f"changes-{token}"
        self._columns = ", ".join(sql_identifier(c.name) for c in stream.file_columns)
        con.execute(
            "CREATE TEMP TABLE template ("
            + ", ".join(f"{sql_identifier(c.name)} {c.duckdb_type}" for c in stream.file_columns)
            + ")"
        )

    def run(self, delete_missing_up_to: int | None, run_wrote: VersionRange | None) -> MergeOutput:
        con = self._con
        self._load_current_keys()
        self._count_rows()
        has_incoming = self._incoming != "[]"
        counts = plan_actions(con, self._incoming if has_incoming else None, delete_missing_up_to, run_wrote)
        inserted, updated, deleted = counts.get("insert", 0), counts.get("update", 0), counts.get("delete", 0)
        new_names = self._assign_new_rows(inserted, total_after=self._total_rows() + inserted - deleted)
        try:
            if has_incoming:
                self._write_changes()
            changed = [
                str(row[0]) for row in con.execute("SELECT DISTINCT file FROM plan ORDER BY file").fetchall()
            ]
            written = 0
            for name in changed:
                rewritten = self._rewrite(name)
                if rewritten is None:
                    del self._files[name]  # every row it held was deleted: the file goes with them
                    continue
                self._files[name] = rewritten
                written += rewritten.bytes
        finally:
            # A copy of every changed row: a failed merge's too (a full disk, retried with a new token).
            shutil.rmtree(self._changes, ignore_errors=True)
        open_file = new_names[-1] if new_names else self._open_file
        return MergeOutput(
            files=sorted(self._files.values(), key=lambda f: f.name),
            open_file=open_file if open_file in self._files else None,
            changed=changed,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            bytes_written=written,
        )

    def _write_changes(self) -> None:
        """Write the new and newer rows once, a directory per file they go to (`_file=<name>/`).

        Each file's rewrite then reads its own rows: a table of them all, scanned once per file, spilled
        past the memory limit and was read again for every file (an update of every row of 200,000 wrote
        2 GB of spill; minutes at 600,000). Rows are picked by their place in the parts, from their keys
        alone: a window over whole rows held every payload at once, and spilled them.
        """
        con = self._con
        # Each picked row by numbers alone (12 bytes), its part's path and its file's name apart: with them,
        # the rows picked of 800,000 staged took 108 MB, and the join writing them ran out of memory.
        con.register(
            "parts",
            pa.table({"filename": self._paths, "part": pa.array(range(len(self._paths)), pa.uint32())}),
        )
        con.execute(
            "CREATE TEMP TABLE targets AS SELECT name, (row_number() OVER ())::UINTEGER AS target "
            "FROM (SELECT DISTINCT file AS name FROM plan WHERE action <> 'delete')"
        )
        staged = (
            f"{read_parquet(self._incoming, 'filename = true', 'file_row_number = true')} AS p "
            "JOIN parts AS s ON p.filename = s.filename"
        )
        con.execute(
            f"CREATE TEMP TABLE picked AS SELECT s.part, p.file_row_number AS row, t.target FROM {staged} "
            "JOIN plan AS x ON p.id = x.id AND p._xact_id = x.new_x JOIN targets AS t ON t.name = x.file "
            "WHERE x.action <> 'delete' "
            # The same version staged twice (a page read again after a resume) is one row.
            "QUALIFY row_number() OVER (PARTITION BY p.id ORDER BY p._synced_at DESC) = 1"
        )
        # On one thread: each thread keeps its own writer for every file, and two ran out of the memory limit
        # where one spills (600,000 new rows into an object of 200,000, under 256 MB: every rerun failed).
        # Small row groups: each file's rows are flushed as they come, not held until the file ends (these
        # files are read once, by `_rewrite`).
        ((threads,),) = con.execute("SELECT current_setting('threads')").fetchall()
        con.execute("SET threads = 1")
        try:
            con.execute(
                f"COPY (SELECT p.* EXCLUDE (filename, file_row_number), t.name AS _file FROM {staged} "
                "JOIN picked AS k ON k.part = s.part AND k.row = p.file_row_number "
                "JOIN targets AS t ON t.target = k.target) "
                f"TO {sql_literal(str(self._changes))} "
                "(FORMAT parquet, PARTITION_BY (_file), COMPRESSION zstd, COMPRESSION_LEVEL 1, "
                "ROW_GROUP_SIZE 8192)"
            )
        finally:
            con.execute(f"SET threads = {int(threads)}")

    def _total_rows(self) -> int:
        return sum(f.rows for f in self._files.values())

    def _load_current_keys(self) -> None:
        """The id, version and file of every row the object holds (read from its files' id columns)."""
        con, where = self._con, self._where
        con.execute("CREATE TEMP TABLE current_keys (id VARCHAR, old_x UBIGINT, file VARCHAR)")
        if not self._files:
            return
        if where.root.is_local:
            paths = {
                str(where.root.local(where.version_path(f.version))): f.name for f in self._files.values()
            }
            con.register("file_names", pa.table({"path": list(paths), "name": list(paths.values())}))
            con.execute(
                "INSERT INTO current_keys SELECT r.id, r._xact_id, n.name "
                f"FROM {read_parquet(sql_path_list(paths), 'filename = true')} AS r "
                "JOIN file_names AS n ON r.filename = n.path"
            )
            return
        reader = pa.RecordBatchReader.from_batches(_CURRENT_KEYS, self._remote_keys())
        con.register("remote_keys", reader)
        con.execute("INSERT INTO current_keys SELECT * FROM remote_keys")

    def _count_rows(self) -> None:
        """Each file's rows as its keys count them, not as the record said: a file replaced from outside (an
        older backup, a row less) kept its record's count, and `sync_state` stayed over the table for
        good, `--full` too."""
        counts = dict(self._con.execute("SELECT file, count(*) FROM current_keys GROUP BY file").fetchall())
        for name, data_file in self._files.items():
            if (rows := counts.get(name, 0)) != data_file.rows:
                self._files[name] = data_file.model_copy(update={"rows": rows})

    def _remote_keys(self) -> Iterator[pa.RecordBatch]:
        root = self._where.root
        for data_file in self._files.values():
            table = pq.read_table(
                root.full(self._where.current_path(data_file)), columns=["id", "_xact_id"], filesystem=root.fs
            )
            names = pa.array([data_file.name] * table.num_rows, pa.string())
            yield from pa.Table.from_arrays(
                [table["id"], table["_xact_id"], names], schema=_CURRENT_KEYS
            ).to_batches()

    def _assign_new_rows(self, inserted: int, *, total_after: int) -> list[str]:
        """Give each new row a file: the open one while it has room, then new files; returns the new files."""
        if not inserted:
            return []
        target = file_target_rows(total_after)
        room = 0
        if self._open_file in self._files:
            room = max(0, target - self._files[self._open_file].rows)
        first = _next_number(self._files.values())
        new_count = -(-(inserted - room) // target) if inserted > room else 0
        self._con.execute(
            "UPDATE plan SET file = CASE WHEN r.n <= $room THEN $open "
            "ELSE printf('part-%06d.parquet', $first + (r.n - $room - 1) // $target) END "
            "FROM (SELECT id, row_number() OVER (ORDER BY new_x DESC, id) AS n FROM plan WHERE action = "
            "'insert') "
            "AS r WHERE plan.id = r.id",
            {"room": room, "open": self._open_file or "", "first": first, "target": target},
        )
        return [file_name(first + index) for index in range(new_count)]

    def _rewrite(self, name: str) -> DataFile | None:
        """Write file `name`'s next version: its rows that stay, and the new and newer ones.

        Returns None, and writes nothing, when no row stays.
        """
        kept = "SELECT * FROM template"
        if name in self._files:
            current = read_parquet(sql_literal(self._readable(self._files[name])), "union_by_name = true")
            kept = (
                f"SELECT * FROM {current} "
                f"ANTI JOIN (SELECT id FROM plan WHERE file = {sql_literal(name)} AND action <> 'insert') "
                "USING (id)"
            )
        changes = "SELECT * FROM template"
        its_changes = self._changes / f"_file={name}"
        if its_changes.is_dir():
            rows = sql_literal(str(its_changes / "*.parquet"))
            changes = f"SELECT * FROM {read_parquet(rows)}"
        query = (
            f"SELECT {self._columns} FROM ({_NO_ROWS_ALL_NULLABLE} UNION ALL BY NAME {kept} "
            f"UNION ALL BY NAME {changes})"
        )
        version = _version_name(name, self._token)
        local = self._scratch / f".{version}.tmp"
        ((rows,),) = self._con.execute(
            f"COPY ({query}) TO {sql_literal(str(local))} (FORMAT parquet, COMPRESSION zstd, "
            "COMPRESSION_LEVEL 1)"
        ).fetchall()
        if not rows:
            local.unlink()
            return None
        size = local.stat().st_size
        _put(self._where, local, version)
        return DataFile(name=name, version=version, rows=int(rows), bytes=size)

    def _readable(self, data_file: DataFile) -> str:
        """A local path DuckDB can read a file's current version at (downloaded first from object storage)."""
        root, path = self._where.root, self._where.current_path(data_file)
        if root.is_local:
            return str(root.local(path))
        local = self._scratch / f"download-{self._token}-{data_file.version}"
        root.fetch(path, local)
        return str(local)


def _put(where: ObjectFiles, local: Path, version: str) -> None:
    """Move a finished local file into the version directory, complete before its name appears there."""
    root = where.root
    if root.is_local:
        temporary = f".{version}.tmp"
        root.place(local, where.version_path(temporary))
        root.rename(where.version_path(temporary), where.version_path(version))
    else:
        root.place(local, where.version_path(version))


def _version_name(name: str, token: str) -> str:
    return f"{name.removesuffix('.parquet')}.{token}.parquet"


def written_by(name: str, token: str) -> bool:
    """Whether `name` is a version that the merge given `token` writes, or its temporary file."""
    return f".{token}.parquet" in name


def _next_number(files: Iterable[DataFile]) -> int:
    numbers = [int(f.name.removeprefix("part-").removesuffix(".parquet")) for f in files]
    return max(numbers, default=-1) + 1
