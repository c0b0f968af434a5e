"""Materializing event partitions in-process against the emulator: metadata, staleness, failures, retries,
reconcile runs, and partitions run in parallel processes on one warehouse."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.loader import LoadingContextForTest

from connector.emulator import Emulator, FaultRule
from connector.sync.run import SyncOptions, run_sync
from connector.wiring import open_destination
from pipelines import BraintrustTableData, BraintrustTranslator, build_definitions
from pipelines import assets as assets_module
from pipelines.jobs import CHECKS_JOB_NAME
from pipelines.progress import LogProgress
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG
from tests.helpers import fast_client, warehouse_in
from tests.pipelines.helpers import (
    EXPERIMENT_EVENTS,
    materializations,
    refresh_catalog,
    run_job,
    sync_warehouse,
    table_size,
    warehouse_ids,
)
from tests.pipelines.test_checks import first_version_file

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS_JOB = "braintrust_experiment_events_job"


def test_a_partition_materialization_describes_the_object_the_table_and_its_newest_rows(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    tmp_path: Path,
) -> None:
    refresh_catalog(test_defs, instance)
    key = "support-bot/baseline"
    run = run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key=key)
    first = materializations(run)
    assert list(first) == [key]
    metadata = first[key]
    assert metadata["dagster/partition_row_count"] == 10
    # The whole table's size is observed on the asset, not on a partition, so no plot by partition draws it.
    assert "dagster/row_count" not in metadata
    size = table_size(run)
    assert size["dagster/row_count"] == 10 and size["dagster/size_bytes"] > 0
    assert metadata["dagster/table_name"] == "warehouse.main.experiment_events"
    assert (
        metadata["dagster/uri"]
        == f"file://{tmp_path}/parquet/experiment_events/experiment_id={upstream['experiment']}"
    )
    assert Path(metadata["dagster/uri"].removeprefix("file://"), "_sync_state.json").is_file()
    assert metadata["duckdb_file"] == str(tmp_path / "warehouse.duckdb")
    assert (metadata["object_id"], metadata["project_id"]) == (upstream["experiment"], upstream["project"])
    assert metadata["braintrust_url"] == f"{emulator.url}/app/emulator-org/p/support-bot/experiments/baseline"
    assert metadata["last_sync"].startswith("full: 10 row versions fetched in ")
    assert "10 inserted, 0 updated, 0 deleted" in metadata["last_sync"]
    assert int(metadata["version"]) > 0
    preview = metadata["preview"].splitlines()
    assert preview[0] == "| id | created | input | output | expected | scores | tags |"
    assert len(preview) == 2 + 5 and '"question 0"' in metadata["preview"]
    assert {k for k, v in metadata.items() if emulator.api_key in str(v)} == set()

    emulator.store.insert(
        "experiment",
        upstream["experiment"],
        [{"id": "ev-0", "_is_merge": True, "output": "x | y\nz"}, {"id": "ev-new", "input": "newest"}],
    )
    logs = run_job(test_defs, instance, "braintrust_project_logs_job", partition_key="support-bot")
    assert table_size(logs)["dagster/row_count"] == 30
    assert materializations(logs)["support-bot"]["braintrust_url"].endswith("/p/support-bot/logs")
    rerun = run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key=key)
    second = materializations(rerun)[key]
    assert second["last_sync"].startswith("incremental: ") and "1 inserted, 1 updated" in second["last_sync"]
    # The run log counts what the API paged through, as the metadata does: versions, not the table's rows.
    fetched = re.match(r"incremental: (\d+) row versions fetched", second["last_sync"])
    assert fetched is not None
    logged = [entry.user_message for entry in instance.all_logs(rerun.run_id)]
    line = re.compile(rf"experiment_events · support-bot/baseline: {fetched[1]} versions, \d+ pages")
    assert [message for message in logged if line.fullmatch(message)], logged
    assert (second["dagster/partition_row_count"], table_size(rerun)["dagster/row_count"]) == (11, 11)
    assert int(second["version"]) > int(metadata["version"])
    # Markdown cells stay on one line, with `|` escaped.
    assert '| "x \\| y\\nz" |' in second["preview"]
    # Materialized as the UI's Materialize does it, with the asset's checks, which run after the sync.
    with_checks = test_defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key=key, asset_selection=[EXPERIMENT_EVENTS]
    )
    assert sorted(e.check_name for e in with_checks.get_asset_check_evaluations()) == [
        "objects_synced",
        "rows_match_sync_state",
        "synced_recently",
        "unique_key",
    ]
    # What the plots by partition read: the latest materialization of each partition, by readable key.
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=EXPERIMENT_EVENTS), limit=10)
    assert {r.partition_key for r in records.records} == {key}


@pytest.mark.parametrize("damage", ["cut short", "deleted"])
def test_a_damaged_file_of_another_object_fails_no_sync_and_only_the_preview_is_left_out(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    damage: str,
) -> None:
    # A file cut short (a full disk, a bad restore) or deleted under another experiment: the views cannot
    # be read, at once or once a query reaches the file.
    other = emulator.store.create_experiment(upstream["project"], "other")
    emulator.store.insert("experiment", other["id"], [{"id": "o-1", "input": "q"}])
    refresh_catalog(test_defs, instance)
    run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/other")
    damaged = first_version_file(warehouse_resource, "experiment_events", "experiment_id", other["id"])
    if damage == "deleted":
        damaged.unlink()
    else:
        damaged.write_bytes(damaged.read_bytes()[:100])

    run = run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline")

    metadata = materializations(run)["support-bot/baseline"]
    assert metadata["dagster/partition_row_count"] == 10 and "preview" not in metadata
    warnings = [
        event.message
        for event in instance.all_logs(run.run_id)
        if event.level == logging.WARNING and "cannot be read" in (event.message or "")
    ]
    assert warnings and str(damaged.name) in warnings[0], warnings
    # The checks fail, naming the file.
    checks = run_job(test_defs, instance, CHECKS_JOB_NAME, raise_on_error=False)
    failures = [e for e in checks.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures and all(damaged.name in str(e.event_specific_data) for e in failures)


def test_bt_sync_warnings_are_in_the_run_log_of_the_shipped_instance(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    warehouse_resource: WarehouseResource,
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as local:
        refresh_catalog(test_defs, local)
        key = "support-bot/baseline"
        run_job(test_defs, local, EXPERIMENTS_JOB, partition_key=key)
        root = Path(warehouse_resource.settings().tables_root)
        versions = root / "_bt_sync" / "experiment_events" / f"experiment_id={upstream['experiment']}"
        for version in versions.glob("*.parquet"):
            version.unlink()
        rebuilt = run_job(test_defs, local, EXPERIMENTS_JOB, partition_key=key)
        warnings = [
            entry.user_message for entry in local.all_logs(rebuilt.run_id) if entry.level == logging.WARNING
        ]
    assert any("reading its whole history to rebuild it" in message for message in warnings), warnings


def test_an_iceberg_partition_s_metadata_shows_its_own_sync(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    instance: dg.DagsterInstance,
    iceberg_resource: WarehouseResource,
) -> None:
    # An Iceberg reader sees the snapshots of when it opened: one opened before the sync showed the
    # table empty (a first sync's preview, row count 0), then one sync behind.
    defs = build_definitions(braintrust, iceberg_resource)
    refresh_catalog(defs, instance)
    key = "support-bot/baseline"
    first = run_job(defs, instance, EXPERIMENTS_JOB, partition_key=key)
    assert table_size(first)["dagster/row_count"] == 10
    assert materializations(first)[key]["preview"].count("\n") == 2 + 5 - 1
    emulator.store.insert("experiment", upstream["experiment"], [{"id": "ev-new", "input": "newest"}])
    second = run_job(defs, instance, EXPERIMENTS_JOB, partition_key=key)
    assert table_size(second)["dagster/row_count"] == 11
    assert '"newest"' in materializations(second)[key]["preview"]


class NewColumnsTranslator(BraintrustTranslator):
    """What an upgrade that changes the tables' columns looks like to Dagster: a new code version."""

    def get_asset_spec(self, data: BraintrustTableData) -> dg.AssetSpec:
        return super().get_asset_spec(data).replace_attributes(code_version="new-columns")


