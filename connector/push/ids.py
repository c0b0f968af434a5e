"""Find the rows of a push whose id a later row repeats, in memory bounded by DuckDB, not by the file.

Rows sharing an id would race each other to the API: which one stays would depend on
batch timing and retries, and the summary would count rows that are not stored. So a
push sends only the last row with each id, and reports the others. Most files' ids fit
in memory; past `MEMORY_IDS` rows they move to an in-memory DuckDB database that spills
to a temporary directory past its memory limit, so a file's ids never outgrow memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

from connector.push.spill import SpillDirectory

if TYPE_CHECKING:
    import pyarrow as pa

MEMORY_LIMIT = "128MB"
# Rows whose ids are held in memory before they move to DuckDB: at most about 40 MB, while repeats are
# looked for (measured for 13-character ids). Below it a push of JSON imports neither DuckDB nor
# pyarrow, which take about 0.2 s together.
MEMORY_IDS = 250_000
_APPEND_ROWS = 65_536
_EXAMPLE_ROWS = 5


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Rows left out because a later row of the file has the same id.

    Args:
        rows: how many rows are left out.
        example_id: the id of the first row left out, if any.
        example_rows: the first few rows holding that id (a refused one too, if it replaces the others),
            the last of which is sent if all are listed and it was not refused.
    """

    rows: int = 0
    example_id: str | None = None
    example_rows: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RefusedLast:
    """Ids whose last row in the file was refused by the checks, after valid rows of the id.

    Args:
        ids: how many such ids.
        example_id: the first of them (by its refused row), if any.
        example_row: that refused row.
    """

    ids: int = 0
    example_id: str | None = None
    example_row: int | None = None


class IdIndex:
    """The id of every valid row of a file, by row number, and of the refused rows that have one; a context
    manager that cleans up after itself.

    Args:
        memory_ids: the most rows indexed in memory before the index moves to DuckDB.
        refused_replace: whether a refused row replaces the earlier rows of its id, as the last row of an
            id does (a push that checks every row first: none of them is sent), or not (one that sends
            each batch once checked: those rows were sent already).
    """

    def __init__(self, memory_ids: int = MEMORY_IDS, *, refused_replace: bool = True) -> None:
        self._memory_ids = memory_ids
        self._refused_replace = refused_replace
        self._ids: _IdsInMemory | _IdsInDuckDB = _IdsInMemory(refused_replace)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ids.close()

    def extend(self, rows: Sequence[int], event_ids: Sequence[str]) -> None:
        """Record that file row `rows[i]` has id `event_ids[i]`; rows must come in increasing order."""
        self._ids.extend(rows, event_ids)
        self._move_when_large()

    def refuse(self, refused_ids: Mapping[int, str]) -> None:
        """Record the ids of refused file rows (by row number, after every row indexed so far)."""
        if refused_ids:
            self._ids.refuse(list(refused_ids), list(refused_ids.values()))
            self._move_when_large()

    def _move_when_large(self) -> None:
        if isinstance(self._ids, _IdsInMemory) and self._ids.rows > self._memory_ids:
            in_duckdb = _IdsInDuckDB(self._refused_replace)
            rows, event_ids, refused_rows, refused_ids = self._ids.pairs()
            in_duckdb.extend(rows, event_ids)
            in_duckdb.refuse(refused_rows, refused_ids)
            self._ids = in_duckdb

    def clear(self) -> None:
        """Forget every row, to index the file again."""
        self._ids.close()
        self._ids = _IdsInMemory(self._refused_replace)

    def duplicates(self) -> Duplicates:
        """Work out which rows a later row with the same id replaces; call once, after the last `extend`."""
        return self._ids.duplicates()

    def superseded_rows(self) -> Iterator[int]:
        """The rows `duplicates` left out, in increasing order, streamed."""
        return self._ids.superseded_rows()

    def left_out_for(self, event_ids: Collection[str]) -> set[str]:
        """Those of `event_ids` whose earlier rows `duplicates` left out."""
        return self._ids.left_out_for(event_ids)

    def refused_last(self) -> RefusedLast:
        """The ids whose last row was refused, after valid rows of theirs (call after the last `extend`)."""
        return self._ids.refused_last()


