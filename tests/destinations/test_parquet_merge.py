"""Merging staged rows into an object's files: newest version by number, each id once, only changed files.

Pages are staged by the real stager from JSON bodies and merged into real
Parquet files, read back through DuckDB: no emulator, so each test takes a
fraction of a second.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from connector.destinations import parquet_merge
from connector.destinations.base import MergeResult, StagedParts, SyncState
from connector.destinations.filesystem import Root
from connector.destinations.parquet_merge import DataFile, MergeOutput, ObjectFiles, _connect, merge_files
from connector.destinations.parquet_tree import ParquetTree
from connector.destinations.unique_ids import each_id_once
from tests.helpers import EVERY_XACT, LOGS, LOGS_REF, event, small_files, staged


class Files:
    """One object's files in a local tree, merged into one read after another."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.where = ObjectFiles(Root(str(directory / "tree")), "t/o", "v/o")
        self.files: list[DataFile] = []
        self.open_file: str | None = None
        self._reads = 0

    def merge(self, *pages: list[dict[str, Any]], delete_missing_up_to: int | None = None) -> MergeOutput:
        parts = staged(self._directory / f"read-{self._reads + 1}", *pages)
        return self.merge_parts(parts, delete_missing_up_to=delete_missing_up_to)

    def merge_parts(self, parts: StagedParts, delete_missing_up_to: int | None = None) -> MergeOutput:
        self._reads += 1
        output = merge_files(
            self.where,
            LOGS,
            self.files,
            self.open_file,
            parts,
            delete_missing_up_to=delete_missing_up_to,
            scratch=self._directory / "scratch",
            token=f"read{self._reads:04d}",
        )
        self.files, self.open_file = output.files, output.open_file
        return output

    def rows(self) -> list[tuple[Any, ...]]:
        """(id, `_xact_id`, output) of every row, from the files' current versions."""
        if not self.files:
            return []
        paths = [str(self.where.root.local(self.where.version_path(f.version))) for f in self.files]
        with duckdb.connect() as con:
            return con.execute(
                "SELECT id, _xact_id, output::VARCHAR FROM read_parquet($paths) ORDER BY id", {"paths": paths}
            ).fetchall()


def test_a_newer_version_with_more_digits_replaces_the_older(tmp_path: Path) -> None:
    files = Files(tmp_path)
    files.merge([event("a", 999_999_999, "old"), event("b", 5)])
    output = files.merge([event("a", 1_000_000_000, "new")])
    assert (output.inserted, output.updated, output.deleted) == (0, 1, 0)
    assert files.rows() == [("a", 1_000_000_000, '"new"'), ("b", 5, None)]


def test_an_older_version_changes_nothing(tmp_path: Path) -> None:
    files = Files(tmp_path)
    files.merge([event("a", 1_000_000_000, "new")])
    before = files.files
    output = files.merge([event("a", 999_999_999, "old")])
    assert (output.changed, output.updated, output.bytes_written) == ([], 0, 0)
    assert files.files == before and files.rows() == [("a", 1_000_000_000, '"new"')]


def test_the_same_version_again_changes_nothing(tmp_path: Path) -> None:
    files = Files(tmp_path)
    files.merge([event("a", 7, "x"), event("b", 6)])
    output = files.merge([event("a", 7, "x")])
    assert (output.changed, output.inserted, output.updated) == ([], 0, 0)


def test_a_version_staged_twice_and_older_versions_of_a_resumed_read_become_one_row(tmp_path: Path) -> None:
    # A resumed read staged a page again, and an out-of-order read staged two versions of `b`.
    first = staged(tmp_path / "before-the-crash", [event("a", 7, "a7"), event("b", 3, "b3")])
    again = staged(tmp_path / "after-the-resume", [event("a", 7, "a7"), event("b", 4, "b4")])
    files = Files(tmp_path)
    output = files.merge_parts(StagedParts(first.paths + again.paths, deduplicated=False))
    assert files.rows() == [("a", 7, '"a7"'), ("b", 4, '"b4"')]
    assert (output.inserted, output.updated, output.deleted) == (2, 0, 0)


