"""Merging staged row versions into the DuckDB event tables.

The staged parts are already typed (see `connector.sync.transform`), so the file is
held only for this: one transaction per object that dedupes the staged versions by `id` keeping the
greatest `_xact_id` (a UBIGINT, so the comparison is numeric), merge only where
the incoming version is newer, optionally delete rows the upstream no longer
has, and write `sync_state` — all committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pyarrow.compute as pc

from connector.destinations.state import SyncState, write_state
from connector.destinations.warehouse import arrow_reader
from connector.sync.extract import ObjectRef
from schemas.tables import EventStream, sql_literal


@dataclass(frozen=True)
class MergeResult:
    """What a merge changed: rows inserted, updated (a newer version), and deleted."""

    inserted: int
    updated: int
    deleted: int
    rows: int


def merge_object(
    connection: duckdb.DuckDBPyConnection,
    ref: ObjectRef,
    parts: list[Path],
    state: SyncState,
    *,
    delete_missing: bool,
) -> MergeResult:
    """Merge the staged `parts` of `ref` and commit them with `state` in one transaction.

    Args:
        connection: an open read-write connection.
        ref: the object.
        parts: staged Parquet parts (rows above the watermark, or the whole object).
        state: the `sync_state` row to commit; its `rows` is filled in here.
        delete_missing: the parts hold the whole object (a full read), so rows not in
            them were deleted upstream and are removed.
    """
    stream = ref.stream
    table = f'"{stream.table}"'
    scope = f"{stream.key_column} = {sql_literal(ref.object_id)}"
    connection.execute("BEGIN TRANSACTION")
    try:
        inserted = updated = deleted = 0
        if parts:
            if delete_missing:
                deleted = _count(
                    connection,
                    f"DELETE FROM {table} WHERE {scope} AND id NOT IN "
                    f"(SELECT id FROM read_parquet({_path_list(parts)})) RETURNING 1",
                )
            # Part by part, so the merge's memory follows a part, not the object (DuckDB does not
            # spill a MERGE). Merging only newer versions makes the order of the parts irrelevant.
            for part in parts:
                part_inserted, part_updated = _merge(connection, table, stream, _incoming_sql(part))
                inserted += part_inserted
                updated += part_updated
        elif delete_missing:
            deleted = _count(connection, f"DELETE FROM {table} WHERE {scope} RETURNING 1")
        rows = _scalar(connection, f"SELECT count(*) FROM {table} WHERE {scope}")
        write_state(connection, replace(state, rows=rows))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return MergeResult(inserted=inserted, updated=updated, deleted=deleted, rows=rows)


def delete_object(connection: duckdb.DuckDBPyConnection, stream: EventStream, object_id: str) -> int:
    """Delete every row of an object that no longer exists upstream; returns rows deleted."""
    return _count(
        connection,
        f'DELETE FROM "{stream.table}" WHERE {stream.key_column} = {sql_literal(object_id)} RETURNING 1',
    )


def _merge(
    connection: duckdb.DuckDBPyConnection, table: str, stream: EventStream, source: str
) -> tuple[int, int]:
    keys = f"t.{stream.key_column} = i.{stream.key_column} AND t.id = i.id"
    reader = arrow_reader(
        connection,
        f"MERGE INTO {table} AS t USING ({source}) AS i ON {keys} "
        "WHEN MATCHED AND i._xact_id > t._xact_id THEN UPDATE "
        "WHEN NOT MATCHED THEN INSERT "
        "RETURNING merge_action",
    )
    inserted = updated = 0
    for batch in reader:
        actions = batch.column(0)
        inserted += pc.sum(pc.equal(actions, "INSERT")).as_py() or 0
        updated += pc.sum(pc.equal(actions, "UPDATE")).as_py() or 0
    return inserted, updated


def _incoming_sql(part: Path) -> str:
    """SELECT of the newest staged version per id in a part, in the table's column order."""
    return (
        f"SELECT *, now() AS _synced_at FROM read_parquet({sql_literal(str(part))}) "
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _xact_id DESC) = 1"
    )


def _count(connection: duckdb.DuckDBPyConnection, returning_sql: str) -> int:
    return sum(batch.num_rows for batch in arrow_reader(connection, returning_sql))


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = connection.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _path_list(paths: list[Path]) -> str:
    return "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"
