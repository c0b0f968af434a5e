"""In-memory DuckDBs shared by a process: one for the small jobs of a sync (catalog files, empty schema
files), one per spill directory for merges.

Opening a DuckDB database costs 12-40 ms; a connection to one already open, under 2 ms. A sync
opened one for each of the seven catalog tables: 0.25 s of the 0.95 s a sync of two unchanged
objects took; and one for each object's merge: 12 ms of the 50 ms a sync of a small experiment took.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import duckdb

from connector.duckdb_connect import connect

# A merge of a whole object (a full read) may not fit in memory: DuckDB spills beyond this.
MERGE_MEMORY_LIMIT = "256MB"


@cache
def _database() -> duckdb.DuckDBPyConnection:
    # One thread: its jobs are small, and DuckDB wakes its other threads for every statement (the 200
    # statements writing the analysts' file on a first sync took 79-81 ms of CPU with two, 60-62 with one).
    return connect(threads=1)


@contextmanager
def scratch_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of its own (settings, registered tables) to the process's in-memory DuckDB, in UTC.

    For jobs that create nothing but what they register, which goes when the connection closes.
    Jobs that need a memory limit or a spill directory of their own (staging, merging) use databases
    of their own.
    """
    with _database().cursor() as con:
        con.execute("SET TimeZone = 'UTC'")
        yield con


@cache
def _merge_database(spill: Path) -> duckdb.DuckDBPyConnection:
    return connect(memory_limit=MERGE_MEMORY_LIMIT, temp_directory=str(spill))


def merge_connection(scratch: Path) -> duckdb.DuckDBPyConnection:
    """A connection of its own (temporary tables, settings) to the process's merge database.

    Args:
        scratch: the merge's scratch directory (`…/merge/<object id>`). The merges of every object
            share the spill directory beside it, and a database, which spills there past
            `MERGE_MEMORY_LIMIT`: DuckDB names its spill files by process, and deletes a connection's
            when it closes, so processes may share the directory.
    """
    spill = scratch.parent / "spill"
    # DuckDB creates it once: deleted since (with the state directory's staging), spilling would fail.
    spill.mkdir(parents=True, exist_ok=True)
    return _merge_database(spill).cursor()


@contextmanager
def object_scratch(scratch: Path) -> Iterator[None]:
    """The merge's own directory (`…/merge/<object id>`), emptied before the merge and removed after it.

    Only the merge of the object uses it (its caller holds the object's lock): what is there was left by
    a merge killed before it cleaned up (a copy of its changed rows, a version half written). Kept after
    the merge, one stayed for every object ever synced, those removed upstream too.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
