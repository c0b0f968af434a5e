"""`sync_state`: per object, the version the warehouse holds (the watermark).

It lives in the DuckDB file and is written in the same transaction as the rows
it describes, so the watermark can never run ahead of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from schemas.api import ObjectType


@dataclass(frozen=True)
class SyncState:
    """What the warehouse holds for one object.

    Args:
        object_type: project_logs, experiment or dataset.
        object_id: the object's id.
        project_id: its project.
        table_name: the table its rows are in.
        version: the pinned `_xact_id` of the last committed sync (None: the object was empty).
        rows: rows of the object in its table after that sync.
        last_fetched_rows: row versions the last sync received.
        last_pages: fetch pages the last sync requested.
        synced_at: when the last sync committed.
        parquet_version: the version the object's Parquet file holds (None: not written).
    """

    object_type: ObjectType
    object_id: str
    project_id: str | None
    table_name: str
    version: int | None
    rows: int
    last_fetched_rows: int
    last_pages: int
    synced_at: datetime
    parquet_version: int | None

    @property
    def parquet_stale(self) -> bool:
        """True when the Parquet file is behind the DuckDB table (a crash between the two writes)."""
        return self.parquet_version != self.version


_COLUMNS = (
    "object_type, object_id, project_id, table_name, version, rows, last_fetched_rows, last_pages, "
    "synced_at, parquet_version"
)


def read_states(connection: duckdb.DuckDBPyConnection) -> dict[tuple[ObjectType, str], SyncState]:
    """Return every object's state, keyed by (object type, object id)."""
    rows = connection.execute(f"SELECT {_COLUMNS} FROM sync_state").fetchall()
    states = [SyncState(ObjectType(row[0]), *row[1:]) for row in rows]
    return {(state.object_type, state.object_id): state for state in states}


def write_state(connection: duckdb.DuckDBPyConnection, state: SyncState) -> None:
    """Insert or replace one object's state (inside the caller's transaction)."""
    connection.execute(
        f"INSERT OR REPLACE INTO sync_state ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            state.object_type.value,
            state.object_id,
            state.project_id,
            state.table_name,
            state.version,
            state.rows,
            state.last_fetched_rows,
            state.last_pages,
            state.synced_at,
            state.parquet_version,
        ],
    )


def mark_parquet_written(
    connection: duckdb.DuckDBPyConnection, object_type: ObjectType, object_id: str, version: int | None
) -> None:
    """Record that the object's Parquet file now holds `version`."""
    connection.execute(
        "UPDATE sync_state SET parquet_version = ? WHERE object_type = ? AND object_id = ?",
        [version, object_type.value, object_id],
    )


def delete_state(connection: duckdb.DuckDBPyConnection, object_type: ObjectType, object_id: str) -> None:
    """Forget an object (it was deleted upstream)."""
    connection.execute(
        "DELETE FROM sync_state WHERE object_type = ? AND object_id = ?", [object_type.value, object_id]
    )