def test_a_catalog_run_narrowed_to_one_project_counts_the_rows_the_tables_keep(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
    instance: dg.DagsterInstance,
) -> None:
    other = emulator.store.create_project("other-bot")
    emulator.store.create_experiment(other["id"], "other-run")
    refresh_catalog(build_definitions(braintrust, warehouse_resource), instance)
    narrowed = BraintrustResource(api_url=emulator.url, api_key=emulator.api_key, projects=["support-bot"])
    run = refresh_catalog(build_definitions(narrowed, warehouse_resource), instance)
    by_table = {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in run.get_asset_materialization_events()
    }
    assert (by_table["projects"]["dagster/row_count"], by_table["projects"]["listed"]) == (2, 1)
    assert (by_table["experiments"]["dagster/row_count"], by_table["experiments"]["listed"]) == (2, 1)


def test_a_project_named_by_its_id_in_upper_case_has_its_partitions_synced(
    emulator: Emulator,
    upstream: dict[str, str],
    warehouse_resource: WarehouseResource,
    instance: dg.DagsterInstance,
) -> None:
    # Discovery took it, as `sync --project` does; each run then found no object: "not among …projects".
    narrowed = BraintrustResource(
        api_url=emulator.url, api_key=emulator.api_key, projects=[upstream["project"].upper()]
    )
    definitions = build_definitions(narrowed, warehouse_resource)
    refresh_catalog(definitions, instance)
    run_job(definitions, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline")
    with warehouse_resource.reader() as connection:
        assert connection.execute("SELECT count(*) FROM experiment_events").fetchall() == [(10,)]


@pytest.mark.parametrize("damage", ["deleted", "cut"])
def test_a_narrowed_catalog_run_writes_a_lost_catalog_file_whole_again(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
    instance: dg.DagsterInstance,
    damage: str,
) -> None:
    # With `projects` narrowed, a damaged file failed every catalog run with DuckDB's "No magic bytes",
    # and a deleted one came back with that project's rows alone (the second review's).
    other = emulator.store.create_project("other-bot")
    emulator.store.create_experiment(other["id"], "other-run")
    refresh_catalog(build_definitions(braintrust, warehouse_resource), instance)
    lost = Path(warehouse_resource.parquet_root or "", "experiments", "data.parquet")
    if damage == "deleted":
        lost.unlink()
    else:
        lost.write_bytes(lost.read_bytes()[:-20])
    narrowed = BraintrustResource(api_url=emulator.url, api_key=emulator.api_key, projects=["support-bot"])
    assert refresh_catalog(build_definitions(narrowed, warehouse_resource), instance).success
    with warehouse_resource.reader() as connection:
        names = connection.execute("SELECT name FROM experiments ORDER BY name").fetchall()
    assert names == [("baseline",), ("other-run",)]


def test_unsynced_means_new_columns_never_a_catalog_refresh(
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
) -> None:
    refresh_catalog(test_defs, instance)
    run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline")
    refresh_catalog(test_defs, instance)
    now = _stale_status(test_defs, instance)
    assert now.get_status(EXPERIMENT_EVENTS, "support-bot/baseline").value == "FRESH"

    upgraded = build_definitions(braintrust, warehouse_resource, translator=NewColumnsTranslator())
    causes = _stale_status(upgraded, instance).get_stale_causes(EXPERIMENT_EVENTS, "support-bot/baseline")
    assert [c.reason for c in causes] == ["has a new code version"]


def _stale_status(definitions: dg.Definitions, instance: dg.DagsterInstance) -> CachingStaleStatusResolver:
    """What the UI's "Unsynced" badge reads."""
    graph = definitions.get_repository_def().asset_graph
    return CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))