def test_a_full_read_deletes_the_rows_it_did_not_see_and_an_incremental_one_keeps_them(
    tmp_path: Path,
) -> None:
    files = Files(tmp_path)
    files.merge([event("a", 3), event("b", 2), event("c", 1)])
    incremental = files.merge([event("d", 4)])
    assert incremental.deleted == 0 and [row[0] for row in files.rows()] == ["a", "b", "c", "d"]
    full = files.merge([event("d", 4), event("b", 5, "new")], delete_missing_up_to=EVERY_XACT)
    assert (full.inserted, full.updated, full.deleted) == (0, 1, 2)
    assert files.rows() == [("b", 5, '"new"'), ("d", 4, None)]


def test_new_rows_fill_the_open_file_then_new_files_of_the_object_s_file_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch, min_rows=2)
    files = Files(tmp_path)
    first = files.merge([event("r9", 9), event("r8", 8), event("r7", 7)])
    # A first load keeps the staged parts (two rows a file), newest first; new rows go to the newest.
    assert [(f.name, f.rows) for f in first.files] == [("part-000000.parquet", 2), ("part-000001.parquet", 1)]
    assert first.open_file == "part-000000.parquet"
    assert (first.inserted, first.updated, first.deleted) == (3, 0, 0)
    second = files.merge([event("r12", 12), event("r11", 11), event("r10", 10)])
    assert [(f.name, f.rows) for f in second.files][2:] == [
        ("part-000002.parquet", 2),
        ("part-000003.parquet", 1),
    ]
    assert second.changed == ["part-000002.parquet", "part-000003.parquet"]
    assert second.open_file == "part-000003.parquet"
    third = files.merge([event("r13", 13)])
    assert third.changed == ["part-000003.parquet"] and third.open_file == "part-000003.parquet"
    with duckdb.connect() as con:
        by_file = con.execute(
            "SELECT id FROM read_parquet($path) ORDER BY id",
            {"path": str(files.where.root.local(files.where.version_path(third.files[3].version)))},
        ).fetchall()
    assert by_file == [("r10",), ("r13",)]
    assert len(files.rows()) == 7


def test_a_file_left_without_rows_is_dropped_and_new_rows_start_a_file_when_it_was_the_open_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch, min_rows=2)
    files = Files(tmp_path)
    files.merge([event("r9", 9), event("r8", 8), event("r7", 7)])
    full = files.merge([event("r7", 7)], delete_missing_up_to=EVERY_XACT)
    assert (full.deleted, full.changed, full.bytes_written) == (2, ["part-000000.parquet"], 0)
    assert ([(f.name, f.rows) for f in full.files], full.open_file) == ([("part-000001.parquet", 1)], None)
    written = list((tmp_path / "tree" / "v" / "o").iterdir())
    assert len(written) == 2  # the first load's two files: the emptied file got no new version
    more = files.merge([event("r10", 10)])
    assert [(f.name, f.rows) for f in more.files] == [("part-000001.parquet", 1), ("part-000002.parquet", 1)]
    assert more.open_file == "part-000002.parquet"
    assert [row[0] for row in files.rows()] == ["r10", "r7"]


def test_parts_said_to_hold_each_id_once_are_checked_before_they_become_files(tmp_path: Path) -> None:
    # Two reads' parts, each staged with its ids once, given as one read's: `a` twice, as staging would
    # leave it if it failed to keep an id once. A first load keeping the parts as files would keep both.
    first = staged(tmp_path / "one", [event("a", 7, "a7"), event("b", 3)])
    again = staged(tmp_path / "two", [event("a", 6, "a6"), event("c", 2)])
    files = Files(tmp_path)
    output = files.merge_parts(StagedParts(first.paths + again.paths, deduplicated=True))
    assert files.rows() == [("a", 7, '"a7"'), ("b", 3, None), ("c", 2, None)]
    assert output.inserted == 3


def test_one_id_repeated_among_fifty_thousand_is_found(tmp_path: Path) -> None:
    distinct, repeated = tmp_path / "distinct.parquet", tmp_path / "repeated.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 'id-' || range AS id FROM range(50000)) TO '{distinct}'")
        con.execute(f"COPY (SELECT 'id-' || (range % 49999) AS id FROM range(50000)) TO '{repeated}'")
        for paths, once in (((distinct,), True), ((repeated,), False), ((distinct, distinct), False)):
            assert each_id_once(con, StagedParts(paths, deduplicated=True)) is once, paths


