"""Incremental sync, end to end: the real client against the emulator, into real Parquet files."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from connector.api.xact import xact_for_time
from connector.config import WarehouseSettings
from connector.destinations.base import MergeResult, ObjectRef
from connector.destinations.parquet_tree import ParquetTree
from connector.emulator import Emulator, FaultRule, server
from connector.emulator.history import History
from connector.errors import ConfigError, MalformedResponse, WarehouseError
from connector.sync import run as run_module
from connector.sync.catalog import discover_catalog
from connector.sync.run import SyncOptions, SyncSummary, remove_vanished, sync_object
from connector.sync.staging import ObjectStaging
from connector.wiring import open_destination
from schemas.kinds import EVENT_KINDS
from tests.helpers import (
    LOGS,
    LOGS_REF,
    event,
    event_tables,
    fast_client,
    fetches_served,
    fresh_sync_tables,
    iceberg_in,
    logs_state,
    query,
    staged,
    sync,
    warehouse_in,
    warehouse_of,
)


def live_ids(emulator: Emulator, object_type: str, object_id: str) -> set[str]:
    return {row["id"] for row in emulator.store.live_rows(object_type, object_id)}


@pytest.fixture
def project(emulator: Emulator) -> dict[str, Any]:
    project = emulator.store.create_project("sync-tests")
    emulator.store.insert(
        "project_logs",
        project["id"],
        [
            {
                "id": f"log-{i}",
                "input": {"q": i},
                "output": f"a{i}",
                "scores": {"acc": i / 100},
                "metadata": {"model": "m1"},
                "metrics": {"prompt_tokens": i, "completion_tokens": 2 * i},
                "tags": ["t"],
                "root_span_id": f"trace-{i // 3}",
                "span_id": f"span-{i}",
            }
            for i in range(60)
        ],
    )
    return project


def test_full_then_incremental_equals_fresh_full_sync(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings, tmp_path: Any
) -> None:
    first = sync(emulator, warehouse)
    assert first.objects[0].rows == 60
    emulator.store.insert(
        "project_logs", project["id"], [{"id": "log-5", "_is_merge": True, "output": "changed"}]
    )
    emulator.store.insert("project_logs", project["id"], [{"id": "log-new", "input": "fresh"}])
    dataset = emulator.store.create_dataset(project["id"], "ds")
    emulator.store.insert("dataset", dataset["id"], [{"id": "r1", "input": 1, "expected": 2}])
    second = sync(emulator, warehouse)
    logs = next(o for o in second.objects if o.table == "project_logs")
    assert (logs.mode, logs.inserted, logs.updated) == ("incremental", 1, 1)
    fresh = warehouse_in(tmp_path, "fresh")
    sync(emulator, fresh, full=True)
    assert event_tables(warehouse) == event_tables(fresh)
    assert query(warehouse, "SELECT output FROM project_logs WHERE id = 'log-5'") == [('"changed"',)]


def test_update_of_an_old_row_lands(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    sync(emulator, warehouse)
    emulator.store.insert(
        "project_logs", project["id"], [{"id": "log-0", "_is_merge": True, "scores": {"acc": 0.99}}]
    )
    sync(emulator, warehouse)
    rows = query(
        warehouse, "SELECT scores['acc'], output, count(*) OVER () FROM project_logs WHERE id = 'log-0'"
    )
    assert rows == [(0.99, '"a0"', 1)]


def test_same_id_in_two_datasets_stays_two_rows(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    first = emulator.store.create_dataset(project["id"], "first")
    second = emulator.store.create_dataset(project["id"], "second")
    emulator.store.insert("dataset", first["id"], [{"id": "shared", "input": "from first"}])
    emulator.store.insert("dataset", second["id"], [{"id": "shared", "input": "from second"}])
    sync(emulator, warehouse)
    rows = query(
        warehouse, "SELECT dataset_id, input FROM dataset_records WHERE id = 'shared' ORDER BY input"
    )
    assert rows == [(first["id"], '"from first"'), (second["id"], '"from second"')]


def test_an_object_with_no_rows_left_upstream_is_read_as_asked(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    dataset = emulator.store.create_dataset(project["id"], "emptied")
    emulator.store.insert("dataset", dataset["id"], [{"id": f"d{i}", "input": i} for i in range(3)])
    sync(emulator, warehouse)
    emulator.store.insert(
        "dataset", dataset["id"], [{"id": f"d{i}", "_object_delete": True} for i in range(3)]
    )

    def emptied(**options: Any) -> tuple[str, int, int]:
        (summary,) = [o for o in sync(emulator, warehouse, **options).objects if o.object_id == dataset["id"]]
        return summary.mode, summary.rows, summary.deleted

    # An incremental sync that found nothing to read was called full, its rows those of the last sync.
    assert emptied() == ("incremental", 3, 0)
    assert emptied(full=True) == ("full", 3, 0)
    assert emptied(reconcile=True) == ("full", 0, 3)


def test_reconcile_removes_rows_and_objects_deleted_upstream(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    dataset = emulator.store.create_dataset(project["id"], "to-delete")
    emulator.store.insert("dataset", dataset["id"], [{"id": "d1", "input": 1}])
    sync(emulator, warehouse)
    emulator.store.insert("project_logs", project["id"], [{"id": "log-7", "_object_delete": True}])
    emulator.store.delete("dataset", dataset["id"])
    incremental = sync(emulator, warehouse)
    assert sum(o.deleted for o in incremental.objects) == 0  # fetch never reports deletes
    reconciled = sync(emulator, warehouse, reconcile=True)
    assert reconciled.removed_objects == [f"dataset:{dataset['id']}"]
    ids = {row[0] for row in query(warehouse, "SELECT id FROM project_logs")}
    assert ids == live_ids(emulator, "project_logs", project["id"])
    assert query(warehouse, "SELECT count(*) FROM dataset_records") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM sync_state WHERE object_id = ?", [dataset["id"]]) == [(0,)]


@pytest.mark.parametrize("seed", ["demo", "empty"])  # another organization's API; a key that reads nothing
def test_an_api_listing_none_of_the_warehouse_s_projects_is_refused_before_anything_is_written(
    demo_emulator: Emulator, warehouse: WarehouseSettings, seed: str
) -> None:
    synced = sync(demo_emulator, warehouse)
    tables = event_tables(warehouse)
    with Emulator(seed=seed) as other:
        for reconcile in (False, True):
            with pytest.raises(ConfigError, match="none of the 3 this warehouse holds objects of") as refused:
                sync(other, warehouse, reconcile=reconcile)
            assert "Nothing was written" in str(refused.value)
        # The Dagster reconcile removes objects with the same function: it refuses too.
        with fast_client(other) as client:
            catalog = discover_catalog(client)
            with pytest.raises(ConfigError):
                remove_vanished(client, open_destination(warehouse), catalog, EVENT_KINDS, 1.0)
    assert event_tables(warehouse) == tables
    assert query(warehouse, "SELECT count(*) FROM projects") == [(synced.catalog["projects"],)]


def test_a_project_synced_alone_beside_others_synced_alone_is_no_other_api(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # The warehouse holds one project's objects; the next sync selects another, which the API lists too.
    sync(demo_emulator, warehouse, projects=("rag-search",))
    for project in ("support-bot", "doc-summarizer"):
        (logs, *_) = sync(demo_emulator, warehouse, projects=(project,), reconcile=True).objects
        assert logs.status == "synced"
    assert query(warehouse, "SELECT count(DISTINCT project_id) FROM sync_state") == [(3,)]


@pytest.mark.parametrize("deleted", ["log-7", "latest"])
def test_a_reconcile_honours_the_deletions_made_before_it_with_this_machine_s_clock_behind(
    warehouse: WarehouseSettings, deleted: str
) -> None:
    # The API's clock 30 s ahead of this machine's: its `_xact_id`s are minted from there on.
    with Emulator(seed="empty", xact_start=xact_for_time(time.time() + 30)) as ahead:
        project = ahead.store.create_project("ahead")["id"]
        ahead.store.insert("project_logs", project, [{"id": f"log-{i}", "input": i} for i in range(60)])
        ahead.store.insert("project_logs", project, [{"id": "latest", "input": "newest row"}])
        sync(ahead, warehouse)
        ahead.store.insert("project_logs", project, [{"id": deleted, "_object_delete": True}])
        # The deletion is the object's last write: only a pin past it hides the row. Deleting "latest"
        # leaves an older newest row than the one synced: only the watermark committed says it existed.
        (logs,) = sync(ahead, warehouse, reconcile=True).objects
        assert (logs.deleted, logs.rows) == (1, 60)
        ids = {row[0] for row in query(warehouse, "SELECT id FROM project_logs")}
        assert ids == live_ids(ahead, "project_logs", project)


def test_an_overlap_of_a_fraction_of_a_second_re_reads_a_whole_second(warehouse: WarehouseSettings) -> None:
    # An `_xact_id` counts whole seconds: 0.9 s was read as 0, no window at all.
    with Emulator(seed="empty", xact_start=xact_for_time(time.time())) as api:
        project = api.store.create_project("late")["id"]
        api.store.insert("project_logs", project, [{"id": f"log-{i}", "input": i} for i in range(5)])
        sync(api, warehouse)
        fetched = {
            overlap: sync(api, warehouse, overlap_s=overlap).objects[0].rows_fetched for overlap in (0, 0.9)
        }
    # The ids minted one after another, within a second of the watermark: a window re-reads them all
    # (without one, nothing is above the watermark: no row is read).
    assert fetched == {0: 0, 0.9: 5}


@pytest.mark.parametrize(("minted_ago_s", "read_again"), [(0, 5), (20, 5), (3600, 0)])
def test_an_unchanged_object_is_read_again_only_where_its_last_writes_may_not_all_have_shown(
    warehouse: WarehouseSettings, minted_ago_s: int, read_again: int
) -> None:
    # A write shows within the overlap window of its version's time, and the API's clocks (its answers'
    # and its ids') are at most half a minute apart: a read begun later, by the API's answer, met every
    # write up to its watermark.
    with Emulator(seed="empty", xact_start=xact_for_time(time.time() - minted_ago_s)) as api:
        project = api.store.create_project("settled")["id"]
        api.store.insert("project_logs", project, [{"id": f"log-{i}", "input": i} for i in range(5)])
        sync(api, warehouse, overlap_s=5)
        api.stats.reset()
        (unchanged,) = sync(api, warehouse, overlap_s=5).objects
        # Settled, the object costs one request (its newest version) a sync, not a read of its last writes.
        assert (unchanged.rows_fetched, unchanged.pages > 0) == (read_again, read_again > 0)
        assert (fetches_served(api) == 1) == (read_again == 0)
        api.store.insert("project_logs", project, [{"id": "new", "input": "later"}])
        (changed,) = sync(api, warehouse, overlap_s=5).objects
        assert (changed.inserted, changed.rows) == (1, 6)


class _TwoHoursAhead(datetime):
    """This machine's clock, two hours ahead of the API's."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        return datetime.now(tz) + timedelta(hours=2)


