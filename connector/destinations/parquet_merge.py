"""Merging an object's staged rows into its Parquet files, rewriting only the files the change touches.

Every row lives in one file of its object for good (updates rewrite that
file; new rows go to the object's open file, then to new ones), so a reader
can never see two versions of a row, and a sync writes bytes in proportion to
what changed. A first load of an object moves its staged parts into place as
they are. The plan (which ids are new, newer, deleted, and in which file) is
computed in DuckDB from the ids and versions only; payloads are read once,
for the rows that changed.

Nothing here is visible to readers: every file is written under a temporary
name, and `MergeOutput.swaps` says which temporary replaces which file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from connector.destinations.base import StagedParts
from connector.destinations.file_size import file_target_rows
from connector.destinations.filesystem import Root
from schemas.tables import EventStream, sql_identifier, sql_literal

# A merge of a whole object (a full read) may not fit in memory: DuckDB spills beyond this.
MERGE_MEMORY_LIMIT = "256MB"


class DataFile(BaseModel):
    """One Parquet file of an object."""

    name: str
    rows: int
    bytes: int


class Swap(BaseModel):
    """A file written under a temporary name, to be renamed over its final name once committed."""

    temporary: str
    final: str


@dataclass(frozen=True)
class MergeOutput:
    """An object's files after a merge, and the writes that make them so.

    Args:
        files: every file of the object afterwards.
        open_file: the file new rows go to next.
        swaps: temporary files to rename into place, once the merge is committed.
        inserted: rows new to the object.
        updated: rows replaced by a newer version.
        deleted: rows removed.
        bytes_written: bytes of the files written.
    """

    files: list[DataFile]
    open_file: str | None
    swaps: list[Swap]
    inserted: int
    updated: int
    deleted: int
    bytes_written: int


def file_name(number: int) -> str:
    """The name of data file `number` of an object."""
    return f"part-{number:06d}.parquet"


def merge_files(
    root: Root,
    directory: str,
    stream: EventStream,
    files: Sequence[DataFile],
    open_file: str | None,
    staged: StagedParts,
    *,
    delete_missing: bool,
    scratch: Path,
) -> MergeOutput:
    """Plan and write the files that merging `staged` into an object's `files` changes.

    Args:
        root: the tree the object's directory is in.
        directory: the object's directory in `root`.
        stream: the object's table.
        files: the object's current files.
        open_file: the file new rows go to next.
        staged: the fetched rows.
        delete_missing: `staged` holds the whole object: rows not in it are deleted.
        scratch: a local directory for DuckDB's spill files and downloads.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    with _connect(scratch) as con:
        incoming = _parquet_list(staged.paths)
        if not sum(f.rows for f in files) and not delete_missing and _each_id_once(con, incoming, staged):
            return _first_load(root, directory, files, staged)
        return _Merge(con, root, directory, stream, files, open_file, incoming, scratch).run(delete_missing)


