"""Opening the DuckDB file: schema, single-writer lock waits, clear failures.

DuckDB lets one process hold a file for writing and then no other process at
all, not even a reader. bt-sync therefore opens its connection only to commit
and closes it between objects, and when another process holds the file it
waits with backoff before failing with a message that says who to stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from connector.errors import WarehouseError, WarehouseLocked
from schemas.tables import CATALOG_TABLES, EVENT_STREAMS, SYNC_STATE_DDL, create_table_sql

DEFAULT_LOCK_WAIT_S = 60.0
# Bounded so a sync on a small worker does not take the machine; spills go to the temp directory.
DEFAULT_MEMORY_LIMIT = "512MB"


def _is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


class Warehouse:
    """The DuckDB database file bt-sync writes.

    Args:
        path: the database file; its directory is created if missing.
        lock_wait_s: how long to wait for another process to release the file.
        memory_limit: DuckDB's memory limit for merges.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.path = path
        self._lock_wait_s = lock_wait_s
        self._memory_limit = memory_limit
        self._schema_ready = False

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file (waiting for other processes' locks), with every table created."""
        if read_only and not self.path.exists():
            raise WarehouseError(f"{self.path} does not exist yet: run `bt-sync sync` first")
        connection = self._open(read_only)
        try:
            if not read_only and not self._schema_ready:
                _create_schema(connection)
                self._schema_ready = True
            yield connection
        finally:
            connection.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WarehouseError(f"cannot create the directory of {self.path}: {error.strerror}") from None
        config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": self._memory_limit}
        if not read_only:
            config["temp_directory"] = str(self.path.with_name(self.path.name + ".tmp"))
        retrying = Retrying(
            retry=retry_if_exception(_is_lock_conflict),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(self._lock_wait_s),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.IOException as error:
            if _is_lock_conflict(error):
                raise WarehouseLocked(
                    f"{self.path} is held by another process (a running sync, a Dagster run or an open "
                    f"DuckDB session) and was still locked after {self._lock_wait_s:.0f}s; close it and retry"
                ) from None
            raise WarehouseError(f"cannot open {self.path}: {_first_line(error)}") from None
        except duckdb.Error as error:
            raise WarehouseError(
                f"cannot open {self.path} as a DuckDB database ({_first_line(error)}); "
                "is it corrupt or from another DuckDB version? Move it away to start afresh"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")


def _create_schema(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(SYNC_STATE_DDL)
    for stream in EVENT_STREAMS.values():
        connection.execute(create_table_sql(stream.table, stream.columns))
    for catalog in CATALOG_TABLES:
        connection.execute(create_table_sql(catalog.table, catalog.columns))


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def arrow_reader(
    connection: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[object] | None = None,
    batch_rows: int = 100_000,
) -> pa.RecordBatchReader:
    """Run `sql` and stream its result as Arrow batches (bounded memory, unlike fetchall)."""
    relation = connection.sql(sql, params=params)
    if relation is None:
        raise WarehouseError(f"DuckDB returned no result for: {sql[:80]}")
    return relation.to_arrow_reader(batch_rows)