def test_merging_nothing_into_an_empty_object_writes_nothing(tmp_path: Path) -> None:
    output = Files(tmp_path).merge()
    assert (output.files, output.open_file, output.inserted, output.bytes_written) == ([], None, 0, 0)


def test_a_full_read_into_an_empty_object_writes_numbered_files(tmp_path: Path) -> None:
    output = Files(tmp_path).merge(
        [event("a", 3), event("b", 2), event("c", 1)], delete_missing_up_to=EVERY_XACT
    )
    assert [(f.name, f.rows) for f in output.files] == [("part-000000.parquet", 3)]
    assert (output.open_file, output.inserted) == ("part-000000.parquet", 3)


def test_new_rows_are_cut_to_the_file_size_of_the_table_after_the_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two files a table: the file size is half of what the object holds once the merge is done.
    small_files(monkeypatch, min_rows=1, files_per_object=2)
    files = Files(tmp_path)
    kept = [event(f"old{n}", 20 - n) for n in range(3)]
    first = files.merge([*kept, *(event(f"gone{n}", 10 - n) for n in range(3))])
    assert [f.rows for f in first.files] == [2, 2, 2] and first.open_file == "part-000000.parquet"
    # 6 rows, 5 new, 3 deleted: 8 rows, files of 4. The open file takes 2 more, a new file the other 3.
    # The file whose two rows were both deleted is gone, not kept empty.
    output = files.merge(
        [*kept, *(event(f"new{n}", 30 - n) for n in range(5))], delete_missing_up_to=EVERY_XACT
    )
    assert (output.inserted, output.deleted) == (5, 3)
    assert [(f.name, f.rows) for f in output.files] == [
        ("part-000000.parquet", 4),
        ("part-000001.parquet", 1),
        ("part-000003.parquet", 3),
    ]
    assert "part-000002.parquet" in output.changed
    assert output.open_file == "part-000003.parquet"
    assert output.bytes_written == sum(f.bytes for f in output.files) and output.bytes_written > 0


def test_a_merge_s_duckdb_spills_into_its_scratch_directory_within_its_memory_limit(tmp_path: Path) -> None:
    # Not the working directory, which may be anywhere (a read-only checkout, a Dagster run's cwd); the
    # merges of a tree's objects (`merge/<object id>`) share it, and a database, which costs 12 ms to open.
    for object_id in ("one", "two"):
        with _connect(tmp_path / "merge" / object_id) as con:
            settings = "SELECT current_setting('temp_directory'), current_setting('memory_limit')"
            assert con.execute(settings).fetchone() == (str(tmp_path / "merge" / "spill"), "244.1 MiB")
            # A connection's own tables: another merge's are not seen.
            con.execute("CREATE TEMP TABLE plan AS SELECT 1 AS x")


def test_a_merge_spills_again_after_its_spill_directory_was_deleted(tmp_path: Path) -> None:
    # The process's merge database outlives the directory (`rm -rf` of the state's staging, as the
    # checkpoint's message invites): DuckDB creates it once, and failed to open its next spill file.
    spill = tmp_path / "merge" / "spill"
    for _ in range(2):
        with _connect(tmp_path / "merge" / "object") as con:
            con.execute("SET memory_limit = '48MB'")  # this test's database only: its spill path's
            con.execute("SELECT count(*) FROM (SELECT md5(i::VARCHAR) s FROM range(1000000) t(i) ORDER BY s)")
        assert spill.is_dir()
        shutil.rmtree(tmp_path / "merge")
    assert not spill.exists()