class _IdsInMemory:
    """Every row and its id in lists, in file order; the rows a later one supersedes are found at the end.

    Appending is a copy in C. Looking for repeats chunk by chunk (a dict of the chunk, tested against
    every id so far, then merged in) hashed each id three times and took a quarter of a push's check.
    """

    def __init__(self, refused_replace: bool) -> None:
        self._rows: list[int] = []
        self._ids: list[str] = []
        self._refused_rows: list[int] = []
        self._refused_ids: list[str] = []
        self._refused_replace = refused_replace
        self._superseded: list[tuple[int, str]] | None = None

    @property
    def rows(self) -> int:
        return len(self._rows) + len(self._refused_rows)

    def close(self) -> None:
        """Nothing to release: the lists go with the index."""

    def extend(self, rows: Sequence[int], event_ids: Sequence[str]) -> None:
        if len(rows) != len(event_ids):
            raise ValueError(f"{len(rows)} rows and {len(event_ids)} ids")
        self._rows += rows
        self._ids += event_ids
        self._superseded = None

    def refuse(self, rows: list[int], event_ids: list[str]) -> None:
        self._refused_rows += rows
        self._refused_ids += event_ids
        self._superseded = None

    def pairs(self) -> tuple[list[int], list[str], list[int], list[str]]:
        """Every valid row indexed and its id, then every refused one and its id."""
        return self._rows, self._ids, self._refused_rows, self._refused_ids

    def duplicates(self) -> Duplicates:
        superseded = self._find_superseded()
        if not superseded:
            return Duplicates()
        example_id = superseded[0][1]
        rows = [row for row, event_id in zip(self._rows, self._ids, strict=True) if event_id == example_id]
        if self._refused_replace:
            refused = zip(self._refused_rows, self._refused_ids, strict=True)
            rows = sorted(rows + [row for row, event_id in refused if event_id == example_id])
        return Duplicates(len(superseded), example_id, rows[:_EXAMPLE_ROWS])

    def superseded_rows(self) -> Iterator[int]:
        return (row for row, _ in self._find_superseded())

    def left_out_for(self, event_ids: Collection[str]) -> set[str]:
        return {event_id for _, event_id in self._find_superseded()}.intersection(event_ids)

    def refused_last(self) -> RefusedLast:
        if not self._refused_rows:
            return RefusedLast()
        last_valid = dict(zip(self._ids, self._rows, strict=True))
        last_refused = dict(zip(self._refused_ids, self._refused_rows, strict=True))
        found = sorted(
            (row, event_id) for event_id, row in last_refused.items() if last_valid.get(event_id, row) < row
        )
        return RefusedLast(len(found), found[0][1], found[0][0]) if found else RefusedLast()

    def _find_superseded(self) -> list[tuple[int, str]]:
        """Each valid (row, id) a later row with the same id supersedes, in increasing row order."""
        if self._superseded is None:
            refused = self._refused_replace and bool(self._refused_rows)
            if not refused and len(set(self._ids)) == len(self._ids):
                # Ids rarely repeat: then one set, built in C, is all it takes (half a dict's time).
                self._superseded = []
            else:
                # Not kept: the lists hold what the sending needs, and the dict would be as large again.
                last_row = dict(zip(self._ids, self._rows, strict=True))
                if refused:
                    for event_id, row in zip(self._refused_ids, self._refused_rows, strict=True):
                        if last_row.get(event_id, row) < row:
                            last_row[event_id] = row
                self._superseded = [
                    (row, event_id)
                    for row, event_id in zip(self._rows, self._ids, strict=True)
                    if last_row[event_id] != row
                ]
        return self._superseded