def test_a_partition_whose_object_another_process_holds_is_retried_until_it_syncs(
    upstream: dict[str, str], test_defs: dg.Definitions, warehouse_resource: WarehouseResource, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    settings = warehouse_resource.settings()
    where = [str(settings.duckdb_path), settings.tables_root, str(settings.state_dir)]
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, *where, upstream["experiment"], upstream["project"], str(release)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with dg.instance_for_test() as instance:
            refresh_catalog(test_defs, instance)
            # Let the other process go once Dagster has scheduled a retry of the failed step.
            watcher = threading.Thread(target=_after_a_retry, args=(instance, release.touch), daemon=True)
            watcher.start()
            result = run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline")
            watcher.join(timeout=10)
            events = [e.event_type_value for e in result.all_events]
            assert events.count("STEP_UP_FOR_RETRY") >= 1 and "STEP_FAILURE" not in events
            retry = next(e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
            assert "another bt-sync process is syncing experiment_events" in str(
                retry.event_specific_data.error
            )
            assert materializations(result)["support-bot/baseline"]["dagster/partition_row_count"] == 10
    finally:
        release.touch()
        holder.wait(timeout=10)


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from typing import Any
from connector.config import WarehouseSettings
from connector.destinations.base import ObjectRef
from connector.wiring import open_destination
from schemas.api import ObjectType
from schemas.kinds import EVENT_STREAMS

duckdb_path, root, state_dir, experiment, project, release = sys.argv[1:]
settings = WarehouseSettings(duckdb_path=duckdb_path, parquet_root=root, state_dir=state_dir)
destination = open_destination(settings)
ref = ObjectRef(EVENT_STREAMS[ObjectType.EXPERIMENT], experiment, project, "support-bot/baseline")
with destination.lock(ref, 5):
    print("locked", flush=True)
    while not Path(release).exists():
        time.sleep(0.02)
"""


def _after_a_retry(instance: dg.DagsterInstance, action: Callable[[], object]) -> None:
    """Do `action` once a run of `instance` has a step up for retry (on a thread of its own)."""
    for _ in range(1000):
        for run in instance.get_runs():
            if instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY):
                action()
                return
        threading.Event().wait(0.02)


def test_a_reconcile_run_syncs_every_partition_in_one_run_and_removes_what_was_deleted_upstream(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    store = emulator.store
    for name in ("candidate", "ablation"):
        experiment = store.create_experiment(upstream["project"], name)
        store.insert("experiment", experiment["id"], [{"id": f"{name}-{i}"} for i in range(3)])
    sync_warehouse(emulator, warehouse_resource)
    refresh_catalog(test_defs, instance)
    store.delete("experiment", upstream["experiment"])
    store.insert("project_logs", upstream["project"], [{"id": "log-4", "_object_delete": True}])

    keys = instance.get_dynamic_partitions("bt_experiments")
    assert sorted(keys) == ["support-bot/ablation", "support-bot/baseline", "support-bot/candidate"]
    schedule = test_defs.resolve_schedule_def("braintrust_experiment_events_reconcile_schedule")
    request = schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(request, dg.RunRequest)
    result = run_job(test_defs, instance, EXPERIMENTS_JOB, run_config=request.run_config, tags=request.tags)
    recorded = materializations(result)
    assert sorted(recorded) == ["support-bot/ablation", "support-bot/candidate"]
    assert all(m["last_sync"].startswith("full: 3 row versions") for m in recorded.values())
    assert table_size(result)["dagster/row_count"] == 6
    assert (
        warehouse_ids(warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"])
        == set()
    )

    reconcile_logs = {"ops": {"braintrust_project_logs": {"config": {"reconcile": True}}}}
    logs = run_job(
        test_defs,
        instance,
        "braintrust_project_logs_job",
        partition_key="support-bot",
        run_config=reconcile_logs,
    )
    assert "1 deleted" in materializations(logs)["support-bot"]["last_sync"]
    remaining = warehouse_ids(warehouse_resource, "project_logs", "project_id", upstream["project"])
    assert "log-4" not in remaining and len(remaining) == 29


def deleted_once_the_run_starts(
    emulator: Emulator, instance: dg.DagsterInstance, experiment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the next run of the experiments' asset has started (as after a wait in the queue), before it
    reads its partitions, delete the experiment `support-bot/nightly` upstream and its partition, as the
    discovery sensor does."""
    read = assets_module._partition_keys

    def deleted_meanwhile(*args: Any, **kwargs: Any) -> list[str]:
        emulator.store.delete("experiment", experiment_id)
        instance.delete_dynamic_partition("bt_experiments", "support-bot/nightly")
        return read(*args, **kwargs)

    monkeypatch.setattr(assets_module, "_partition_keys", deleted_meanwhile)


def test_a_reconcile_run_whose_range_lost_a_partition_while_queued_reconciles_what_remains(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refresh_catalog(test_defs, instance)
    # Created after the others' partitions: the newest, the end of the reconcile's range.
    nightly = emulator.store.create_experiment(upstream["project"], "nightly")
    emulator.store.insert("experiment", nightly["id"], [{"id": "n-1"}])
    sync_warehouse(emulator, warehouse_resource)
    refresh_catalog(test_defs, instance)
    schedule = test_defs.resolve_schedule_def("braintrust_experiment_events_reconcile_schedule")
    request = schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(request, dg.RunRequest)
    assert request.tags[RANGE_END_TAG] == "support-bot/nightly"
    deleted_once_the_run_starts(emulator, instance, nightly["id"], monkeypatch)
    result = run_job(test_defs, instance, EXPERIMENTS_JOB, run_config=request.run_config, tags=request.tags)
    # Dagster's "not a valid range" failed the run whole: nothing was reconciled that week.
    assert sorted(materializations(result)) == ["support-bot/baseline"]
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    warned = (
        "name one removed (support-bot/nightly) since the run was requested (an object deleted or renamed "
        "upstream): it reconciles the 1"
    )
    assert any(warned in message for message in logged)
    assert warehouse_ids(warehouse_resource, "experiment_events", "experiment_id", nightly["id"]) == set()


def test_a_partition_run_whose_partition_was_removed_while_queued_syncs_nothing(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nightly = emulator.store.create_experiment(upstream["project"], "nightly")
    emulator.store.insert("experiment", nightly["id"], [{"id": "n-1"}])
    refresh_catalog(test_defs, instance)
    deleted_once_the_run_starts(emulator, instance, nightly["id"], monkeypatch)
    result = run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/nightly")
    # A reconcile's fallback, every partition there is, would have synced the others, unasked.
    assert materializations(result) == {}
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(
        "the run's partition support-bot/nightly was removed since the run was requested" in m
        and "nothing is synced" in m
        for m in logged
    )


def test_an_event_run_without_a_partition_says_how_to_name_one(
    test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    result = run_job(test_defs, instance, EXPERIMENTS_JOB, raise_on_error=False)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    # One line to act on, where Dagster's own error was a traceback about a non-partitioned run.
    said = failure.step_failure_data.user_failure_data
    assert said is not None and "names none: launch it with a partition (dg launch --partition" in str(
        said.description
    )


def test_a_range_run_in_which_one_partition_fails_names_it(
    emulator: Emulator, upstream: dict[str, str], test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    candidate = _candidate(emulator, upstream)
    refresh_catalog(test_defs, instance)
    emulator.faults.add(FaultRule(kind="status", status=400, route=f"{candidate['id']}/fetch", times=None))
    result = _range_run_of_every_experiment(test_defs, instance)
    # The error alone said what failed, not which of the run's partitions.
    assert "1 partition failed: support-bot/candidate: " in _step_failure(result)
    assert sorted(materializations(result)) == ["support-bot/baseline"]
    # Logged as it failed, too: a retried step's error shows only "RetryRequestedFromPolicy".
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith("support-bot/candidate: ") and "HTTP 400" in m for m in logged)
    # Its checks, which Dagster shows as skipped, are said to be the checks job's.
    assert any("leaves the checks of experiment_events to braintrust_checks_job" in m for m in logged)


def test_a_range_run_retried_after_its_end_partition_was_removed_stays_failed(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
) -> None:
    # The API's outage fails the step, which Dagster retries after a pause, which the watcher removing the
    # partition must beat: retried at once, the step could start again before the removal (a newcomer
    # check saw it fail so).
    definitions = _candidate_failing_a_step_retried_once(emulator, upstream, braintrust, warehouse_resource)
    with dg.instance_for_test() as instance:
        refresh_catalog(definitions, instance)
        keys = instance.get_dynamic_partitions("bt_experiments")
        # Renamed upstream before the retry: the sensor moves its partition.
        watcher = threading.Thread(
            target=_after_a_retry,
            args=(
                instance,
                partial(instance.delete_dynamic_partition, "bt_experiments", "support-bot/candidate"),
            ),
            daemon=True,
        )
        watcher.start()
        result = _range_run_of_every_experiment(definitions, instance)
        watcher.join(timeout=10)
    # The retry synced nothing and succeeded: the run went green, the candidate never synced.
    assert not result.success
    failed = _step_failure(result)
    assert f"the run's partitions {keys[0]} to {keys[-1]} name one removed (support-bot/candidate)" in failed
    assert "a retry of the step syncs nothing and fails" in failed


def _candidate(emulator: Emulator, upstream: dict[str, str]) -> dict[str, str]:
    """A second experiment of the project, `candidate`, of one row."""
    candidate: dict[str, str] = emulator.store.create_experiment(upstream["project"], "candidate")
    emulator.store.insert("experiment", candidate["id"], [{"id": "c-1"}])
    return candidate


def _candidate_failing_a_step_retried_once(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
) -> dg.Definitions:
    """Definitions making one attempt a request and retrying a failed step once, 3 s later (for a test's
    watcher to act first), beside a `_candidate` experiment whose every fetch the API fails (503)."""
    candidate = _candidate(emulator, upstream)
    once = braintrust.model_copy(update={"max_attempts": 1})
    retry = dg.RetryPolicy(max_retries=1, delay=3)
    definitions = build_definitions(once, warehouse_resource, retry_policy=retry)
    emulator.faults.add(FaultRule(kind="status", status=503, route=f"{candidate['id']}/fetch", times=None))
    return definitions


def _range_run_of_every_experiment(
    definitions: dg.Definitions, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """One run of the experiments' partitions as a range, the first to the last; it may fail."""
    keys = instance.get_dynamic_partitions("bt_experiments")
    return run_job(
        definitions,
        instance,
        EXPERIMENTS_JOB,
        tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
        raise_on_error=False,
    )


def _step_failure(result: dg.ExecuteInProcessResult) -> str:
    """The message of the run's one step failure."""
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    return str(failure.step_failure_data.error.message)


def test_partitions_materialized_with_dg_in_parallel_processes_share_the_warehouse(
    emulator: Emulator, tmp_path: Path
) -> None:
    project = emulator.store.create_project("parallel")
    names = [f"exp-{n}" for n in range(2)]
    experiments = [emulator.store.create_experiment(project["id"], name)["id"] for name in names]
    for n, experiment in enumerate(experiments):
        emulator.store.insert(
            "experiment", experiment, [{"id": f"e{n}-{i}", "input": "x" * 200} for i in range(400)]
        )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    keys = [f"parallel/{name}" for name in names]
    with dg.DagsterInstance.from_config(str(home)) as home_instance:
        home_instance.add_dynamic_partitions("bt_experiments", keys)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "BRAINTRUST_API_URL": emulator.url,
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_DUCKDB": str(tmp_path / "warehouse.duckdb"),
        "BT_SYNC_PARQUET": str(tmp_path / "parquet"),
        "BT_SYNC_STATE_DIR": str(tmp_path / "state"),
    }
    # In-process steps: the processes under test are the runs, one per partition, as the queue launches them.
    in_process = '{"execution": {"config": {"in_process": {}}}}'
    launch = [str(Path(sys.executable).parent / "dg"), "launch", "--assets", "braintrust/experiment_events"]
    runs = [
        subprocess.Popen(
            [*launch, "--partition", key, "--config-json", in_process],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for key in keys
    ]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * len(runs), "\n".join(outputs)
    resource = WarehouseResource(duckdb_path=env["BT_SYNC_DUCKDB"], parquet_root=env["BT_SYNC_PARQUET"])
    for experiment in experiments:
        synced = warehouse_ids(resource, "experiment_events", "experiment_id", experiment)
        assert synced == {row["id"] for row in emulator.store.live_rows("experiment", experiment)}
    with dg.DagsterInstance.from_config(str(home)) as home_instance:
        partitions = dg.DynamicPartitionsDefinition(name="bt_experiments")
        status = home_instance.get_status_by_partition(EXPERIMENT_EVENTS, keys, partitions)
    assert status == dict.fromkeys(keys, dg.AssetPartitionStatus.MATERIALIZED)
    assert not [line for output in outputs for line in output.splitlines() if "Warning" in line]


def test_a_range_run_retried_after_one_partition_failed_syncs_and_records_the_others_once(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
) -> None:
    # The first attempt of the step fails on the candidate alone; the pause lets the watcher clear the fault.
    definitions = _candidate_failing_a_step_retried_once(emulator, upstream, braintrust, warehouse_resource)
    with dg.instance_for_test() as instance:
        refresh_catalog(definitions, instance)
        watcher = threading.Thread(target=_after_a_retry, args=(instance, emulator.faults.clear), daemon=True)
        watcher.start()
        result = _range_run_of_every_experiment(definitions, instance)
        watcher.join(timeout=10)
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success
    # The retry synced the baseline again, recording it a second time with "0 inserted": the partition's
    # latest materialization then said this run inserted nothing.
    recorded = [event.partition for event in result.get_asset_materialization_events()]
    assert sorted(recorded) == ["support-bot/baseline", "support-bot/candidate"]
    assert "support-bot/baseline: synced by an earlier attempt of this run, not again" in logged
    assert materializations(result)["support-bot/baseline"]["dagster/partition_row_count"] == 10


def test_a_run_log_names_an_object_with_its_control_characters_escaped(
    emulator: Emulator, tmp_path: Path
) -> None:
    # A line break in an experiment's name split its line of a Dagster run's log in two.
    project = emulator.store.create_project("weird")
    experiment = emulator.store.create_experiment(project["id"], "nl\nx")
    emulator.store.insert("experiment", experiment["id"], [{"id": "r", "input": 1}])
    logged: list[str] = []

    class Log:
        def info(self, msg: str) -> None:
            logged.append(msg)

    with fast_client(emulator) as client:
        run_sync(
            client, open_destination(warehouse_in(tmp_path), prepare=False), SyncOptions(), LogProgress(Log())
        )
    (line,) = [line for line in logged if line.startswith("experiment_events")]
    assert line == "experiment_events · weird/nl\\x0ax: 1 version, 2 pages"
