"""A sync interrupted anywhere resumes from its checkpoint and converges; versions compare as numbers."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from connector.api import xact
from connector.config import WarehouseSettings
from connector.destinations.base import ObjectRef
from connector.destinations.parquet_tree import ParquetTree
from connector.emulator import Emulator, FaultRule
from connector.errors import WarehouseError
from connector.sync.run import _SyncRun
from connector.sync.stage import PageStager
from connector.sync.staging import CHECKPOINT_FILE, Checkpoint
from schemas.api import FetchEventsRequest, ObjectType
from tests.helpers import (
    cli_warehouse_args,
    event_tables,
    fast_client,
    fetches_ahead_done,
    fresh_sync_tables,
    hourly_change,
    iceberg_in,
    query,
    run_cli,
    start_cli_sync,
    sync,
    synced_keys,
    upstream_keys,
    warehouse_in,
    warehouse_of,
)


def crash_project(emulator: Emulator) -> dict[str, Any]:
    """A project of 3,000 log rows, a few of them updated: a read of many pages of ten traces."""
    project = emulator.store.create_project("crash")
    emulator.store.generate_logs(project["id"], 3_000, update_fraction=0.05, rng_seed=7)
    return project


@pytest.fixture
def project(emulator: Emulator) -> dict[str, Any]:
    return crash_project(emulator)


def checkpoint_of(settings: WarehouseSettings, project_id: str) -> Checkpoint | None:
    paths = list(settings.state_dir.glob(f"staging/*/project_logs/{project_id}/{CHECKPOINT_FILE}"))
    return Checkpoint.load(paths[0], "") if paths else None


def crash_while_writing_page(page: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the sync die (as on Ctrl-C) while staging writes that page's parts."""
    real_write = PageStager._write
    calls = 0

    def crashing(self: PageStager, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == page:
            raise KeyboardInterrupt
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(PageStager, "_write", crashing)


def interrupted_read(
    emulator: Emulator,
    warehouse: WarehouseSettings,
    project_id: str,
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> Checkpoint:
    """Sync in pages of ten traces until staging writes the fourth page, dying there as on Ctrl-C (every
    patch of `monkeypatch` undone after); the read's checkpoint."""
    crash_while_writing_page(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        sync(emulator, warehouse, page_limit=10, **options)
    monkeypatch.undo()
    fetches_ahead_done()
    checkpoint = checkpoint_of(warehouse, project_id)
    assert checkpoint is not None
    return checkpoint


def kill_mid_read(emulator: Emulator, settings: WarehouseSettings, project_id: str) -> Checkpoint:
    """Start `bt-sync sync`, SIGKILL it once it has staged three pages, and return its checkpoint."""
    emulator.faults.add(FaultRule(kind="slow", route="/fetch", delay_s=0.05, times=None))
    process = start_cli_sync(emulator, settings, page_limit=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        checkpoint = checkpoint_of(settings, project_id)
        if checkpoint is not None and len(checkpoint.parts) >= 3:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the sync finished before the kill landed"
    emulator.faults.clear()
    checkpoint = checkpoint_of(settings, project_id)
    assert checkpoint is not None and len(checkpoint.parts) >= 2 and checkpoint.position.cursor
    return checkpoint


def test_a_killed_sync_resumes_from_its_staged_parts_and_cursor(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    pages_before_kill = kill_mid_read(emulator, warehouse, project["id"]).pages
    emulator.stats.reset()
    summary = sync(emulator, warehouse, page_limit=10)
    (resumed,) = summary.objects
    assert resumed.resumed
    # The summary counts what this run fetched, not what the killed run had. Besides its pages, the run
    # asked for the newest trace once, to pin the read that caught up after the resumed one, and for the
    # end of the history a second time, to believe it.
    fetches = emulator.stats.requests[("POST", "project_logs.fetch")]
    served = emulator.stats.rows_served[project["id"]]
    emulator.stats.reset()
    with fast_client(emulator) as client:
        client.fetch_raw(ObjectType.PROJECT_LOGS, project["id"], FetchEventsRequest(limit=1))
    assert resumed.pages == fetches - 2
    assert resumed.rows_fetched <= served - emulator.stats.rows_served[project["id"]]
    # The object's state says what the run did, both its reads (not the one that caught up alone).
    state = "SELECT last_fetched_rows, last_pages, last_bytes_written FROM sync_state WHERE object_id = ?"
    assert query(warehouse, state, [project["id"]]) == [
        (resumed.rows_fetched, resumed.pages, resumed.bytes_written)
    ]
    reference = warehouse_in(tmp_path, "reference")
    clean = sync(emulator, reference, page_limit=10)
    # The rerun fetched only what the checkpoint had not: the kill's pages were not fetched again.
    assert resumed.pages < clean.objects[0].pages + 2 and pages_before_kill >= 3
    assert event_tables(warehouse) == event_tables(reference)


@dataclass(frozen=True)
class KilledRead:
    """A read killed mid-way (`kill_mid_read`), its warehouse kept to restore, and a clean read's tables."""

    emulator: Emulator
    project_id: str
    warehouse: WarehouseSettings
    kept: Path
    checkpoint: Checkpoint
    reference: dict[str, list[tuple[Any, ...]]]

    def restore(self) -> None:
        """Put the warehouse back as the kill left it."""
        shutil.rmtree(self.warehouse.state_dir.parent)
        shutil.copytree(self.kept, self.warehouse.state_dir.parent)


@pytest.fixture(scope="module")
def killed_read(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilledRead]:
    """One kill for every harm: a kill costs a CLI start and a wait for its pages, a copy of what it
    left costs milliseconds."""
    with Emulator(seed="empty") as emulator:
        project = crash_project(emulator)
        warehouse = warehouse_in(tmp_path_factory.mktemp("killed") / "warehouse")
        checkpoint = kill_mid_read(emulator, warehouse, project["id"])
        kept = tmp_path_factory.mktemp("kept") / "warehouse"
        shutil.copytree(warehouse.state_dir.parent, kept)
        reference = warehouse_in(tmp_path_factory.mktemp("reference"))
        sync(emulator, reference)
        yield KilledRead(emulator, project["id"], warehouse, kept, checkpoint, event_tables(reference))


@pytest.mark.parametrize("harm", ["truncated", "overwritten", "deleted", "emptied"])
def test_a_read_whose_staged_part_was_harmed_is_read_afresh(
    killed_read: KilledRead, harm: str, caplog: pytest.LogCaptureFixture
) -> None:
    killed_read.restore()
    warehouse, checkpoint = killed_read.warehouse, killed_read.checkpoint
    staging = f"staging/*/project_logs/{killed_read.project_id}/{CHECKPOINT_FILE}"
    (checkpoint_path,) = warehouse.state_dir.glob(staging)
    part = checkpoint_path.with_name(checkpoint.parts[1])
    whole = part.read_bytes()
    left = checkpoint.rows_staged - pq.read_metadata(io.BytesIO(whole)).num_rows
    harms: dict[str, Callable[[], object]] = {
        "truncated": lambda: part.write_bytes(whole[: len(whole) // 2]),
        "overwritten": lambda: part.write_bytes(b"junk"),
        "deleted": part.unlink,
        # A whole Parquet file of no rows: the parts no longer hold the rows the checkpoint counts.
        "emptied": lambda: pq.write_table(pq.read_table(part).slice(0, 0), part),
    }
    harms[harm]()
    # It stopped every sync of the object, `--full` too, with DuckDB's words and no way out but by hand.
    (rerun,) = sync(killed_read.emulator, warehouse).objects
    assert not rerun.resumed and rerun.mode == "full"
    damage = (
        f"its staged parts hold {left:,} rows, its checkpoint counts {checkpoint.rows_staged:,}"
        if harm == "emptied"
        else f"its staged part {part.name} cannot be read ("
    )
    assert f"the interrupted read cannot resume, {damage}" in caplog.text
    assert event_tables(warehouse) == killed_read.reference


@pytest.mark.parametrize("destination", ["duckdb", "iceberg"])
def test_a_read_interrupted_after_the_tables_were_restored_from_a_backup_reads_down_to_their_watermark(
    emulator: Emulator, project: dict[str, Any], tmp_path: Path, destination: str
) -> None:
    settings = warehouse_of(destination, tmp_path)
    sync(emulator, settings)
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path, backup)
    emulator.store.insert("project_logs", project["id"], [{"id": f"b{i}", "input": i} for i in range(300)])
    sync(emulator, settings)
    # An incremental read, down to the watermark that holds the `b` rows, killed midway.
    emulator.store.generate_logs(project["id"], 600, update_fraction=0.0, rng_seed=11)
    kill_mid_read(emulator, settings, project["id"])
    # The tables (not the scratch directory) as they were before the `b` rows were synced.
    for kept in backup.iterdir():
        if kept.name != settings.state_dir.name:
            target = tmp_path / kept.name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
            shutil.move(kept, target)
    # The rerun resumed the read and stopped at its cutoff: the `b` rows were lost, and later
    # incremental syncs never read them again.
    (rerun,) = sync(emulator, settings).objects
    assert not rerun.resumed
    assert synced_keys(settings) == upstream_keys(emulator)


def test_a_rerun_after_a_kill_and_new_writes_ends_with_every_row(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    kill_mid_read(emulator, warehouse, project["id"])
    # New traces, and feedback on the newest rows: the pages read first, so staged before the kill.
    hourly_change(emulator, project["id"], new_rows=500, updated_rows=30)
    done = run_cli(
        "sync", *cli_warehouse_args(warehouse), "--api-url", emulator.url, "--page-limit", "10",
        "--overlap-seconds", "0", "--json", env={"BRAINTRUST_API_KEY": emulator.api_key},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (rerun,) = json.loads(done.stdout)["objects"]
    assert rerun["resumed"]
    assert synced_keys(warehouse) == upstream_keys(emulator)
    assert query(warehouse, "SELECT count(*) FROM project_logs")[0][0] == 3_500


def test_a_crash_while_a_part_is_written_loses_no_page(
    emulator: Emulator,
    project: dict[str, Any],
    warehouse: WarehouseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The process dies while the third page's part is being written.
    crash_while_writing_page(3, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        sync(emulator, warehouse, page_limit=10)
    monkeypatch.undo()
    checkpoint = checkpoint_of(warehouse, project["id"])
    assert checkpoint is not None and checkpoint.pages == 2  # the checkpoint names only pages on disk
    sync(emulator, warehouse, page_limit=10)
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


@pytest.mark.parametrize("full", [False, True])
def test_a_resumed_read_goes_on_to_what_was_written_since(
    emulator: Emulator,
    project: dict[str, Any],
    warehouse: WarehouseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    full: bool,
) -> None:
    if full:  # a `--full` of a synced object, interrupted
        sync(emulator, warehouse)
    interrupted = interrupted_read(emulator, warehouse, project["id"], monkeypatch, full=full)
    assert interrupted.rows_fetched > 0
    # Written after the interrupted read pinned its snapshot: the resumed read alone cannot see them.
    emulator.store.generate_logs(project["id"], 500, update_fraction=0.0, rng_seed=8)
    (summary,) = sync(emulator, warehouse, page_limit=10, full=full).objects
    reference = warehouse_in(tmp_path, "reference")
    (whole,) = sync(emulator, reference, page_limit=10).objects
    # The history once, before and after the interruption (a page of it twice, when the interrupted run
    # had fetched a page it did not checkpoint), then the new rows: a resumed `--full` read the whole
    # history a second time (1.9 times a whole read, measured). The summary counts what the resumed run
    # fetched; the checkpoint what the interrupted one had.
    assert (summary.resumed, summary.mode) == (True, "full")
    # The rows first: a count off with the rows right is the counting's fault, not a row lost.
    assert event_tables(warehouse) == event_tables(reference)
    assert query(warehouse, "SELECT count(*) FROM project_logs")[0][0] == 3_500
    read = interrupted.rows_fetched + summary.rows_fetched
    assert whole.rows_fetched <= read < 1.1 * whole.rows_fetched, (interrupted, summary, whole)


def rate(emulator: Emulator, project_id: str, ids: list[str], score: int) -> None:
    """Rate the log rows `ids` upstream (user feedback merged into each row: a new version of it)."""
    merged = [{"id": row_id, "_is_merge": True, "scores": {"thumbs": score}} for row_id in ids]
    emulator.store.insert("project_logs", project_id, merged)


@pytest.mark.parametrize("destination", ["duckdb", "iceberg"])
def test_a_resumed_incremental_run_counts_each_row_it_changed_once(
    emulator: Emulator,
    project: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    destination: str,
) -> None:
    warehouse = (
        iceberg_in(tmp_path, "resumed") if destination == "iceberg" else warehouse_in(tmp_path, "resumed")
    )
    sync(emulator, warehouse)
    held = sorted(row["id"] for row in emulator.store.live_rows("project_logs", project["id"]))

    new = [f"new-{n:03}" for n in range(100)]
    emulator.store.insert("project_logs", project["id"], [{"id": row_id, "input": row_id} for row_id in new])
    rate(emulator, project["id"], held[:100], 1)
    interrupted_read(emulator, warehouse, project["id"], monkeypatch)
    # After the kill: rows the interrupted read met are changed again, and rows it did not are changed.
    rate(emulator, project["id"], [*held[:20], *new[:20]], 0)
    rate(emulator, project["id"], held[100:110], 0)
    (summary,) = sync(emulator, warehouse, page_limit=10).objects
    # Each row once, as the run left it: an update of a row the resumed commit wrote was counted twice,
    # and a row it inserted was counted inserted and updated.
    assert summary.resumed
    assert (summary.inserted, summary.updated, summary.deleted) == (100, 110, 0)
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


def test_a_resumed_run_counts_the_rows_another_machine_wrote_meanwhile_as_updated(
    emulator: Emulator, project: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two machines syncing one Iceberg table: only their commits keep them apart.
    machine = iceberg_in(tmp_path)
    other_machine = machine.model_copy(update={"state_dir": tmp_path / "other-machine-state"})
    sync(emulator, machine)
    held = sorted(row["id"] for row in emulator.store.live_rows("project_logs", project["id"]))

    rate(emulator, project["id"], held[:100], 1)
    interrupted_read(emulator, machine, project["id"], monkeypatch)
    commit_then_catch_up = _SyncRun._sync_locked
    resumed_commits: list[ObjectRef] = []

    def other_machine_between(run: _SyncRun, ref: ObjectRef, **options: Any) -> Any:
        done = commit_then_catch_up(run, ref, **options)
        if not resumed_commits:  # the resumed read committed: the other machine syncs rows rated since
            resumed_commits.append(ref)
            rate(emulator, project["id"], held[100:120], 0)
            sync(emulator, other_machine)
            rate(emulator, project["id"], held[100:120], 1)
        return done

    monkeypatch.setattr(_SyncRun, "_sync_locked", other_machine_between)
    (summary,) = sync(emulator, machine, page_limit=10).objects
    # The catch-up updated 20 rows the other machine had written: they were taken for the resumed
    # commit's, and not counted.
    assert (summary.resumed, summary.inserted, summary.updated) == (True, 0, 120)


def test_a_resumed_first_load_counts_every_row_it_stored_as_inserted(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted_read(emulator, warehouse, project["id"], monkeypatch)
    ids = sorted(row["id"] for row in emulator.store.live_rows("project_logs", project["id"]))
    rate(emulator, project["id"], ids[:30], 1)
    (summary,) = sync(emulator, warehouse, page_limit=10).objects
    # The rows rated since the interrupted read began were stored by this run too: they were counted
    # `updated` as well.
    assert (summary.resumed, summary.mode) == (True, "full")
    assert (summary.inserted, summary.updated, summary.rows) == (len(ids), 0, len(ids))


def test_a_reconcile_removes_the_staged_rows_of_a_read_whose_object_was_deleted_since(
    emulator: Emulator,
    project: dict[str, Any],
    warehouse: WarehouseSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interrupted_read(emulator, warehouse, project["id"], monkeypatch)
    emulator.store.delete("project", project["id"])
    # Touched within the hour: another run may be reading an object created after this run's listing.
    sync(emulator, warehouse, reconcile=True)
    assert checkpoint_of(warehouse, project["id"]) is not None
    (staged,) = warehouse.state_dir.glob(f"staging/*/project_logs/{project['id']}")
    an_hour_ago = time.time() - 3601
    for entry in (staged, *staged.iterdir()):
        os.utime(entry, (an_hour_ago, an_hour_ago))
    # Neither listed nor held, the object was never visited again: its parts stayed for good.
    sync(emulator, warehouse, reconcile=True)
    assert not staged.exists()


@pytest.mark.parametrize(("full", "status"), [(False, 400), (True, 400), (False, 410), (False, 422)])
def test_a_resumed_read_whose_position_the_api_refuses_reads_the_object_afresh(
    emulator: Emulator,
    project: dict[str, Any],
    warehouse: WarehouseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    full: bool,
    status: int,
) -> None:
    interrupted_read(emulator, warehouse, project["id"], monkeypatch)
    # The cursor it saved has expired: the resumed read's first request is refused (every later sync of
    # the object failed on it, `--full` too), in whichever client error the server says so (410: gone).
    refusal = '{"error": "Invalid cursor: expired"}'
    emulator.faults.add(FaultRule(kind="status", status=status, route="/fetch", body=refusal, times=1))
    (summary,) = sync(emulator, warehouse, page_limit=10, full=full).objects
    assert (summary.status, summary.resumed) == ("synced", False)
    (warned,) = [m for m in caplog.messages if "refused the position" in m]
    assert "Invalid cursor: expired" in warned and warned.endswith("reading it afresh")
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


def test_a_resumed_read_failing_for_another_reason_keeps_what_it_staged(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted = interrupted_read(emulator, warehouse, project["id"], monkeypatch)
    emulator.faults.add(FaultRule(kind="status", status=405, route="/fetch", times=1))
    (failed,) = sync(emulator, warehouse, page_limit=10).objects
    assert failed.status == "failed" and "HTTP 405" in str(failed.error)
    assert checkpoint_of(warehouse, project["id"]) == interrupted  # read afresh, it lost its parts
    (summary,) = sync(emulator, warehouse, page_limit=10).objects
    assert (summary.status, summary.resumed) == ("synced", True)


def test_a_failed_reads_summary_counts_the_pages_it_fetched_and_staged(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    # The newest version's probe and three pages go through; the next fetch is refused, and every later one.
    emulator.faults.add(FaultRule(kind="status", status=405, route="/fetch", after=4, times=None))
    (failed,) = sync(emulator, warehouse, page_limit=10).objects
    fetches_ahead_done()
    staged = checkpoint_of(warehouse, project["id"])
    assert failed.status == "failed" and staged is not None and staged.pages > 0
    # What the next sync resumes from (its summary said 0 pages and 0 versions).
    assert (failed.pages, failed.rows_fetched, failed.resumed) == (staged.pages, staged.rows_fetched, False)
    # That sync resumes, and fails again: its summary says it resumed (it said `resumed: false`).
    (again,) = sync(emulator, warehouse, page_limit=10).objects
    assert (again.status, again.resumed, again.pages) == ("failed", True, 0)


def test_a_read_failing_at_its_commit_counts_its_whole_read(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any, **kwargs: Any) -> None:
        raise WarehouseError("cannot merge the rows read: no room")

    monkeypatch.setattr(ParquetTree, "merge", failing)
    (failed,) = sync(emulator, warehouse, page_limit=10).objects
    monkeypatch.undo()
    staged = checkpoint_of(warehouse, project["id"])
    assert failed.status == "failed" and staged is not None and staged.done
    assert (failed.pages, failed.rows_fetched) == (staged.pages, staged.rows_fetched)
    (resumed,) = sync(emulator, warehouse, page_limit=10).objects
    assert (resumed.status, resumed.resumed, resumed.rows) == ("synced", True, staged.rows_staged)


def test_a_reconcile_after_an_interrupted_read_deletes_what_was_deleted_since_it_began(
    emulator: Emulator,
    project: dict[str, Any],
    warehouse: WarehouseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sync(emulator, warehouse)
    # The interrupted read's snapshot is its start (not a minute past it), for the deletions to be newer.
    monkeypatch.setattr(xact, "PIN_AHEAD_S", 0)
    interrupted_read(emulator, warehouse, project["id"], monkeypatch, reconcile=True)
    time.sleep(1.1)  # into the next second: `_xact_id`s are minted from the clock
    gone = [row_id for (row_id,) in query(warehouse, "SELECT id FROM project_logs ORDER BY id LIMIT 3")]
    emulator.store.insert("project_logs", project["id"], [{"id": i, "_object_delete": True} for i in gone])
    (logs,) = sync(emulator, warehouse, page_limit=10, reconcile=True).objects
    # Read afresh, at a snapshot of its own: a read resumed at the interrupted one's met the rows.
    assert (logs.resumed, logs.mode, logs.deleted) == (False, "full", len(gone))
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


# Versions ------------------------------------------------------------------------------------------


@pytest.fixture
def digits(tmp_path: Path) -> Any:
    """An emulator whose `_xact_id`s cross from 9 to 10 digits: as text, "999999999" > "1000000000"."""
    with Emulator(seed="empty", xact_start=999_999_990) as emulator:
        yield emulator


def test_a_newer_version_with_more_digits_wins_an_incremental_merge(
    digits: Emulator, warehouse: WarehouseSettings
) -> None:
    project = digits.store.create_project("digits")
    for version in range(10):  # xacts 999999990 .. 999999999
        digits.store.insert("project_logs", project["id"], [{"id": "row", "output": version}])
    sync(digits, warehouse)
    assert query(warehouse, "SELECT _xact_id FROM project_logs") == [(999_999_999,)]
    digits.store.insert("project_logs", project["id"], [{"id": "row", "output": "ten digits"}])
    sync(digits, warehouse)
    assert query(warehouse, "SELECT output, _xact_id FROM project_logs") == [('"ten digits"', 1_000_000_000)]


def test_versions_of_one_read_across_a_digit_boundary_keep_the_newest(
    digits: Emulator, warehouse: WarehouseSettings
) -> None:
    project = digits.store.create_project("digits")
    for version in range(14):  # 999999990 .. 1000000003, all in one full read
        digits.store.insert("project_logs", project["id"], [{"id": "row", "output": version}])
    sync(digits, warehouse, page_limit=1)
    assert query(warehouse, "SELECT output, _xact_id FROM project_logs") == [("13", 1_000_000_003)]


def test_a_page_holding_two_versions_keeps_the_newer_one(
    emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    project = emulator.store.create_project("one-page")
    page = (
        '{"events": ['
        '{"id": "row", "_xact_id": "999999999", "output": "older"},'
        '{"id": "row", "_xact_id": "1000000000", "output": "newer"},'
        '{"id": "other", "_xact_id": "5", "output": "x"}'
        '], "cursor": null}'
    )
    emulator.faults.add(FaultRule(kind="body", route=f"{project['id']}/fetch", body=page, times=2))
    sync(emulator, warehouse)
    assert query(warehouse, "SELECT id, output FROM project_logs ORDER BY id") == [
        ("other", '"x"'),
        ("row", '"newer"'),
    ]
