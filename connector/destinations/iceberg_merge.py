"""Planning an object's merge into its Iceberg table and writing the data files it needs.

Like the Parquet tree's merge, it rewrites only what the change touches: the
plan (which ids are new, newer or deleted, and which data file holds each)
is computed in DuckDB from the ids and versions of the object's files, read
through pyiceberg (so partition pruning keeps it to the object). New rows go
to new files; a file holding an updated or deleted row is rewritten without
it. Files hold the object's file size of rows, in order of `created`, a few
days at a time, written as the rows were fetched (newest first), so the updates
an incremental sync usually brings (feedback on recent rows) touch the few files
of the newest rows. Nothing is committed here: the caller commits the removed
and added files together with the object's state.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from connector.destinations.base import StagedParts, VersionRange
from connector.destinations.file_size import file_target_rows
from connector.destinations.iceberg_catalog import object_files
from connector.destinations.iceberg_schema import stored_select, stored_type
from connector.destinations.merge_plan import plan_actions
from connector.destinations.scratch import merge_connection, object_scratch
from connector.destinations.unique_ids import each_id_once
from connector.errors import MalformedResponse, first_line
from schemas.tables import EventStream, read_parquet, sql_identifier, sql_literal, sql_path_list

# Data files read at once (their id and version columns, or a whole file to rewrite), and the most read
# ahead of the one DuckDB takes next.
READ_THREADS = 8
# `_xact_id` is stored as Iceberg's signed long.
_LARGEST_LONG = 2**63 - 1


def refuse_beyond_a_long(what: str, xact: int | None) -> None:
    """Refuse an `_xact_id` of 2**63 or more: valid for the API (64 bits, unsigned), beyond Iceberg's long.

    Raises:
        MalformedResponse: it is (the object fails, not the run).
    """
    if xact is not None and xact > _LARGEST_LONG:
        raise MalformedResponse(
            f"{what} ({xact}) is 2**63 or more, beyond what Iceberg's long holds (the DuckDB destination "
            "stores it)"
        )


@dataclass(frozen=True)
class MergePlan:
    """What merging staged rows into an object changes, with the new data files already written.

    Args:
        removed: the object's data files the commit replaces.
        added: the data files written for the commit (not yet part of the table).
        inserted: rows new to the object.
        updated: rows replaced by a newer version.
        deleted: rows removed.
        rows: the object's rows afterwards.
        files: its data files afterwards.
        bytes: their bytes.
    """

    removed: list[DataFile]
    added: list[DataFile]
    inserted: int
    updated: int
    deleted: int
    rows: int
    files: int
    bytes: int

    @property
    def bytes_written(self) -> int:
        """Bytes of the data files written."""
        return sum(f.file_size_in_bytes for f in self.added)

    @property
    def changes_data(self) -> bool:
        """Whether the commit adds or removes data files (otherwise it only records the state)."""
        return bool(self.removed or self.added)


def plan_merge(
    table: Table,
    stream: EventStream,
    object_id: str,
    staged: StagedParts,
    *,
    delete_missing_up_to: int | None,
    run_wrote: VersionRange | None = None,
    scratch: Path,
    rebuild: bool = False,
) -> MergePlan:
    """Plan merging `staged` into the object's rows (the greatest `_xact_id` wins) and write the new files.

    Args:
        table: the event table, as loaded for this attempt.
        stream: its description.
        object_id: the object.
        staged: the fetched rows.
        delete_missing_up_to: `staged` holds the whole object, read by a read that met every live row
            up to this `_xact_id`: a row held, no newer and not in `staged`, was deleted upstream (None:
            delete nothing).
        run_wrote: the versions of the rows this run's earlier commit wrote: replaced, no update is
            counted (`plan_actions`).
        scratch: a local directory for DuckDB's spill files.
        rebuild: `staged` holds the whole object, read again because some of its files cannot be read
            (`unreadable_files`): it replaces every file the object has, none of which is read.

    Raises:
        MalformedResponse: a row's `_xact_id` is beyond what an Iceberg long holds (that object fails).
        OSError, pyarrow.ArrowException: a file of the object cannot be read (or a new one written).
    """
    tasks = object_files(table, stream, object_id)
    replaced = [task.file for task in tasks] if rebuild else []
    if rebuild:
        tasks = []
    with object_scratch(scratch), _connect(scratch) as con:
        merge = _Merge(con, table, stream, object_id, staged, tasks)
        merge.refuse_versions_beyond_a_long()
        if not tasks and delete_missing_up_to is None and merge.each_id_once():
            plan = merge.first_load()
        else:
            plan = merge.run(delete_missing_up_to, run_wrote)
    return dataclasses.replace(plan, removed=[*replaced, *plan.removed])


def unreadable_files(table: Table, tasks: Sequence[FileScanTask]) -> list[str]:
    """A line for each of the data files of `tasks` that is missing or cannot be read whole.

    Only after a merge failed reading them: every row of every file is decoded.
    """
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    unreadable = []
    for task in tasks:
        try:
            scan.to_table([task])
        except FileNotFoundError:
            unreadable.append(f"{task.file.file_path} is missing")
        except (OSError, pa.ArrowException) as error:
            unreadable.append(f"{task.file.file_path} is unreadable ({first_line(error)})")
    return unreadable


def _connect(scratch: Path) -> duckdb.DuckDBPyConnection:
    con = merge_connection(scratch)
    con.execute("SET TimeZone = 'UTC'")
    return con


class _Merge:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        table: Table,
        stream: EventStream,
        object_id: str,
        staged: StagedParts,
        tasks: Sequence[FileScanTask],
    ) -> None:
        self._con = con
        self._table = table
        self._stream = stream
        self._staged = staged
        # A row's data file is known by its index here: a path on every row would cost more than its id.
        self._files = list(tasks)
        self._parts = sql_path_list(staged.paths)
        # Staged parts leave out the key column (the Parquet tree keeps it in directory names).
        self._select = stored_select(stream.columns, {stream.key_column: sql_literal(object_id)})
        self._write_uuid = uuid.uuid4()
        self._counter = itertools.count()

    def refuse_versions_beyond_a_long(self) -> None:
        """Refuse an `_xact_id` of 2**63 or more: valid for the API (64 bits, unsigned), but beyond
        Iceberg's signed long, where the merge's cast would fail the whole run."""
        if not self._staged.paths:
            return
        ((newest,),) = self._con.execute(f"SELECT max(_xact_id) FROM {read_parquet(self._parts)}").fetchall()
        refuse_beyond_a_long("a row's _xact_id", newest)

    def each_id_once(self) -> bool:
        """Whether the staged parts can be written as they are: each id once (checked, not only trusted)."""
        return each_id_once(self._con, self._staged)

    def first_load(self) -> MergePlan:
        """An object's first rows: the staged rows as they are, in files of the object's size."""
        rows = sum(pq.read_metadata(path).num_rows for path in self._staged.paths)
        source = f"SELECT {self._select} FROM {read_parquet(self._parts)}"
        added = self._write(self._chunks(source, file_target_rows(rows)))
        return self._plan([], added, inserted=rows, updated=0, deleted=0)

    def run(self, delete_missing_up_to: int | None, run_wrote: VersionRange | None) -> MergePlan:
        con = self._con
        self._load_current_keys()
        counts = plan_actions(
            con, self._parts if self._staged.paths else None, delete_missing_up_to, run_wrote
        )
        if not counts:
            return self._plan([], [], inserted=0, updated=0, deleted=0)
        self._collect_output()
        rewritten = [
            self._files[int(row[0])]
            for row in con.execute(
                "SELECT DISTINCT file FROM plan WHERE action <> 'insert' ORDER BY file"
            ).fetchall()
        ]
        removed = [task.file for task in rewritten]
        self._keep_rows_of(rewritten)
        rows_after = sum(t.file.record_count for t in self._files) + counts.get("insert", 0)
        added = self._write(
            self._chunks("SELECT * FROM output", file_target_rows(rows_after - counts.get("delete", 0)))
        )
        return self._plan(
            removed,
            added,
            inserted=counts.get("insert", 0),
            updated=counts.get("update", 0),
            deleted=counts.get("delete", 0),
        )

    def _collect_output(self) -> None:
        """The new and newer rows, typed as stored (the rows kept from rewritten files are added next)."""
        columns = ", ".join(f"{sql_identifier(c.name)} {stored_type(c)}" for c in self._stream.columns)
        self._con.execute(f"CREATE TEMP TABLE output ({columns})")
        if self._staged.paths:
            self._con.execute(
                f"INSERT INTO output SELECT {self._select} FROM ("
                f"SELECT p.* FROM {read_parquet(self._parts)} AS p "
                "JOIN plan AS x ON p.id = x.id AND p._xact_id = x.new_x WHERE x.action <> 'delete' "
                # The same version staged twice (a page read again after a resume) is one row.
                "QUALIFY row_number() OVER (PARTITION BY p.id ORDER BY p._synced_at DESC) = 1)"
            )

    def _keep_rows_of(self, tasks: Sequence[FileScanTask]) -> None:
        """Add the rows of the files being rewritten that stay: those neither updated nor deleted."""
        scan = ArrowScan(self._table.metadata, self._table.io, self._table.schema(), AlwaysTrue())
        for rows in _read_in_order(lambda task: scan.to_table([task]), tasks):
            self._con.register("rewritten_file", rows)
            self._con.execute(
                "INSERT INTO output BY NAME SELECT * FROM rewritten_file "
                "ANTI JOIN (SELECT id FROM plan WHERE action <> 'insert') USING (id)"
            )
            self._con.unregister("rewritten_file")

    def _chunks(self, rows: str, file_rows: int) -> Iterator[pa.Table]:
        """The rows of a query, a file's rows at a time, each chunk in order of `created`, taken a few
        `created` days at a time.

        A file is written per chunk and day partition: chunks of rows in fetch order, whose days need
        not follow it (logs backfilled with their own times), made files of a few rows each, thousands
        of them. Days of fewer rows than a file are read together, each larger day alone: the query is
        read once per group, never sorted whole (a whole object may not fit in memory).
        """
        for days in self._day_groups(rows, file_rows):
            yield from self._file_chunks(f"SELECT * FROM ({rows}) WHERE {days}", file_rows)

    def _day_groups(self, rows: str, file_rows: int) -> Iterator[str]:
        """SQL conditions selecting the rows of a query by `created` day: consecutive days holding
        together at most a file's rows, or one day holding more; the rows without a time last."""
        day = "created::DATE"  # in UTC (`_connect`), as Iceberg's day partitions are
        counts = self._con.execute(
            f"SELECT {day} AS day, count(*) FROM ({rows}) GROUP BY day ORDER BY day NULLS LAST"
        ).fetchall()
        group: list[date] = []
        held = 0
        for when, count in counts:
            if group and (when is None or held + count > file_rows):
                yield f"{day} BETWEEN DATE '{group[0]}' AND DATE '{group[-1]}'"
                group, held = [], 0
            if when is None:
                yield "created IS NULL"
                continue
            group.append(when)
            held += count
        if group:
            yield f"{day} BETWEEN DATE '{group[0]}' AND DATE '{group[-1]}'"

    def _file_chunks(self, rows: str, file_rows: int) -> Iterator[pa.Table]:
        """The rows of a query, a file's rows at a time, each chunk sorted by `created`: they come roughly
        newest first (as fetched), so each file of a day holding several covers a span of its time."""
        order = [("created", "ascending"), ("id", "ascending")]
        reader = self._con.sql(rows).to_arrow_reader(file_rows)
        pending = reader.schema.empty_table()
        for batch in reader:
            # A parallel scan hands over smaller batches: gather them into whole files.
            pending = pa.concat_tables([pending, pa.Table.from_batches([batch])])
            while pending.num_rows >= file_rows:
                yield pending.slice(0, file_rows).sort_by(order)
                pending = pending.slice(file_rows)
        if pending.num_rows:
            yield pending.sort_by(order)

    def _load_current_keys(self) -> None:
        """The id, version and data file (its index in `_files`) of every row the object holds.

        Loaded into DuckDB a file at a time: its table spills past the memory limit, where the keys
        of a large object gathered in memory first would not.
        """
        self._con.execute("CREATE TEMP TABLE current_keys (id VARCHAR, old_x BIGINT, file INTEGER)")
        scan = ArrowScan(
            self._table.metadata, self._table.io, self._table.schema().select("id", "_xact_id"), AlwaysTrue()
        )
        for index, rows in enumerate(_read_in_order(lambda task: scan.to_table([task]), self._files)):
            self._con.register("file_keys", rows)
            self._con.execute(f"INSERT INTO current_keys SELECT id, _xact_id, {index} FROM file_keys")
            self._con.unregister("file_keys")

    def _write(self, chunks: Iterable[pa.Table]) -> list[DataFile]:
        """Write data files (one per chunk and day partition) into the table's location."""
        written: list[DataFile] = []
        for chunk in chunks:
            written += _dataframe_to_data_files(
                self._table.metadata, chunk, self._table.io, self._write_uuid, self._counter
            )
        return written

    def _plan(
        self, removed: list[DataFile], added: list[DataFile], *, inserted: int, updated: int, deleted: int
    ) -> MergePlan:
        gone = {f.file_path for f in removed}
        kept = [t.file for t in self._files if t.file.file_path not in gone]
        after = [*kept, *added]
        return MergePlan(
            removed=removed,
            added=added,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            rows=sum(f.record_count for f in after),
            files=len(after),
            bytes=sum(f.file_size_in_bytes for f in after),
        )


def _read_in_order(
    read: Callable[[FileScanTask], pa.Table], tasks: Sequence[FileScanTask]
) -> Iterator[pa.Table]:
    """`read` each task, in order, on `READ_THREADS` threads, never more than that many read ahead."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        ahead: deque[Future[pa.Table]] = deque()
        for task in tasks:
            if len(ahead) == READ_THREADS:
                yield ahead.popleft().result()
            ahead.append(pool.submit(read, task))
        while ahead:
            yield ahead.popleft().result()
