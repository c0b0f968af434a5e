"""The Parquet tree: writes follow the change, files stay bounded, plain engines read it, crashes heal."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from connector.config import WarehouseSettings
from connector.destinations.base import ObjectRef, SyncState
from connector.destinations.file_size import file_target_rows
from connector.destinations.filesystem import Root
from connector.destinations.parquet_tree import ABANDONED_GRACE, ObjectRecord, ParquetTree
from connector.emulator import Emulator, ListQuery
from connector.errors import WarehouseError, WarehouseLocked
from connector.sync.catalog import discover_catalog, write_catalog
from connector.wiring import open_destination
from schemas.kinds import EXPERIMENT, PROJECT
from tests.helpers import (
    EVERY_XACT,
    LOGS,
    LOGS_REF,
    all_tables,
    event,
    event_tables,
    fast_client,
    fresh_sync_tables,
    hourly_change,
    logs_state,
    query,
    staged,
    sync,
    warehouse_in,
)

# An object of this size, changed by 1-2%, must not rewrite more than a tenth of its bytes.
OBJECT_ROWS = 30_000
# Syncs of 1,500 new rows each that grow an object: the first load, then incremental syncs.
GROWTH_SYNCS = 6


def data_files(settings: WarehouseSettings, table: str) -> dict[str, tuple[int, int]]:
    """Every data file of a table: path -> (inode, size); a rewritten file gets a new inode."""
    root = Path(settings.tables_root) / table
    return {
        str(path): (path.stat().st_ino, path.stat().st_size)
        for path in root.glob("*/*.parquet")
        if "__schema__" not in str(path)
    }


def test_name_value_directories_on_the_warehouse_s_path_are_no_columns(
    emulator: Emulator, tmp_path: Path
) -> None:
    # DuckDB's Hive partitioning took them for columns: under `lake/project_id=x/org_id=acme/`, every row's
    # `project_id` and `org_id` read `x` and `acme`, the catalog's too, and a merge wrote `acme` into files.
    project = emulator.store.create_project("p")
    emulator.store.generate_logs(project["id"], 300, update_fraction=0.1, rng_seed=1)
    lake = warehouse_in(tmp_path / "lake" / "project_id=x" / "org_id=acme")
    sync(emulator, lake)
    hourly_change(emulator, project["id"], new_rows=10, updated_rows=5)
    assert sync(emulator, lake).objects[0].updated == 5  # merged, not loaded afresh
    reference = warehouse_in(tmp_path / "plain")
    sync(emulator, reference)
    assert all_tables(lake) == all_tables(reference)


def test_an_incremental_sync_writes_bytes_in_proportion_to_the_change(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    busy = emulator.store.create_project("busy")
    quiet = emulator.store.create_project("quiet")
    emulator.store.generate_logs(busy["id"], OBJECT_ROWS, update_fraction=0.05, rng_seed=1)
    emulator.store.generate_logs(quiet["id"], 2_000, update_fraction=0.0, rng_seed=1)
    sync(emulator, warehouse, kinds=frozenset({"logs"}))
    before = data_files(warehouse, "project_logs")
    total_bytes = sum(size for _, size in before.values())
    hourly_change(emulator, busy["id"], new_rows=OBJECT_ROWS // 100, updated_rows=OBJECT_ROWS // 200)
    summary = sync(emulator, warehouse, kinds=frozenset({"logs"}))
    after = data_files(warehouse, "project_logs")
    rewritten = sum(size for path, (inode, size) in after.items() if before.get(path, (None, 0))[0] != inode)
    by_name = {o.name: o for o in summary.objects}
    assert by_name["busy"].inserted == OBJECT_ROWS // 100 and by_name["busy"].updated == OBJECT_ROWS // 200
    assert 0 < rewritten <= total_bytes // 10, f"rewrote {rewritten:,} of {total_bytes:,} bytes"
    assert by_name["busy"].bytes_written == rewritten
    quiet_files = {path: value for path, value in after.items() if quiet["id"] in path}
    assert quiet_files == {path: value for path, value in before.items() if quiet["id"] in path}
    assert by_name["quiet"].bytes_written == 0


def test_files_stay_bounded_as_an_object_grows(emulator: Emulator, warehouse: WarehouseSettings) -> None:
    project = emulator.store.create_project("growing")
    first_load: dict[str, int] = {}
    # Each sync adds more rows than twice a file's target: a file that took them all (no target, or
    # its rows not counted against it) fails the bound at the first incremental sync, one kept open
    # across syncs taking a target's worth each time at the second. Six syncs, not twelve (a second
    # each), still grow the object sixfold.
    for _ in range(GROWTH_SYNCS):
        emulator.store.generate_logs(project["id"], 1_500, update_fraction=0.0)
        sync(emulator, warehouse, kinds=frozenset({"logs"}))
        first_load = first_load or rows_per_file(warehouse)
    total = query(warehouse, "SELECT count(*) FROM project_logs")[0][0]
    assert total == GROWTH_SYNCS * 1_500
    # A first load keeps its pages as files (a page once pages stop doubling). After it, a file
    # takes new rows only while below the target size of the object it belongs to.
    grown = {name: rows for name, rows in rows_per_file(warehouse).items() if first_load.get(name) != rows}
    assert len(grown) > 2
    assert max(grown.values()) <= 2 * file_target_rows(total)


def rows_per_file(warehouse: WarehouseSettings) -> dict[str, int]:
    files = f"read_parquet('{warehouse.tables_root}/project_logs/*/*.parquet', filename = true)"
    return dict(query(warehouse, f"SELECT filename, count(*) FROM {files} GROUP BY filename"))


def test_plain_engines_read_the_tree_as_the_deduplicated_table(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    project = demo_emulator.store.list_objects("project", ListQuery())[0]
    rows = demo_emulator.store.live_rows("project_logs", project["id"])
    demo_emulator.store.insert(
        "project_logs", project["id"], [{"id": rows[0]["id"], "_is_merge": True, "tags": ["x"]}]
    )
    demo_emulator.store.insert("project_logs", project["id"], [{"id": rows[1]["id"], "_object_delete": True}])
    sync(demo_emulator, warehouse, reconcile=True)
    root = warehouse.tables_root
    for table, key in (("project_logs", "project_id"), ("experiment_events", "experiment_id")):
        expected = sorted(query(warehouse, f"SELECT {key}, id, _xact_id FROM {table}"))
        assert expected
        with duckdb.connect() as con:
            plain = con.execute(
                f"SELECT {key}, id, _xact_id FROM read_parquet('{root}/{table}/*/*.parquet', "
                "hive_partitioning = true)"
            ).fetchall()
        arrow = ds.dataset(f"{root}/{table}", format="parquet", partitioning="hive").to_table(
            columns=[key, "id", "_xact_id"]
        )
        polars = pl.scan_parquet(f"{root}/{table}/*/*.parquet", hive_partitioning=True).select(
            key, "id", "_xact_id"
        )
        assert sorted(plain) == expected
        assert sorted((r[key], r["id"], r["_xact_id"]) for r in arrow.to_pylist()) == expected
        assert sorted(polars.collect().iter_rows()) == expected
    # The JSON columns are binary to Polars; cast, they are the text DuckDB reads (as the README says).
    texts = pl.scan_parquet(f"{root}/project_logs/*/*.parquet", hive_partitioning=True).select(
        "id", pl.col("metadata").cast(pl.String)
    )
    assert sorted(texts.collect().iter_rows()) == sorted(
        query(warehouse, "SELECT id, metadata FROM project_logs")
    )


def test_a_commit_cut_short_before_the_tree_caught_up_is_finished_by_the_next_sync(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = emulator.store.create_project("cut")
    emulator.store.generate_logs(project["id"], 3_000, update_fraction=0.0, rng_seed=4)
    sync(emulator, warehouse)
    emulator.store.generate_logs(project["id"], 1_500, update_fraction=0.0, rng_seed=5)
    real_replace = ParquetTree._replace_with_version

    def crash_after_first(self: ParquetTree, where: Any, name: str, version: str) -> None:
        real_replace(self, where, name, version)
        raise KeyboardInterrupt  # the process dies between two files of one commit

    monkeypatch.setattr(ParquetTree, "_replace_with_version", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        sync(emulator, warehouse)
    monkeypatch.undo()
    directory = Path(warehouse.tables_root, "project_logs", f"project_id={project['id']}")
    assert '"unpublished":["' in (directory / "_sync_state.json").read_text()
    # Committed: the DuckDB views already show the new rows; plain readers see them after the next sync.
    assert query(warehouse, "SELECT count(*) FROM project_logs")[0][0] == 4_500
    sync(emulator, warehouse)
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)
    with duckdb.connect() as con:
        plain = con.execute(
            f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{directory}/*.parquet')"
        ).fetchone()
    assert plain == (4_500, 4_500)
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def two_synced_projects(
    emulator: Emulator, warehouse: WarehouseSettings, name: str
) -> tuple[dict[str, Any], dict[str, Any], ObjectRecord]:
    """Projects `name` and "other", 3,000 log rows each, synced; `name`'s commit record."""
    first, other = (emulator.store.create_project(project) for project in (name, "other"))
    for project in (first, other):
        emulator.store.generate_logs(project["id"], 3_000, update_fraction=0.0, rng_seed=4)
    sync(emulator, warehouse)
    directory = Path(warehouse.tables_root, "project_logs", f"project_id={first['id']}")
    return first, other, ObjectRecord.model_validate_json((directory / "_sync_state.json").read_bytes())