def _connect(scratch: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(
        config={"memory_limit": MERGE_MEMORY_LIMIT, "temp_directory": str(scratch / "spill")}
    )
    # JSON columns then reach Arrow (and Parquet written through it) as JSON, not plain text.
    con.execute("SET arrow_lossless_conversion = true")
    return con


def _each_id_once(con: duckdb.DuckDBPyConnection, incoming: str, staged: StagedParts) -> bool:
    """Whether the parts can become files as they are: each id once (checked, not only trusted)."""
    if not staged.paths or not staged.deduplicated:
        return False
    ((unique,),) = con.execute(f"SELECT count(*) = count(DISTINCT id) FROM read_parquet({incoming})").fetchall()
    return bool(unique)


def _first_load(root: Root, directory: str, files: Sequence[DataFile], staged: StagedParts) -> MergeOutput:
    number = _next_number(files)
    token = uuid.uuid4().hex[:8]
    new_files: list[DataFile] = []
    swaps: list[Swap] = []
    for path in staged.paths:
        name = file_name(number)
        temporary = f".{name}.{token}.tmp"
        rows = pq.read_metadata(path).num_rows
        size = path.stat().st_size
        root.place(path, f"{directory}/{temporary}")
        new_files.append(DataFile(name=name, rows=rows, bytes=size))
        swaps.append(Swap(temporary=temporary, final=name))
        number += 1
    return MergeOutput(
        files=[*files, *new_files],
        # Parts come newest first: the first holds the most recent rows, where new ones belong.
        open_file=new_files[0].name if new_files else None,
        swaps=swaps,
        inserted=sum(f.rows for f in new_files),
        updated=0,
        deleted=0,
        bytes_written=sum(f.bytes for f in new_files),
    )


class _Merge:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        root: Root,
        directory: str,
        stream: EventStream,
        files: Sequence[DataFile],
        open_file: str | None,
        incoming: str,
        scratch: Path,
    ) -> None:
        self._con = con
        self._root = root
        self._directory = directory
        self._stream = stream
        self._files = {f.name: f for f in files}
        self._open_file = open_file
        self._incoming = incoming
        self._scratch = scratch
        self._token = uuid.uuid4().hex[:8]
        self._columns = ", ".join(sql_identifier(c.name) for c in stream.file_columns)
        self._con.execute(
            "CREATE TEMP TABLE template ("
            + ", ".join(f"{sql_identifier(c.name)} {c.duckdb_type}" for c in stream.file_columns)
            + ")"
        )

    def run(self, delete_missing: bool) -> MergeOutput:
        con = self._con
        self._register_current_keys()
        join = "FULL OUTER JOIN" if delete_missing else "LEFT JOIN"
        con.execute(
            "CREATE TEMP TABLE incoming AS SELECT id, max(_xact_id) AS new_x "
            f"FROM read_parquet({self._incoming}) GROUP BY id"
            if self._incoming != "[]"
            else "CREATE TEMP TABLE incoming (id VARCHAR, new_x UBIGINT)"
        )
        con.execute(
            "CREATE TEMP TABLE plan AS SELECT coalesce(i.id, c.id) AS id, i.new_x, c.file, "
            "CASE WHEN c.id IS NULL THEN 'insert' WHEN i.id IS NULL THEN 'delete' ELSE 'update' END AS action "
            f"FROM incoming AS i {join} current_keys AS c ON i.id = c.id "
            "WHERE c.id IS NULL OR i.id IS NULL OR i.new_x > c.old_x"
        )
        counts = dict(con.execute("SELECT action, count(*) FROM plan GROUP BY action").fetchall())
        inserted, updated, deleted = counts.get("insert", 0), counts.get("update", 0), counts.get("delete", 0)
        new_names = self._assign_new_rows(inserted, total_after=self._total_rows() + inserted - deleted)
        con.execute(
            f"CREATE TEMP TABLE changes AS SELECT p.*, x.file AS _file FROM read_parquet({self._incoming}) AS p "
            "JOIN plan AS x ON p.id = x.id AND p._xact_id = x.new_x WHERE x.action <> 'delete' "
            # The same version staged twice (a page read again after a resume) is one row.
            "QUALIFY row_number() OVER (PARTITION BY p.id ORDER BY p._synced_at DESC) = 1"
            if self._incoming != "[]"
            else "CREATE TEMP TABLE changes AS SELECT *, NULL::VARCHAR AS _file FROM template"
        )
        touched = [
            str(row[0]) for row in con.execute("SELECT DISTINCT file FROM plan ORDER BY file").fetchall()
        ]
        swaps: list[Swap] = []
        written = 0
        for name in touched:
            rows, size, swap = self._rewrite(name)
            self._files[name] = DataFile(name=name, rows=rows, bytes=size)
            swaps.append(swap)
            written += size
        return MergeOutput(
            files=sorted(self._files.values(), key=lambda f: f.name),
            open_file=new_names[-1] if new_names else self._open_file,
            swaps=swaps,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            bytes_written=written,
        )

    def _total_rows(self) -> int:
        return sum(f.rows for f in self._files.values())

    def _register_current_keys(self) -> None:
        names = list(self._files)
        if not names:
            self._con.execute("CREATE TEMP TABLE current_keys (id VARCHAR, old_x UBIGINT, file VARCHAR)")
            return
        if self._root.is_local:
            paths = [str(self._root.local(f"{self._directory}/{name}")) for name in names]
            self._con.execute(
                "CREATE TEMP TABLE current_keys AS SELECT id, _xact_id AS old_x, parse_filename(filename) AS file "
                f"FROM read_parquet({_parquet_list(paths)}, filename = true)"
            )
            return
        reader = pa.RecordBatchReader.from_batches(
            pa.schema([("id", pa.string()), ("old_x", pa.uint64()), ("file", pa.string())]),
            self._remote_keys(names),
        )
        self._con.register("remote_keys", reader)
        self._con.execute("CREATE TEMP TABLE current_keys AS SELECT * FROM remote_keys")

    def _remote_keys(self, names: list[str]) -> Iterator[pa.RecordBatch]:
        for name in names:
            table = pq.read_table(
                self._root.full(f"{self._directory}/{name}"),
                columns=["id", "_xact_id"],
                filesystem=self._root.fs,
            )
            files = pa.array([name] * table.num_rows, pa.string())
            yield from pa.table(
                [table["id"], table["_xact_id"], files], names=["id", "old_x", "file"]
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
        new_names = [file_name(first + index) for index in range(new_count)]
        self._con.execute(
            "UPDATE plan SET file = CASE WHEN r.n <= $room THEN $open "
            "ELSE printf('part-%06d.parquet', $first + (r.n - $room - 1) // $target) END "
            "FROM (SELECT id, row_number() OVER (ORDER BY new_x DESC, id) AS n FROM plan WHERE action = 'insert') AS r "
            "WHERE plan.id = r.id",
            {"room": room, "open": self._open_file or "", "first": first, "target": target},
        )
        return new_names

    def _rewrite(self, name: str) -> tuple[int, int, Swap]:
        """Write file `name`'s new content under a temporary name; returns its rows, bytes and swap."""
        con = self._con
        kept = "SELECT * FROM template"
        if name in self._files:
            old = self._readable(name)
            kept = (
                f"SELECT * FROM read_parquet({sql_literal(old)}, union_by_name = true) "
                f"ANTI JOIN (SELECT id FROM plan WHERE file = {sql_literal(name)} AND action <> 'insert') USING (id)"
            )
        query = (
            f"SELECT {self._columns} FROM (SELECT * FROM template UNION ALL BY NAME {kept} "
            f"UNION ALL BY NAME SELECT * EXCLUDE (_file) FROM changes WHERE _file = {sql_literal(name)})"
        )
        temporary = f".{name}.{self._token}.tmp"
        local = (
            self._root.local(f"{self._directory}/{temporary}")
            if self._root.is_local
            else self._scratch / temporary
        )
        local.parent.mkdir(parents=True, exist_ok=True)
        (copied,) = con.execute(
            f"COPY ({query}) TO {sql_literal(str(local))} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
        ).fetchall()
        rows = int(copied[0])
        size = local.stat().st_size
        if not self._root.is_local:
            self._root.place(local, f"{self._directory}/{temporary}")
        return rows, size, Swap(temporary=temporary, final=name)

    def _readable(self, name: str) -> str:
        """A local path DuckDB can read file `name` at (downloaded first from object storage)."""
        if self._root.is_local:
            return str(self._root.local(f"{self._directory}/{name}"))
        local = self._scratch / f"download-{self._token}-{name}"
        self._root.fetch(f"{self._directory}/{name}", local)
        return str(local)


def _next_number(files: Iterable[DataFile]) -> int:
    numbers = [int(f.name.removeprefix("part-").removesuffix(".parquet")) for f in files]
    return max(numbers, default=-1) + 1


def _parquet_list(paths: Sequence[Path | str]) -> str:
    return "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"
