"""A merge of many new rows stays within its memory limit, and one that cannot fails only its object."""

from __future__ import annotations

import duckdb
import httpx
import pytest

from connector.config import WarehouseSettings
from connector.destinations import parquet_merge, scratch
from connector.emulator import Emulator
from tests.helpers import query, sync


def insert_rows(emulator: Emulator, project_id: str, start: int, count: int) -> None:
    """Rows `r<start>`... of one span each, inserted over HTTP in requests of a thousand, as a busy app logs
    them."""
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {emulator.api_key}"}) as http:
        for first in range(start, start + count, 1000):
            rows = [{"id": f"r{n}", "input": n} for n in range(first, min(start + count, first + 1000))]
            http.post(f"/v1/project_logs/{project_id}/insert", json={"events": rows}).raise_for_status()


def test_three_times_an_object_s_rows_merge_into_it_within_the_memory_limit(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each of DuckDB's threads kept a writer for every file the new rows went to, and the rows picked kept
    # their part's path: 600,000 new rows into an object of 200,000 ran out of the merge's 256 MB, on every
    # rerun and with --full, the new rows never landed, and the run stopped without its summary. A quarter
    # of the rows under a quarter of the limit runs out the same way (checked, with the merge's writes on
    # DuckDB's two threads again), in a quarter of the time.
    monkeypatch.setattr(scratch, "MERGE_MEMORY_LIMIT", "64MB")
    project = emulator.store.create_project("busy")
    insert_rows(emulator, project["id"], 0, 50_000)
    sync(emulator, warehouse)
    insert_rows(emulator, project["id"], 50_000, 150_000)
    (synced,) = sync(emulator, warehouse).objects
    assert (synced.status, synced.inserted, synced.rows) == ("synced", 150_000, 200_000), synced.error
    assert query(warehouse, "SELECT count(*), count(DISTINCT id), sum(input::INTEGER) FROM project_logs") == [
        (200_000, 200_000, sum(range(200_000)))
    ]


def test_a_merge_out_of_memory_fails_its_object_and_the_rerun_merges_what_it_read(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB's out-of-memory error stopped the whole run: no summary, the object unnamed.
    busy, quiet = (emulator.store.create_project(name) for name in ("busy", "quiet"))
    for project in (busy, quiet):
        insert_rows(emulator, project["id"], 0, 10)
    sync(emulator, warehouse)
    for project in (busy, quiet):
        insert_rows(emulator, project["id"], 10, 10)
    write_changes = parquet_merge._Merge._write_changes

    def out_of_memory_for_busy(merge: parquet_merge._Merge) -> None:
        if busy["id"] in str(merge._changes):
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate data of size 16.0 MiB")
        write_changes(merge)

    monkeypatch.setattr(parquet_merge._Merge, "_write_changes", out_of_memory_for_busy)
    summary = sync(emulator, warehouse)
    outcome = {o.name: (o.status, o.error) for o in summary.objects}
    assert outcome["quiet"] == ("synced", None)
    status, error = outcome["busy"]
    assert status == "failed" and error is not None
    assert error.startswith(
        f"cannot merge the rows read into project_logs 'busy' ({busy['id']}): Out of Memory"
    )
    assert error.endswith("; they stay staged for the next sync")
    monkeypatch.undo()
    (rerun,) = [o for o in sync(emulator, warehouse).objects if o.name == "busy"]
    assert (rerun.status, rerun.resumed, rerun.rows) == ("synced", True, 20)