def versions_of(warehouse: WarehouseSettings, project: dict[str, Any]) -> Path:
    """The directory of a project's log files' versions."""
    return Path(warehouse.tables_root, "_bt_sync", "project_logs", f"project_id={project['id']}")


@pytest.mark.parametrize(
    "deleted",
    [
        "a current version",
        "a file of the tree",
        "a file of the tree replaced",
        "a file of the tree copied over",
        "a current version cut short",
    ],
)
def test_a_file_deleted_by_hand_is_rebuilt_by_the_next_sync(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, deleted: str
) -> None:
    lost, other, record = two_synced_projects(emulator, warehouse, "lost")
    assert len(record.files) > 1
    in_tree = Path(warehouse.tables_root, "project_logs", f"project_id={lost['id']}", record.files[0].name)
    if deleted == "a current version":
        (versions_of(warehouse, lost) / record.files[0].version).unlink()
    elif deleted == "a current version cut short":
        # Its footer gone: a DuckDB session's every query of the table failed, the rebuilt object's too,
        # until `maintain` deleted it an hour later (a query reads every version's footer).
        os.truncate(versions_of(warehouse, lost) / record.files[0].version, record.files[0].bytes - 8)
    elif deleted == "a file of the tree":
        in_tree.unlink()
    else:
        # Restored from an older copy, a row less: it stayed, `--full` too, the checks (reading the
        # versions) green, where other engines read it.
        held = pq.read_table(in_tree)
        older = tmp_path / "backup.parquet"
        pq.write_table(held.slice(0, held.num_rows - 1), older)
        if deleted == "a file of the tree replaced":
            older.replace(in_tree)
        else:
            # `cp` writes into the file it copies over: the tree's link, and so its version. The row was
            # lost for good, every check green.
            shutil.copyfile(older, in_tree)
            assert in_tree.stat().st_nlink == 2
    emulator.store.generate_logs(other["id"], 10, update_fraction=0.0, rng_seed=5)
    summary = sync(emulator, warehouse)  # incremental: it failed on every run, for every object
    assert not [o for o in summary.objects if o.error]
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)
    assert query(warehouse, "SELECT sum(rows)::BIGINT FROM sync_state") == [(6_010,)]
    assert query(warehouse, "SELECT count(*) FROM project_logs") == [(6_010,)]
    root = warehouse.tables_root
    with duckdb.connect() as con:  # other engines read the tree whole again, without stale copies
        plain = con.execute(
            f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{root}/project_logs/*/*.parquet')"
        ).fetchone()
    assert plain == (6_010, 6_010)


def test_a_warehouse_copied_without_its_links_is_linked_again_without_a_warning(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lost, _, record = two_synced_projects(emulator, warehouse, "copied")
    # `cp -r`: every tree file a copy of its version's bytes, each of them named "deleted or replaced".
    copy = warehouse_in(tmp_path, "copy")
    shutil.copytree(warehouse.tables_root, copy.tables_root)
    tree_file = Path(copy.tables_root, "project_logs", f"project_id={lost['id']}", record.files[0].name)
    assert tree_file.stat().st_nlink == 1
    with caplog.at_level(logging.WARNING, logger="bt_sync"):
        sync(emulator, copy)
    assert "putting back" not in caplog.text and tree_file.stat().st_nlink == 2
    assert event_tables(copy) == event_tables(warehouse)


@pytest.mark.parametrize("full", [False, True])
def test_a_file_replaced_from_outside_with_a_row_less_is_counted_anew_by_the_next_merge(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, full: bool
) -> None:
    # As from an older backup: the next sync inserted the row again, and kept the record's count of the
    # file, one over the table for good (`rows_match_sync_state` failing), --full too.
    restored, _, record = two_synced_projects(emulator, warehouse, "restored")
    # Not the open file, where new rows go: a file the merge rewrites is counted as it is written.
    assert len(record.files) > 1 and record.open_file != record.files[-1].name
    victim = versions_of(warehouse, restored) / record.files[-1].version
    held = pq.read_table(victim)
    pq.write_table(held.slice(0, held.num_rows - 1), victim)
    emulator.store.generate_logs(restored["id"], 10, update_fraction=0.0, rng_seed=5)
    sync(emulator, warehouse, full=full)
    # Its size is not the one committed: the object is rebuilt, an incremental sync's too.
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)
    counted = query(
        warehouse,
        "SELECT s.rows, (SELECT count(*) FROM project_logs AS t WHERE t.project_id = s.object_id) "
        f"FROM sync_state AS s WHERE s.object_id = '{restored['id']}'",
    )
    assert counted[0][0] == counted[0][1]


def test_a_copy_of_an_object_s_directory_beside_it_is_no_object(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied, _, _ = two_synced_projects(emulator, warehouse, "copied")
    directory = Path(warehouse.tables_root, "project_logs", f"project_id={copied['id']}")
    # A backup made beside it: its rows were read twice, its state listed twice, and once the versions
    # its record names were deleted, every query of the table failed naming one.
    for copy in (f"{directory.name}.bak", f"old_{directory.name}", f"experiment_id={copied['id']}"):
        shutil.copytree(directory, directory.with_name(copy))
    expected = fresh_sync_tables(emulator, tmp_path)
    assert event_tables(warehouse) == expected
    assert len(open_destination(warehouse, prepare=False).list_states()) == 2
    assert query(warehouse, "SELECT count(*) FROM sync_state") == [(2,)]
    emulator.store.generate_logs(copied["id"], 10, update_fraction=0.5, rng_seed=5)
    sync(emulator, warehouse)
    monkeypatch.setattr("connector.destinations.parquet_tree.RETIRED_GRACE", timedelta(0))
    assert open_destination(warehouse, prepare=False).maintain(timedelta(0)).files_deleted > 0
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


@pytest.mark.parametrize("full", [False, True])
def test_a_damaged_file_is_set_aside_and_its_object_rebuilt_by_the_same_sync(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, full: bool
) -> None:
    damaged, other, record = two_synced_projects(emulator, warehouse, "damaged")
    victim = versions_of(warehouse, damaged) / record.files[0].version
    data = bytearray(victim.read_bytes())
    data[200:2_000] = bytes(b ^ 0x5A for b in data[200:2_000])  # the first columns': ids and versions
    victim.write_bytes(data)
    with pytest.raises(duckdb.Error):  # so does every query of its rows, until the sync
        query(warehouse, f"SELECT * FROM project_logs WHERE project_id = '{damaged['id']}'")
    for project in (damaged, other):
        emulator.store.generate_logs(project["id"], 10, update_fraction=0.5, rng_seed=5)
    summary = sync(emulator, warehouse, full=full)
    assert {o.name: (o.status, o.mode) for o in summary.objects} == {
        "damaged": ("synced", "full"),
        "other": ("synced", "full" if full else "incremental"),
    }
    assert not victim.exists() and Path(f"{victim}.unreadable").read_bytes() == data
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


def test_a_rebuild_reads_the_whole_history_even_after_an_incremental_read_left_unmerged(
    emulator: Emulator,
    warehouse: WarehouseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = emulator.store.create_project("lost")
    emulator.store.generate_logs(project["id"], 3_000, update_fraction=0.0, rng_seed=4)
    sync(emulator, warehouse)
    emulator.store.generate_logs(project["id"], 10, update_fraction=0.0, rng_seed=5)

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise WarehouseError("cannot write: No space left on device")

    with monkeypatch.context() as failing:  # read down to the watermark, then the merge fails
        failing.setattr(ParquetTree, "merge", full_disk)
        assert [o.status for o in sync(emulator, warehouse).objects] == ["failed"]
    directory = Path(warehouse.tables_root, "project_logs", f"project_id={project['id']}")
    record = ObjectRecord.model_validate_json((directory / "_sync_state.json").read_bytes())
    versions = Path(warehouse.tables_root, "_bt_sync", "project_logs", f"project_id={project['id']}")
    (versions / record.files[0].version).unlink()
    sync(emulator, warehouse)  # its files are incomplete: the narrow read left behind is no rebuild
    assert query(
        warehouse, "SELECT count(*), (SELECT sum(rows)::BIGINT FROM sync_state) FROM project_logs"
    ) == [(3_010, 3_010)]


def _updated_after_a_sync(emulator: Emulator, warehouse: WarehouseSettings, name: str) -> dict[str, Any]:
    """A project whose 50 logs are synced, one of them since updated upstream: the next sync merges."""
    project = emulator.store.create_project(name)
    emulator.store.insert("project_logs", project["id"], [{"id": f"r{i}", "input": i} for i in range(50)])
    sync(emulator, warehouse)
    emulator.store.insert("project_logs", project["id"], [{"id": "r1", "_is_merge": True, "output": "new"}])
    return project


def _fail_at_commit(monkeypatch: pytest.MonkeyPatch, object_id: str, error: BaseException) -> None:
    """Have a merge of `object_id` fail with `error` as it writes its commit record."""
    real_write = Root.write

    def write(self: Root, relative: str, data: bytes, **options: Any) -> None:
        if object_id in relative and relative.endswith("_sync_state.json"):
            raise error
        real_write(self, relative, data, **options)

    monkeypatch.setattr(Root, "write", write)


def test_every_file_of_a_table_lets_every_column_be_null_once_rewritten(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # A rewritten file's columns holding no NULL were written REQUIRED (a first load's are OPTIONAL):
    # pyarrow took one file's schema for the tree, `input` not null, and refused to write what it read.
    project = _updated_after_a_sync(emulator, warehouse, "rewritten")
    emulator.store.insert("project_logs", project["id"], [{"id": "no-input", "output": "only"}])
    sync(emulator, warehouse)
    versions = Path(warehouse.tables_root, "_bt_sync", "project_logs", f"project_id={project['id']}")
    schemas = {path.name: pq.read_schema(path) for path in versions.glob("*.parquet")}
    required = {name: [f.name for f in schema if not f.nullable] for name, schema in schemas.items()}
    # The first load's versions and the rewritten ones (those replaced stay an hour).
    assert len(schemas) >= 2 and not any(required.values()), required


@pytest.mark.parametrize("ended_by", ["an interrupt", "a full disk", "a kill"])
def test_files_of_a_merge_that_never_committed_are_swept(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch, ended_by: str
) -> None:
    project = _updated_after_a_sync(emulator, warehouse, "swept")
    full_disk = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _fail_at_commit(
        monkeypatch, project["id"], full_disk if ended_by == "a full disk" else KeyboardInterrupt()
    )
    if ended_by == "a kill":
        # A killed process deletes nothing on its way out.
        monkeypatch.setattr(ParquetTree, "_drop_uncommitted", lambda *_, **__: None)
    with contextlib.suppress(KeyboardInterrupt):
        sync(emulator, warehouse)
    monkeypatch.undo()
    versions = Path(warehouse.tables_root, "_bt_sync", "project_logs", f"project_id={project['id']}")
    record_path = Path(
        warehouse.tables_root, "project_logs", f"project_id={project['id']}", "_sync_state.json"
    )
    written = {p.name for p in versions.iterdir()}
    uncommitted = {name for name in written if name not in record_path.read_text()}
    # Only a failure for want of room deletes the versions the merge wrote at once (the rerun needs the
    # room); an interrupt (a scheduler's SIGTERM) leaves them for the grace period, as a kill does: a
    # query lists every version as it is planned and opens them as it runs, and one that had listed them
    # failed ("Cannot open file … No such file or directory").
    assert bool(uncommitted) is (ended_by != "a full disk")
    assert query(warehouse, "SELECT output FROM project_logs WHERE id = 'r1'") == [(None,)]
    sync(emulator, warehouse)
    # An uncommitted version is no record's: it stays only for the grace period, invisible to the views.
    assert not uncommitted & set(record_path.read_text().split('"'))
    assert query(warehouse, "SELECT output FROM project_logs WHERE id = 'r1'") == [('"new"',)]


def test_a_merge_failing_again_deletes_what_earlier_failures_left_past_a_grace(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each failed attempt left a copy of every file it rewrote for an hour: a merge failing at each
    # scheduled retry multiplied the object's disk.
    project = _updated_after_a_sync(emulator, warehouse, "retried")
    versions = Path(warehouse.tables_root, "_bt_sync", "project_logs", f"project_id={project['id']}")
    record_path = Path(
        warehouse.tables_root, "project_logs", f"project_id={project['id']}", "_sync_state.json"
    )

    def uncommitted() -> set[str]:
        return {p.name for p in versions.iterdir() if p.name not in record_path.read_text()}

    _fail_at_commit(monkeypatch, project["id"], KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sync(emulator, warehouse)
    first = uncommitted()
    with pytest.raises(KeyboardInterrupt):  # a retry within the grace: a query may still read the first's
        sync(emulator, warehouse)
    second = uncommitted() - first
    assert first and second and uncommitted() == first | second
    aged = time.time() - ABANDONED_GRACE.total_seconds() - 1
    for name in first:
        os.utime(versions / name, (aged, aged))
    with pytest.raises(KeyboardInterrupt):
        sync(emulator, warehouse)
    third = uncommitted() - first - second
    assert third and uncommitted() == second | third
    monkeypatch.undo()
    sync(emulator, warehouse)
    assert query(warehouse, "SELECT output FROM project_logs WHERE id = 'r1'") == [('"new"',)]


def test_the_tree_on_an_s3_compatible_store(
    demo_emulator: Emulator, tmp_path: Path, s3_bucket: pafs.S3FileSystem, caplog: pytest.LogCaptureFixture
) -> None:
    # Credentials and endpoint the standard AWS way (the fixture): nothing secret in the URI.
    fs = s3_bucket
    settings = WarehouseSettings(
        duckdb_path=tmp_path / "w.duckdb", parquet_root="s3://warehouse/bt", state_dir=tmp_path / "state"
    )
    # The two event tables compared below, and their catalog tables: every request goes to the S3
    # server in this process, and the experiments, whose tables no assertion reads, cost a third more.
    kinds = frozenset({"logs", "datasets"})
    sync(demo_emulator, settings, kinds=kinds)
    project = demo_emulator.store.list_objects("project", ListQuery())[0]
    row = demo_emulator.store.live_rows("project_logs", project["id"])[0]
    demo_emulator.store.insert(
        "project_logs", project["id"], [{"id": row["id"], "_is_merge": True, "output": "v2"}]
    )
    second = sync(demo_emulator, settings, kinds=kinds)
    assert sum(o.updated for o in second.objects) == 1
    local = warehouse_in(tmp_path, "local")
    sync(demo_emulator, local, kinds=kinds)
    for table, key in (("project_logs", "project_id"), ("dataset_records", "dataset_id")):
        dataset = ds.dataset(f"warehouse/bt/{table}", filesystem=fs, format="parquet", partitioning="hive")
        stored = sorted(
            (r[key], r["id"], r["_xact_id"])
            for r in dataset.to_table(columns=[key, "id", "_xact_id"]).to_pylist()
        )
        assert stored and stored == sorted(query(local, f"SELECT {key}, id, _xact_id FROM {table}"))
    views_file = settings.duckdb_path
    cannot_write = (
        f"cannot write {views_file}: DuckDB's httpfs extension, which reads object storage, is not "
        "installed and could not be downloaded; the tables are synced, and the next sync writes the file "
        "once httpfs is installed (run `INSTALL httpfs` once in a DuckDB session that is online)"
    )
    # Offline, the file of views could not be written: said so, without DuckDB's line cut short (`'httpfs:`).
    assert (cannot_write in caplog.messages) is not views_file.exists()
    counted = "SELECT count(*) FROM project_logs"
    try:
        through_duckdb = query(settings, counted)
    except WarehouseError as error:  # offline, DuckDB cannot download it (its own line was cut short)
        assert str(error) == (
            "cannot read the tables at s3://warehouse/bt: DuckDB's httpfs extension, which reads object "
            "storage, is not installed and could not be downloaded; run `INSTALL httpfs` once in a DuckDB "
            "session that is online"
        )
    else:
        assert through_duckdb == query(local, counted)


def test_a_merge_adds_new_rows_to_the_open_file_and_commits_the_object_s_size(tmp_path: Path) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    state = logs_state(version=3)
    tree.merge(LOGS_REF, staged(tmp_path / "first", [event("a", 1)]), state, delete_missing_up_to=None)
    second = tree.merge(
        LOGS_REF,
        staged(tmp_path / "second", [event("c", 3), event("b", 2)]),
        state,
        delete_missing_up_to=None,
    )
    directory = tmp_path / "tree" / "project_logs" / "project_id=object"
    # A small object is one file: the new rows join it instead of starting a file each sync.
    assert sorted(p.name for p in directory.iterdir()) == ["_sync_state.json", "part-000000.parquet"]
    size = (directory / "part-000000.parquet").stat().st_size
    assert (second.rows, second.bytes, second.bytes_written) == (3, size, size)
    committed = tree.read_state(LOGS_REF)
    assert committed is not None
    assert (committed.rows, committed.files, committed.bytes, committed.last_bytes_written) == (
        3,
        1,
        size,
        size,
    )


def test_a_file_a_merge_empties_leaves_the_tree_also_when_the_commit_was_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    tree.merge(
        LOGS_REF,
        staged(tmp_path / "first", [event("a", 2), event("b", 1)]),
        logs_state(2),
        delete_missing_up_to=None,
    )
    directory = tmp_path / "tree" / "project_logs" / "project_id=object"
    assert (directory / "part-000000.parquet").exists()

    def cut_short(self: ParquetTree, *args: Any) -> None:
        raise KeyboardInterrupt  # the process dies once the record is written, before the tree caught up

    monkeypatch.setattr(ParquetTree, "_publish", cut_short)
    with pytest.raises(KeyboardInterrupt):
        tree.merge(LOGS_REF, staged(tmp_path / "full"), logs_state(3), delete_missing_up_to=EVERY_XACT)
    monkeypatch.undo()
    assert (directory / "part-000000.parquet").exists()
    committed = tree.read_state(LOGS_REF)  # the next holder of the lock finishes the commit
    assert committed is not None and (committed.rows, committed.files, committed.bytes) == (0, 0, 0)
    assert sorted(p.name for p in directory.iterdir()) == ["_sync_state.json"]


def test_an_object_s_lock_holds_off_a_second_holder_for_the_wait_then_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    assert PROJECT.events is not None
    ref = ObjectRef(PROJECT.events, "object-a", "project", "bot")
    other = ObjectRef(PROJECT.events, "object-b", "project", "other bot")
    with tree.lock(ref, 0):
        started = time.monotonic()
        with pytest.raises(WarehouseLocked) as refused, tree.lock(ref, 0.3):
            pass
        assert time.monotonic() - started >= 0.3
        with tree.lock(other, 0):
            pass  # another object is not held
    assert str(refused.value) == (
        "another bt-sync process is syncing project_logs 'bot' (object-a) and still held it after 0.3s "
        "(--lock-wait; in Dagster, the WarehouseResource's lock_wait_s)"
    )
    # Said as the wait starts (it may last ten minutes), and only for a wait.
    assert [record.getMessage() for record in caplog.records] == [
        "another bt-sync process is syncing project_logs 'bot' (object-a): waiting for it, up to 0.3s "
        "(--lock-wait; in Dagster, the WarehouseResource's lock_wait_s)"
    ]
    with tree.lock(ref, 0):
        pass  # released when its holder is done


def test_catalog_writes_of_two_projects_at_once_keep_each_other_s_rows(
    emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for project_name in ("rx", "ry"):
        project = emulator.store.create_project(project_name)
        emulator.store.create_experiment(project["id"], f"experiment of {project_name}")
    tree = open_destination(warehouse)
    with fast_client(emulator) as client:
        rx, ry = (discover_catalog(client, [name], [EXPERIMENT]) for name in ("rx", "ry"))
    second = threading.Thread(target=write_catalog, args=(tree, ry))
    read = Root.read

    def read_then_let_the_second_write(root: Root, relative: str) -> bytes | None:
        data = read(root, relative)
        if relative == "experiments/data.parquet" and threading.current_thread() is not second:
            # The first write has read the rows it keeps: the second gets a second to write its own.
            second.start()
            second.join(timeout=1)
        return data

    monkeypatch.setattr(Root, "read", read_then_let_the_second_write)
    write_catalog(tree, rx)
    second.join()
    assert query(warehouse, "SELECT name FROM experiments ORDER BY name") == [
        ("experiment of rx",),
        ("experiment of ry",),
    ]
    assert query(warehouse, "SELECT name FROM projects ORDER BY name") == [("rx",), ("ry",)]


def test_a_removed_object_s_versions_stay_for_the_grace_from_its_removal_then_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    state = logs_state(version=2)
    tree.merge(
        LOGS_REF, staged(tmp_path / "read", [event("a", 2), event("b", 1)]), state, delete_missing_up_to=None
    )
    directory = tmp_path / "tree" / "project_logs" / "project_id=object"
    versions = tmp_path / "tree" / "_bt_sync" / "project_logs" / "project_id=object"
    (written,) = list(versions.iterdir())
    long_ago = time.time() - 3 * 3600
    os.utime(written, (long_ago, long_ago))  # written long before the removal
    tree.remove_object(state)
    assert sorted(p.name for p in directory.iterdir()) == ["_sync_state.json"]
    assert tree.read_state(LOGS_REF) is None and tree.list_states() == []
    # A query that listed the version before the removal may still read it: it stays for the grace.
    tree.maintain(timedelta(0))
    tree.prepare()
    assert list(versions.iterdir()) == [written]
    monkeypatch.setattr("connector.destinations.parquet_tree.RETIRED_GRACE", timedelta(0))
    tree.prepare()
    assert not directory.exists() and not versions.exists()


def test_writes_cut_short_leave_no_temporary_file_after_the_next_recovery(tmp_path: Path) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    state = logs_state(version=1)
    tree.merge(LOGS_REF, staged(tmp_path / "read", [event("a", 1)]), state, delete_missing_up_to=None)
    directory = tmp_path / "tree" / "project_logs" / "project_id=object"
    # What a crash between linking a new version and renaming it over the file leaves.
    (directory / ".part-000000.parquet.tmp").write_bytes(b"partial")
    # And what a merge dies with while writing a version: however new, no query can be reading it.
    versions = tmp_path / "tree" / "_bt_sync" / "project_logs" / "project_id=object"
    kept = sorted(p.name for p in versions.iterdir())
    (versions / ".part-000001.0123abcd.parquet.tmp").write_bytes(b"partial")
    assert tree.read_state(LOGS_REF) is not None  # the holder of the lock recovers the object first
    assert sorted(p.name for p in directory.iterdir()) == ["_sync_state.json", "part-000000.parquet"]
    assert sorted(p.name for p in versions.iterdir()) == kept


def test_a_replaced_version_is_deleted_once_past_its_grace_and_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    state = logs_state(version=2)
    versions = tmp_path / "tree" / "_bt_sync" / "project_logs" / "project_id=object"
    record = tmp_path / "tree" / "project_logs" / "project_id=object" / "_sync_state.json"
    tree.merge(LOGS_REF, staged(tmp_path / "first", [event("a", 1)]), state, delete_missing_up_to=None)
    (first,) = [p.name for p in versions.iterdir()]
    tree.merge(LOGS_REF, staged(tmp_path / "second", [event("a", 2)]), state, delete_missing_up_to=None)
    assert first in record.read_text() and len(list(versions.iterdir())) == 2  # kept for the grace
    assert len(ObjectRecord.model_validate_json(record.read_bytes()).superseded) == 1  # and the state then
    monkeypatch.setattr("connector.destinations.parquet_tree.RETIRED_GRACE", timedelta(0))
    size = (versions / first).stat().st_size
    maintained = tree.maintain(timedelta(0))
    assert (maintained.tables, maintained.files_deleted, maintained.bytes_deleted) == (1, 1, size)
    assert size > 0
    assert ObjectRecord.model_validate_json(record.read_bytes()).superseded == []
    for _ in range(2):  # the second recovery reads what the first wrote
        assert tree.read_state(LOGS_REF) is not None
        assert first not in [p.name for p in versions.iterdir()] and first not in record.read_text()


def test_versions_replaced_by_merges_in_a_row_stay_for_the_grace_from_their_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    versions = tmp_path / "tree" / "_bt_sync" / "project_logs" / "project_id=object"
    for version in (1, 2, 3):
        for written in versions.glob("*.parquet"):  # written long ago, replaced only now
            long_ago = time.time() - 3 * 3600
            os.utime(written, (long_ago, long_ago))
        state = logs_state(version=version)
        tree.merge(
            LOGS_REF,
            staged(tmp_path / f"read-{version}", [event("a", version)]),
            state,
            delete_missing_up_to=None,
        )
    assert tree.read_state(LOGS_REF) is not None
    # A query that listed a version before its replacement may still read it, however old its file.
    assert len(list(versions.iterdir())) == 3
    monkeypatch.setattr("connector.destinations.parquet_tree.RETIRED_GRACE", timedelta(0))
    assert tree.read_state(LOGS_REF) is not None
    assert len(list(versions.iterdir())) == 1


def test_preparing_the_tree_purges_each_removed_object_past_its_grace_whatever_comes_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    refs = {name: ObjectRef(LOGS, name, "project", name) for name in ("a-live", "b-locked", "c-removed")}
    states = {
        name: SyncState(
            object_type=LOGS.object_type,
            object_id=name,
            name=name,
            project_id="project",
            table_name=LOGS.table,
            version=1,
            synced_at=datetime.now(UTC),
        )
        for name in refs
    }
    for name, ref in refs.items():
        tree.merge(ref, staged(tmp_path / name, [event("a", 1)]), states[name], delete_missing_up_to=None)
    tree.remove_object(states["b-locked"])
    tree.remove_object(states["c-removed"])
    monkeypatch.setattr("connector.destinations.parquet_tree.RETIRED_GRACE", timedelta(0))
    with tree.lock(refs["b-locked"], 0):  # being synced elsewhere: left for later
        tree.prepare()
    tables = tmp_path / "tree" / "project_logs"
    assert sorted(p.name for p in tables.iterdir()) == [
        "project_id=__schema__", "project_id=a-live", "project_id=b-locked"
    ]  # fmt: skip


def test_a_clock_set_back_never_makes_a_version_current_before_the_one_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    record = tmp_path / "tree" / "project_logs" / "project_id=object" / "_sync_state.json"
    tree.merge(
        LOGS_REF,
        staged(tmp_path / "first", [event("a", 1)]),
        logs_state(version=1),
        delete_missing_up_to=None,
    )
    first = ObjectRecord.model_validate_json(record.read_text()).files[0]
    assert first.since is not None

    class SetBack(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) - timedelta(minutes=10)

    monkeypatch.setattr("connector.destinations.parquet_tree.datetime", SetBack)
    tree.merge(
        LOGS_REF,
        staged(tmp_path / "second", [event("a", 2)]),
        logs_state(version=2),
        delete_missing_up_to=None,
    )
    second = ObjectRecord.model_validate_json(record.read_text())
    (replaced,) = second.retired
    # Else a query started between the two times would read both versions of the file.
    assert second.files[0].since is not None and second.files[0].since > first.since
    assert (replaced.version, replaced.since, replaced.at) == (
        first.version,
        first.since,
        second.files[0].since,
    )


def test_a_commit_record_written_too_slowly_for_its_moment_is_written_again_for_a_later_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    real_fsync, slow_ends = os.fsync, []

    def slow_once(fd: int) -> None:
        real_fsync(fd)
        if not slow_ends:  # a disk busy with other writes: the record's first write takes 50 ms
            time.sleep(0.05)
            slow_ends.append(datetime.now(UTC))

    monkeypatch.setattr("connector.state_file.os.fsync", slow_once)
    tree.merge(
        LOGS_REF, staged(tmp_path / "one", [event("a", 1)]), logs_state(version=1), delete_missing_up_to=None
    )
    record = tmp_path / "tree" / "project_logs" / "project_id=object" / "_sync_state.json"
    committed = ObjectRecord.model_validate_json(record.read_text())
    # Current only after it was readable: a query started meanwhile read neither half of two records.
    assert committed.since is not None and committed.since > slow_ends[0]
    assert committed.files[0].since == committed.since
    assert not [p for p in record.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_commit_record_is_readable_before_the_moment_it_makes_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    real_write, written = Root.write, []

    def timed(root: Root, relative: str, data: bytes, **deadline: Any) -> None:
        real_write(root, relative, data, **deadline)
        if relative.endswith("/_sync_state.json"):
            written.append((datetime.now(UTC), ObjectRecord.model_validate_json(data).since))

    monkeypatch.setattr(Root, "write", timed)
    for version in (1, 2):
        staged_rows = staged(tmp_path / f"read-{version}", [event("a", version)])
        tree.merge(LOGS_REF, staged_rows, logs_state(version=version), delete_missing_up_to=None)
        since = written[-1][1]
        assert since is not None
        # A query started after `since` reads the new record, one started before it the old one: a record
        # still being written at `since` would be read as new by one table's view and old by another's.
        first_written = next(at for at, record_since in written if record_since == since)
        assert first_written < since
    assert len({record_since for _, record_since in written}) == 2


def test_on_a_disk_slower_than_a_commit_s_lead_the_record_is_still_readable_before_its_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    real_fsync, real_write, written = os.fsync, Root.write, []

    def slow(fd: int) -> None:  # every write takes 60 ms, where a commit's moment first lies 20 ms ahead
        real_fsync(fd)
        time.sleep(0.06)

    def timed(root: Root, relative: str, data: bytes, **deadline: Any) -> None:
        real_write(root, relative, data, **deadline)
        if relative.endswith("/_sync_state.json"):
            written.append((datetime.now(UTC), ObjectRecord.model_validate_json(data).since))

    monkeypatch.setattr("connector.state_file.os.fsync", slow)
    monkeypatch.setattr(Root, "write", timed)
    tree.merge(
        LOGS_REF, staged(tmp_path / "one", [event("a", 1)]), logs_state(version=1), delete_missing_up_to=None
    )
    record = tmp_path / "tree" / "project_logs" / "project_id=object" / "_sync_state.json"
    since = ObjectRecord.model_validate_json(record.read_text()).since
    # The commit's first write of it (publishing the files writes it again, current already).
    first_written = next(at for at, record_since in written if record_since == since)
    # Written for a moment further ahead, not at once past its moment.
    assert since is not None and first_written < since


class _Killed(BaseException):
    """The process killed at that point (a `BaseException`, as no handler of bt-sync's catches it)."""


def test_a_removal_killed_after_its_commit_leaves_no_row_in_the_tree_once_the_next_sync_prepares_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = ParquetTree(str(tmp_path / "tree"), tmp_path / "state")
    state = logs_state(version=1)
    tree.merge(LOGS_REF, staged(tmp_path / "read", [event("a", 1)]), state, delete_missing_up_to=None)
    directory = tmp_path / "tree" / "project_logs" / "project_id=object"

    def killed(root: Root, relative: str) -> None:
        raise _Killed

    with monkeypatch.context() as crash:
        crash.setattr(Root, "delete", killed)
        with pytest.raises(_Killed):
            tree.remove_object(state)
    assert tree.list_states() == [] and "part-000000.parquet" in os.listdir(directory)
    tree.prepare()
    # Any engine reading the tree's files reads the table: the removed object's rows must not be there.
    assert os.listdir(directory) == ["_sync_state.json"]
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/tree/project_logs/*/*.parquet')")
    assert rows.fetchall() == [(0,)]


def test_a_message_names_a_path_of_an_s3_root_before_the_uri_s_query() -> None:
    # It came after: `…/pre?endpoint_override=…&scheme=http/project_logs`.
    root = Root("s3://AKIAKEY:s3cr3t@bucket/pre/?endpoint_override=127.0.0.1:9&scheme=http")
    assert root.shown("project_logs/_sync_state.json") == (
        "s3://***@bucket/pre/project_logs/_sync_state.json?endpoint_override=127.0.0.1:9&scheme=http"
    )
    assert Root("data/tree").shown("project_logs") == "data/tree/project_logs"


def test_a_commit_record_ahead_of_the_clock_is_warned_of(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = emulator.store.create_project("skewed")
    emulator.store.insert("project_logs", project["id"], [{"id": "a", "input": 1}])
    warehouse = warehouse_in(tmp_path)
    sync(emulator, warehouse)
    # As a sync on a clock set two hours ahead would have written it.
    (record_path,) = Path(warehouse.tables_root).glob(
        f"project_logs/project_id={project['id']}/_sync_state.json"
    )
    record = json.loads(record_path.read_text())
    ahead = (datetime.now(UTC) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    record["since"] = ahead
    for data_file in record["files"]:
        data_file["since"] = ahead
    record_path.write_text(json.dumps(record))
    # Its rows cannot be read until then, and nothing said why.
    assert query(warehouse, "SELECT count(*) FROM project_logs") == [(0,)]
    emulator.store.insert("project_logs", project["id"], [{"id": "b", "input": 2}])
    sync(emulator, warehouse)
    (warned,) = [m for m in caplog.messages if "ahead of this machine's clock" in m]
    assert warned.startswith(f"project_logs {project['id']}: an earlier sync made its commits current at ")
    assert (
        ", 2 h 0 min ahead of this machine's clock (it ran on a clock set ahead, or this one was set back)"
        in warned
    )


def test_a_root_holding_another_programs_catalog_file_is_refused_before_anything_is_written(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # The path Dagster's assets take, past the command line's own check: the tree was written among the
    # files, then binding the views to this one failed, said as "cannot write the DuckDB file" with the
    # disk's free bytes, at every sync.
    root = Path(warehouse.tables_root)
    (root / "experiments").mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 'a' AS name) TO '{root}/experiments/data.parquet'")
    with pytest.raises(WarehouseError, match=r"holds experiments/data\.parquet, which bt-sync did not write"):
        sync(emulator, warehouse)
    assert sorted(path.name for path in root.rglob("*")) == ["data.parquet", "experiments"]
    assert not warehouse.duckdb_path.exists()
    # A tree bt-sync wrote is taken as its own (its `_bt_sync` directory written first), and so is one
    # whose `_bt_sync` a restore left out: its objects are read again to rebuild it.
    (root / "experiments" / "data.parquet").unlink()
    project = emulator.store.create_project("p")
    emulator.store.insert("project_logs", project["id"], [{"id": "r", "input": 1}])
    sync(emulator, warehouse)
    shutil.rmtree(root / "_bt_sync")
    (rebuilt,) = sync(emulator, warehouse).objects
    assert (rebuilt.status, rebuilt.mode, rebuilt.rows) == ("synced", "full", 1)
    assert query(warehouse, "SELECT count(*) FROM projects") == [(1,)]