def test_a_failed_merge_leaves_no_copy_of_its_rows_in_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_files(monkeypatch, min_rows=3, files_per_object=4)
    files = Files(tmp_path)
    files.merge([event(f"r{i:02d}", 10 + i, "x" * 100) for i in range(20)])
    placed = parquet_merge._put

    def disk_full_at_the_second_file(where: ObjectFiles, local: Path, version: str) -> None:
        placed_versions.append(version)
        if len(placed_versions) == 2:
            raise OSError(28, "No space left on device")
        placed(where, local, version)

    placed_versions: list[str] = []
    monkeypatch.setattr(parquet_merge, "_put", disk_full_at_the_second_file)
    with pytest.raises(OSError):
        files.merge([event(f"r{i:02d}", 100 + i, "y") for i in range(20)])
    # Every changed row, by file: a retry with a new token added another copy.
    assert list(tmp_path.rglob("changes-*")) == []


def test_a_merge_clears_what_a_killed_merge_left_in_its_scratch(tmp_path: Path) -> None:
    files = Files(tmp_path)
    files.merge([event("a", 10, "x")])
    # What a merge SIGKILLed midway leaves: its copy of the changed rows, a version half written. No
    # later sync, nor `maintain`, deleted them: each killed merge leaked its change set's size.
    killed = tmp_path / "scratch" / "changes-dead0001" / "_file=part-000001.parquet"
    killed.mkdir(parents=True)
    (killed / "data_0.parquet").write_bytes(b"rows")
    (tmp_path / "scratch" / ".part-000001.dead0001.parquet.tmp").write_bytes(b"")
    files.merge([event("a", 20, "y"), event("b", 21, "z")])
    # Nor is the merge's own directory left once it ends.
    assert not (tmp_path / "scratch").exists()
    assert files.rows() == [("a", 20, '"y"'), ("b", 21, '"z"')]


def test_merges_on_object_storage_read_the_tree_s_files_back_from_it(
    tmp_path: Path, s3_bucket: pafs.S3FileSystem
) -> None:
    # moto keeps its buckets for the life of the process (mutmut runs the tests twice in one): a prefix
    # of this test's own.
    prefix = f"warehouse/{uuid.uuid4().hex}"
    tree = ParquetTree(f"s3://{prefix}", tmp_path / "state")
    state = SyncState(
        object_type=LOGS.object_type, object_id="object", name="bot", project_id="project",
        table_name=LOGS.table, version=None, synced_at=datetime.now(UTC),
    )  # fmt: skip
    reads = iter(range(100))

    def merge(*pages: list[dict[str, Any]], delete_missing_up_to: int | None = None) -> MergeResult:
        return tree.merge(
            LOGS_REF,
            staged(tmp_path / f"read-{next(reads)}", *pages),
            state,
            delete_missing_up_to=delete_missing_up_to,
        )

    def rows() -> list[tuple[Any, ...]]:
        files = ds.dataset(f"{prefix}/project_logs/project_id=object", filesystem=s3_bucket, format="parquet")
        table = files.to_table(columns=["id", "_xact_id", "output"]).to_pylist()
        return sorted((row["id"], row["_xact_id"], row["output"]) for row in table)

    first = merge([event("a", 3, "a3"), event("b", 2), event("c", 1)])
    assert (first.inserted, first.rows) == (3, 3)
    second = merge([event("a", 1_000_000_000, "a-new"), event("d", 4)])
    assert (second.inserted, second.updated, second.rows) == (1, 1, 4)
    assert rows() == [("a", 1_000_000_000, '"a-new"'), ("b", 2, None), ("c", 1, None), ("d", 4, None)]
    full = merge([event("a", 1_000_000_000, "a-new"), event("d", 4)], delete_missing_up_to=EVERY_XACT)
    assert (full.deleted, full.rows) == (2, 2)
    assert rows() == [("a", 1_000_000_000, '"a-new"'), ("d", 4, None)]
    # On object storage a version is deleted once the tree holds its copy.
    versions = s3_bucket.get_file_info(pafs.FileSelector(f"{prefix}/_bt_sync/project_logs", recursive=True))
    assert [info.path for info in versions if info.type == pafs.FileType.File] == []
    emptied = merge(delete_missing_up_to=EVERY_XACT)
    assert (emptied.deleted, emptied.rows, emptied.bytes) == (2, 0, 0)
    tree_files = s3_bucket.get_file_info(pafs.FileSelector(f"{prefix}/project_logs", recursive=True))
    assert [info.base_name for info in tree_files if info.type == pafs.FileType.File] == ["_sync_state.json"]
