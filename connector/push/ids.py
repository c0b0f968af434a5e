"""Find the rows of a push whose id a later row repeats, in memory bounded by DuckDB, not by the file.

Rows sharing an id would race each other to the API: which one stays would depend on
batch timing and retries, and the summary would count rows that are not stored. So a
push sends only the last row with each id, and reports the others. A file's ids can
outgrow memory, so they go to an in-memory DuckDB database that spills to a temporary
directory past its memory limit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import duckdb
import pyarrow as pa

MEMORY_LIMIT = "128MB"
_APPEND_ROWS = 65_536
_EXAMPLE_ROWS = 5


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Rows left out because a later row of the file has the same id.

    Args:
        rows: how many rows are left out.
        example_id: the id of the first row left out, if any.
        example_rows: the first few rows holding that id, the last of which is sent if all are listed.
    """

    rows: int = 0
    example_id: str | None = None
    example_rows: list[int] = field(default_factory=list)


class IdIndex:
    """The id of every valid row of a file, by row number; a context manager that cleans up after itself."""

    def __init__(self) -> None:
        self._spill = tempfile.TemporaryDirectory(prefix="bt-sync-push-ids-")
        self._db = duckdb.connect(
            config={"memory_limit": MEMORY_LIMIT, "threads": 1, "temp_directory": self._spill.name}
        )
        self._db.execute("CREATE TABLE ids (id VARCHAR NOT NULL, row UBIGINT NOT NULL)")
        self._pending_ids: list[str] = []
        self._pending_rows: list[int] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._db.close()
        self._spill.cleanup()

    def extend(self, rows: Sequence[int], event_ids: Sequence[str]) -> None:
        """Record that file row `rows[i]` has id `event_ids[i]`; rows must come in increasing order."""
        self._pending_ids += event_ids
        self._pending_rows += rows
        if len(self._pending_rows) >= _APPEND_ROWS:
            self._append()

    def clear(self) -> None:
        """Forget every row, to index the file again."""
        self._pending_ids, self._pending_rows = [], []
        self._db.execute("DELETE FROM ids")

    def duplicates(self) -> Duplicates:
        """Work out which rows a later row with the same id replaces; call once, after the last `extend`."""
        self._append()
        self._db.execute(
            """
            CREATE OR REPLACE TABLE superseded AS
            WITH last AS (SELECT id, max(row) AS last_row FROM ids GROUP BY id HAVING count(*) > 1)
            SELECT ids.row, ids.id FROM ids JOIN last USING (id) WHERE ids.row < last.last_row
            """
        )
        first = self._db.execute("SELECT count(*), arg_min(id, row) FROM superseded").fetchone()
        count, example = (0, None) if first is None else first
        if not count:
            return Duplicates()
        rows = self._db.execute(
            "SELECT row FROM ids WHERE id = ? ORDER BY row LIMIT ?", [example, _EXAMPLE_ROWS]
        ).fetchall()
        return Duplicates(int(count), str(example), [int(row) for (row,) in rows])

    def superseded_rows(self) -> Iterator[int]:
        """The rows `duplicates` left out, in increasing order, streamed."""
        result = self._db.execute("SELECT row FROM superseded ORDER BY row")
        while rows := result.fetchmany(_APPEND_ROWS):
            yield from (int(row) for (row,) in rows)

    def _append(self) -> None:
        if self._pending_rows:
            table = pa.table(
                {
                    "id": pa.array(self._pending_ids, pa.string()),
                    "row": pa.array(self._pending_rows, pa.uint64()),
                }
            )
            self._db.from_arrow(table).insert_into("ids")
            self._pending_ids, self._pending_rows = [], []