class _IdsInDuckDB:
    """Every (id, row) in a DuckDB table, under its memory limit."""

    def __init__(self, refused_replace: bool) -> None:
        # Imported here: a push whose ids fit in memory does without DuckDB.
        from connector.duckdb_connect import connect

        self._spill = SpillDirectory("ids")
        self._db = connect(memory_limit=MEMORY_LIMIT, threads=1, temp_directory=self._spill.name)
        for table in ("ids", "refused"):
            self._db.execute(f"CREATE TABLE {table} (id VARCHAR NOT NULL, row UBIGINT NOT NULL)")
        self._refused_replace = refused_replace
        self._pending_ids: list[str] = []
        self._pending_rows: list[int] = []

    def close(self) -> None:
        self._db.close()
        self._spill.cleanup()

    def extend(self, rows: Sequence[int], event_ids: Sequence[str]) -> None:
        self._pending_ids += event_ids
        self._pending_rows += rows
        if len(self._pending_rows) >= _APPEND_ROWS:
            self._append()

    def refuse(self, rows: list[int], event_ids: list[str]) -> None:
        # Few, as a rule (rows the checks refused): appended at once.
        if rows:
            self._db.from_arrow(_ids_table(event_ids, rows)).insert_into("refused")

    def duplicates(self) -> Duplicates:
        self._append()
        indexed = "SELECT id, row FROM ids"
        if self._refused_replace:
            indexed += " UNION ALL SELECT id, row FROM refused"
        self._db.execute(
            f"""
            CREATE OR REPLACE TABLE superseded AS
            WITH last AS (SELECT id, max(row) AS last_row FROM ({indexed}) GROUP BY id HAVING count(*) > 1)
            SELECT ids.row, ids.id FROM ids JOIN last USING (id) WHERE ids.row < last.last_row
            """
        )
        first = self._db.execute("SELECT count(*), arg_min(id, row) FROM superseded").fetchone()
        count, example = (0, None) if first is None else first
        if not count:
            return Duplicates()
        rows = self._db.execute(
            f"SELECT row FROM ({indexed}) WHERE id = ? ORDER BY row LIMIT ?", [example, _EXAMPLE_ROWS]
        ).fetchall()
        return Duplicates(int(count), str(example), [int(row) for (row,) in rows])

    def superseded_rows(self) -> Iterator[int]:
        result = self._db.execute("SELECT row FROM superseded ORDER BY row")
        while rows := result.fetchmany(_APPEND_ROWS):
            yield from (int(row) for (row,) in rows)

    def left_out_for(self, event_ids: Collection[str]) -> set[str]:
        found = self._db.execute(
            "SELECT DISTINCT id FROM superseded WHERE list_contains(?, id)", [list(event_ids)]
        ).fetchall()
        return {str(event_id) for (event_id,) in found}

    def refused_last(self) -> RefusedLast:
        self._append()
        found = self._db.execute(
            """
            WITH last_refused AS (SELECT id, max(row) AS row FROM refused GROUP BY id),
            last_valid AS (SELECT id, max(row) AS row FROM ids GROUP BY id),
            after_valid AS (
                SELECT r.id, r.row FROM last_refused AS r JOIN last_valid AS v USING (id) WHERE v.row < r.row
            )
            SELECT count(*), arg_min(id, row), min(row) FROM after_valid
            """
        ).fetchone()
        if found is None or not found[0]:
            return RefusedLast()
        return RefusedLast(int(found[0]), str(found[1]), int(found[2]))

    def _append(self) -> None:
        if self._pending_rows:
            self._db.from_arrow(_ids_table(self._pending_ids, self._pending_rows)).insert_into("ids")
            self._pending_ids, self._pending_rows = [], []


def _ids_table(event_ids: list[str], rows: list[int]) -> pa.Table:
    import pyarrow as pa  # imported here: a push whose ids fit in memory does without pyarrow

    return pa.table({"id": pa.array(event_ids, pa.string()), "row": pa.array(rows, pa.uint64())})