@pytest.mark.parametrize("clock_ahead", [None, "this machine's", "the API's answers'"])
def test_a_write_that_shows_late_within_the_overlap_window_is_read_whatever_one_clock_says(
    warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch, clock_ahead: str | None
) -> None:
    # Ingestion lag: a write the API shows only once a later one was read, its version below the watermark.
    hidden: set[bytes] = set()
    collect = History._collect

    def lagging(self: History, end: int, limit: int, version: int | None) -> tuple[list[bytes], int]:
        rows, next_end = collect(self, end, limit, version)
        return [row for row in rows if not any(written in row for written in hidden)], next_end

    monkeypatch.setattr(History, "_collect", lagging)
    # Two hours ahead, either clock alone told a read's start after every write had settled: none was read
    # again (a proxy's `Date`, say, or a machine's clock off).
    if clock_ahead == "this machine's":
        monkeypatch.setattr(run_module, "datetime", _TwoHoursAhead)
    elif clock_ahead == "the API's answers'":
        date = formatdate(_TwoHoursAhead.now(UTC).timestamp(), usegmt=True)
        monkeypatch.setattr(server._Handler, "date_time_string", lambda self, timestamp=None: date)
    with Emulator(seed="empty") as api:
        project = api.store.create_project("lagging")["id"]
        for row_id in ("old", "late", "newest"):
            api.store.insert("project_logs", project, [{"id": row_id, "input": row_id}])
        hidden.add(b'"id":"late"')
        sync(api, warehouse, overlap_s=5)
        hidden.clear()
        for _ in range(2):  # the next sync, and the one after it, read it again and again
            sync(api, warehouse, overlap_s=5)
    assert {row[0] for row in query(warehouse, "SELECT id FROM project_logs")} == {"old", "late", "newest"}


def fetches_asked_for(emulator: Emulator, count: int) -> None:
    """Wait until the emulator was asked for `count` fetches since its stats were reset (the last may
    be served slowly)."""
    deadline = time.monotonic() + 30
    while fetches_served(emulator) < count:
        assert time.monotonic() < deadline, "the sync never asked"
        time.sleep(0.01)


def test_a_row_written_as_a_read_began_then_deleted_is_reconciled_away(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    # Written after the sync read the newest version, before its first page came: on that page.
    emulator.stats.reset()
    emulator.faults.add(FaultRule(kind="slow", route="/fetch", delay_s=1, times=1, after=1))
    syncing = threading.Thread(target=sync, args=(emulator, warehouse))
    syncing.start()
    fetches_asked_for(emulator, 2)
    emulator.store.insert("project_logs", project["id"], [{"id": "as-it-began", "input": 1}])
    syncing.join()
    assert query(warehouse, "SELECT count(*) FROM project_logs WHERE id = 'as-it-began'") == [(1,)]
    emulator.store.insert("project_logs", project["id"], [{"id": "as-it-began", "_object_delete": True}])
    # The newest row is now older than it: only the watermark the first sync committed covers it.
    (logs,) = sync(emulator, warehouse, reconcile=True).objects
    assert (logs.deleted, logs.rows) == (1, 60)


# Told by the probe of the newest version (the object's first request), or by a page amid the history.
@pytest.mark.parametrize("after", [0, 3])
def test_a_reconcile_told_once_that_the_history_ended_early_deletes_nothing(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings, tmp_path: Path, after: int
) -> None:
    sync(emulator, warehouse)
    # An empty page without a cursor, where the history goes on: taken for its end, the reconcile deleted
    # every row it had not reached (most of the table, or all of it), and no incremental sync brought
    # them back.
    emulator.faults.add(FaultRule(kind="body", body='{"events": []}', route="/fetch", times=1, after=after))
    (logs,) = sync(emulator, warehouse, reconcile=True, page_limit=5).objects
    assert (logs.status, logs.deleted, logs.rows) == ("synced", 0, 60)
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


def test_a_reconcile_deleting_most_of_an_object_says_so_and_how_to_undo_it(
    emulator: Emulator,
    project: dict[str, Any],
    warehouse: WarehouseSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.store.insert(
        "project_logs", project["id"], [{"id": f"more-{n}", "input": n} for n in range(140)]
    )
    sync(emulator, warehouse)
    gone = [{"id": f"more-{n}", "_object_delete": True} for n in range(101)]
    emulator.store.insert("project_logs", project["id"], gone[:1])
    sync(emulator, warehouse, reconcile=True)
    assert not [m for m in caplog.messages if "the reconcile deleted" in m]
    emulator.store.insert("project_logs", project["id"], gone[1:])
    (logs,) = sync(emulator, warehouse, reconcile=True).objects
    assert (logs.deleted, logs.rows) == (100, 99)
    (warned,) = [m for m in caplog.messages if "the reconcile deleted" in m]
    assert "deleted 100 of its 199 rows, which the API no longer lists" in warned
    assert warned.endswith("`bt-sync sync --full` brings them back")


def test_a_reconcile_keeps_what_another_iceberg_worker_committed_while_it_read(tmp_path: Path) -> None:
    # Workers with state directories of their own, as the Iceberg docs deploy them: no shared lock. The
    # API's clock is 30 s behind this machine's: a bound read off this clock would take in the new row.
    first = iceberg_in(tmp_path)
    second = first.model_copy(update={"state_dir": tmp_path / "second-worker"})
    with Emulator(seed="empty", xact_start=xact_for_time(time.time() - 30)) as behind:
        project = behind.store.create_project("shared")["id"]
        behind.store.insert("project_logs", project, [{"id": f"log-{i}", "input": i} for i in range(100)])
        sync(behind, first)
        # The reconcile's second page (after its read of the newest version and its first page, which
        # is short) is slow to come: the new row is written above where the read has gone.
        behind.stats.reset()
        behind.faults.add(FaultRule(kind="slow", route="/fetch", delay_s=4, times=1, after=2))
        reconciled: list[SyncSummary] = []
        reconcile = threading.Thread(target=lambda: reconciled.append(sync(behind, first, reconcile=True)))
        reconcile.start()
        fetches_asked_for(behind, 3)
        behind.store.insert("project_logs", project, [{"id": "while-it-read", "input": 1}])
        assert sync(behind, second).objects[0].inserted == 1
        reconcile.join()
        assert reconciled[0].objects[0].deleted == 0
        ids = {row[0] for row in query(first, "SELECT id FROM project_logs")}
        assert ids == live_ids(behind, "project_logs", project)


@pytest.mark.parametrize("destination", ["duckdb", "iceberg"])
def test_a_reconcile_keeps_rows_newer_than_its_read_another_worker_committed(
    tmp_path: Path, destination: str
) -> None:
    # Workers with state directories of their own share no lock: one commits while the other reads.
    settings = warehouse_of(destination, tmp_path)
    warehouse = open_destination(settings)

    def merge(name: str, rows: list[dict[str, Any]], up_to: int | None = None) -> MergeResult:
        return warehouse.merge(
            LOGS_REF, staged(tmp_path / name, rows), logs_state(None), delete_missing_up_to=up_to
        )

    merge("first", [event("kept", 1), event("deleted-upstream", 2)])
    merge("other-worker", [event("newer", 9)])
    # The reconcile's read began at 5: it met every row up to 5, and "deleted-upstream" was not live.
    reconciled = merge("reconcile", [event("kept", 1)], up_to=5)
    assert (reconciled.deleted, reconciled.rows) == (1, 2)
    assert query(settings, "SELECT id FROM project_logs ORDER BY id") == [("kept",), ("newer",)]


def test_reconcile_of_every_project_removes_a_project_deleted_upstream_and_its_objects(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    doomed = emulator.store.create_project("doomed")
    emulator.store.insert("project_logs", doomed["id"], [{"id": "l1", "input": 1}])
    experiment = emulator.store.create_experiment(doomed["id"], "doomed-exp")
    emulator.store.insert("experiment", experiment["id"], [{"id": "e1", "input": 1}])
    sync(emulator, warehouse)
    emulator.store.delete("project", doomed["id"])
    # A reconcile of some projects only leaves the others' objects alone, deleted or not.
    assert sync(emulator, warehouse, reconcile=True, projects=(project["name"],)).removed_objects == []
    assert query(warehouse, "SELECT count(*) FROM project_logs WHERE project_id = ?", [doomed["id"]]) == [
        (1,)
    ]
    reconciled = sync(emulator, warehouse, reconcile=True)
    assert sorted(reconciled.removed_objects) == sorted(
        [f"project_logs:{doomed['id']}", f"experiment:{experiment['id']}"]
    )
    assert query(warehouse, "SELECT count(*) FROM project_logs WHERE project_id = ?", [doomed["id"]]) == [
        (0,)
    ]
    assert query(
        warehouse, "SELECT count(*) FROM experiment_events WHERE experiment_id = ?", [experiment["id"]]
    ) == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM projects WHERE id = ?", [doomed["id"]]) == [(0,)]


@pytest.mark.parametrize("changed_traces", [5, 33])
def test_incremental_after_a_small_change_fetches_at_most_half_as_much_again(
    emulator: Emulator, warehouse: WarehouseSettings, changed_traces: int
) -> None:
    project = emulator.store.create_project("big")
    # Traces of exactly ten spans: the generator's RNG is seeded by the (random) project id, and with
    # traces of 1-20 spans the overshoot below varied from run to run (170 rows served once in CI).
    spans = 10
    emulator.store.generate_logs(project["id"], 5_000, trace_spans=(spans, spans), update_fraction=0.0)
    full = sync(emulator, warehouse)
    assert full.rows_fetched == 5_000
    changed = [
        {"id": row["id"], "_is_merge": True, "metadata": {"touched": True}}
        for row in emulator.store.live_rows("project_logs", project["id"])[: changed_traces * spans]
    ]
    emulator.store.insert("project_logs", project["id"], changed)
    emulator.stats.reset()
    incremental = sync(emulator, warehouse)
    assert incremental.objects[0].updated == len(changed)
    # The changed rows are whole traces. The last page overshoots into already-synced traces; 33
    # traces would overshoot by 31 if pages doubled (1 + 2 + ... + 16, then 32), and by 9 as they grow
    # here. The version pin's page adds one trace more. Never the whole history.
    served = sum(emulator.stats.rows_served.values())
    assert len(changed) <= incremental.rows_fetched <= served <= 1.5 * len(changed) + spans


def test_catalog_tables_hold_every_kind(demo_emulator: Emulator, warehouse: WarehouseSettings) -> None:
    summary = sync(demo_emulator, warehouse)
    for table in (
        "projects",
        "experiments",
        "datasets",
        "prompts",
        "functions",
        "project_scores",
        "project_tags",
    ):
        (count,) = query(warehouse, f"SELECT count(*) FROM {table}")[0]
        assert count == summary.catalog[table] > 0, table


def test_reconcile_keeps_an_object_created_and_synced_after_its_listing(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    doomed = emulator.store.create_dataset(project["id"], "doomed")
    emulator.store.insert("dataset", doomed["id"], [{"id": "d1", "input": 1}])
    sync(emulator, warehouse)
    emulator.store.delete("dataset", doomed["id"])
    with fast_client(emulator) as client:
        listed = discover_catalog(client, ())  # what a reconcile lists when it starts
        # Meanwhile another run syncs an experiment created since: the listing lacks it.
        experiment = emulator.store.create_experiment(project["id"], "new")
        emulator.store.insert("experiment", experiment["id"], [{"id": "e1", "input": 1}])
        sync(emulator, warehouse)
        destination = open_destination(warehouse)
        # An object the API cannot check now is kept: the run goes on, and a later reconcile removes it.
        emulator.faults.add(
            FaultRule(kind="status", status=503, route=f"/v1/dataset/{doomed['id']}$", times=6)
        )
        assert remove_vanished(client, destination, listed, EVENT_KINDS, lock_wait_s=5) == []
        removed = remove_vanished(client, destination, listed, EVENT_KINDS, lock_wait_s=5)
    assert removed == [f"dataset:{doomed['id']}"]
    assert query(
        warehouse, "SELECT count(*) FROM experiment_events WHERE experiment_id = ?", [experiment["id"]]
    ) == [(1,)]


def test_staged_parts_removed_while_a_read_runs_fail_that_object_alone_and_the_next_sync_reads_it_afresh(
    emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, kept = (emulator.store.create_project(name) for name in ("gone", "kept"))
    for project in (gone, kept):
        emulator.store.generate_logs(project["id"], 300, update_fraction=0.0, rng_seed=4)
    extract = run_module.extract_object

    def scratch_cleaned_meanwhile(
        client: Any, ref: ObjectRef, staging: ObjectStaging, *args: Any, **kwargs: Any
    ) -> Any:
        checkpoint = extract(client, ref, staging, *args, **kwargs)
        if ref.name == "gone":  # a tmp cleaner, a disk swapped under --state-dir
            shutil.rmtree(staging.directory)
        return checkpoint

    monkeypatch.setattr(run_module, "extract_object", scratch_cleaned_meanwhile)
    failed = {o.name: o for o in sync(emulator, warehouse).objects}
    monkeypatch.undo()
    # Was DuckDB's "No files found that match the pattern" for the whole run, with no summary.
    assert (failed["kept"].status, failed["gone"].status, failed["gone"].mode) == ("synced", "failed", "full")
    assert failed["gone"].error is not None
    assert failed["gone"].error.startswith(
        "what its read staged was removed while it ran (part-000000.parquet"
    )
    assert failed["gone"].error.endswith("nothing was committed, and the next sync reads the object afresh")
    assert [o.status for o in sync(emulator, warehouse).objects] == ["synced", "synced"]
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


def test_a_first_load_that_failed_to_commit_is_read_afresh_without_a_warning_of_damage(
    emulator: Emulator,
    warehouse: WarehouseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = emulator.store.create_project("first")
    emulator.store.generate_logs(project["id"], 300, update_fraction=0.0, rng_seed=4)

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise WarehouseError("cannot write: No space left on device")

    with monkeypatch.context() as failing:  # after the merge took the staged parts into the tree
        failing.setattr(ParquetTree, "_commit", full_disk)
        assert [o.status for o in sync(emulator, warehouse).objects] == ["failed"]
    # Nothing outside harmed its staged parts: the rerun said they "cannot be read".
    assert [o.status for o in sync(emulator, warehouse).objects] == ["synced"]
    assert not [r for r in caplog.records if "cannot resume" in r.getMessage()]
    assert event_tables(warehouse) == fresh_sync_tables(emulator, tmp_path)


def test_a_failed_objects_error_does_not_quote_the_api_key(
    emulator: Emulator, project: dict[str, Any], warehouse: WarehouseSettings
) -> None:
    # Pages whose version is the key (a server echoing the request into its rows): the error quotes the
    # value, and Dagster keeps an error as it is given (only the command line hid it), raised by
    # `sync_object` for a partition.
    page = json.dumps({"events": [{"id": "x", "_xact_id": emulator.api_key}], "cursor": None})
    emulator.faults.add(FaultRule(kind="body", body=page, route="/fetch", times=None))
    (logs,) = sync(emulator, warehouse).objects
    assert logs.status == "failed"
    assert "that is not a 64-bit decimal number, e.g. '***'" in str(logs.error)
    assert emulator.api_key not in str(logs.error)
    with fast_client(emulator) as client, pytest.raises(MalformedResponse) as raised:
        ref = ObjectRef(LOGS, project["id"], project["id"], project["name"])
        sync_object(client, open_destination(warehouse), ref, SyncOptions())
    assert "e.g. '***'" in str(raised.value) and emulator.api_key not in str(raised.value)


@pytest.mark.parametrize("destination", ["duckdb", "iceberg"])
def test_a_merge_leaves_no_directory_of_its_own_behind(
    emulator: Emulator, project: dict[str, Any], tmp_path: Path, destination: str
) -> None:
    # One stayed in the scratch directory for every object ever synced, those removed upstream too.
    settings = warehouse_of(destination, tmp_path)
    sync(emulator, settings)
    emulator.store.insert(
        "project_logs", project["id"], [{"id": "log-1", "_is_merge": True, "output": "new"}]
    )
    (logs,) = sync(emulator, settings).objects
    assert logs.updated == 1
    # The merges' shared spill directory alone.
    assert [path.name for path in settings.state_dir.rglob("merge/*")] == ["spill"]


def test_a_project_not_listed_is_answered_with_the_names_that_read_alike_and_a_short_list(
    emulator: Emulator,
) -> None:
    # One name of 5,000 characters made the line 5 KB longer: cut.
    for name in ("support-bot", "p1", "l" * 5_000, *(f"team-{n:02}" for n in range(30))):
        emulator.store.create_project(name)
    with fast_client(emulator) as client:
        # A case slip: the 32 names followed, 10 KB of them with 311 projects, and no hint.
        with pytest.raises(ConfigError) as cased:
            discover_catalog(client, ["Support-Bot"])
        # Pasted with a zero-width space: the message showed "p1" as unknown, and p1 among the projects.
        with pytest.raises(ConfigError) as pasted:
            discover_catalog(client, ["p1\u200b"])
    assert str(cased.value).startswith(
        "no project named or with id Support-Bot (did you mean 'support-bot'? projects: "
        f"{'l' * 60}…, p1, support-bot, team-00, team-01,"
    )
    assert "team-16, and 13 more); one deleted or renamed upstream" in str(cased.value)
    assert str(pasted.value).startswith("no project named or with id p1\\u200b (did you mean 'p1'? projects:")


def test_a_project_is_chosen_by_its_id_in_either_case(emulator: Emulator) -> None:
    project = emulator.store.create_project("support-bot")
    emulator.store.create_project("other")
    with fast_client(emulator) as client:
        # Some tools print UUIDs in upper case: it was "no project named or with id …", deleted or renamed.
        catalog = discover_catalog(client, [project["id"].upper()], [])
    assert [p.name for p in catalog.projects] == ["support-bot"]
