"""Partitions: one per Braintrust object, keyed by its readable name, kept in step by the sensor and the
catalog, and requested by the schedules."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from connector.emulator import Emulator, FaultRule
from pipelines import BraintrustResource, build_definitions, sensors
from pipelines.jobs import CATALOG_JOB_NAME
from pipelines.resources import WarehouseResource
from pipelines.sensors import DISCOVERY_INTERVAL_S
from tests.helpers import run_cli
from tests.pipelines.helpers import (
    EXPERIMENT_EVENTS,
    apply,
    discover,
    materializations,
    refresh_catalog,
    run_job,
    sync_warehouse,
    warehouse_ids,
)

EXPERIMENTS_JOB = "braintrust_experiment_events_job"


def partition_changes(result: dg.SensorResult) -> list[tuple[str, str, list[str]]]:
    return [
        (
            type(r).__name__.removesuffix("DynamicPartitionsRequest"),
            r.partitions_def_name,
            list(r.partition_keys),
        )
        for r in result.dynamic_partitions_requests
    ]


def test_the_sensor_keeps_one_readable_partition_per_object_and_follows_renames(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    first = discover(test_defs, instance)
    assert partition_changes(first) == [
        ("Add", "bt_project_logs", ["support-bot"]),
        ("Add", "bt_experiments", ["support-bot/baseline"]),
        ("Add", "bt_datasets", ["support-bot/golden"]),
    ]
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [
        (CATALOG_JOB_NAME, None),
        ("braintrust_project_logs_job", "support-bot"),
        (EXPERIMENTS_JOB, "support-bot/baseline"),
        ("braintrust_dataset_records_job", "support-bot/golden"),
    ]
    apply(first, test_defs, instance)
    synced = warehouse_ids(warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"])
    assert len(synced) == 10
    assert not discover(test_defs, instance).dynamic_partitions_requests

    emulator.store.patch("experiment", upstream["experiment"], {"name": "baseline-v2"})
    emulator.store.delete("dataset", upstream["dataset"])
    # A run of the old key, launched before the sensor moved the partition, fails and is not retried.
    stale = run_job(
        test_defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline", raise_on_error=False
    )
    events = [e.event_type_value for e in stale.all_events]
    assert events.count("STEP_FAILURE") == 1 and "STEP_UP_FOR_RETRY" not in events
    (failure,) = [e for e in stale.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "has the partition key 'support-bot/baseline': it was deleted or renamed" in str(
        failure.event_specific_data.error
    )

    moved = discover(test_defs, instance)
    assert partition_changes(moved) == [
        ("Add", "bt_experiments", ["support-bot/baseline-v2"]),
        ("Delete", "bt_experiments", ["support-bot/baseline"]),
        ("Delete", "bt_datasets", ["support-bot/golden"]),
    ]
    apply(moved, test_defs, instance)
    # The renamed experiment keeps its rows (they are keyed by its id): the sensor's first run of it
    # under the new key was incremental.
    renamed = dg.AssetRecordsFilter(asset_key=EXPERIMENT_EVENTS, asset_partitions=["support-bot/baseline-v2"])
    (record,) = instance.fetch_materializations(renamed, limit=1).records
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert metadata["last_sync"].startswith("incremental: ") and metadata["dagster/partition_row_count"] == 10
    assert metadata["object_id"] == upstream["experiment"]


def test_an_object_renamed_back_is_synced_under_its_old_key_again(
    emulator: Emulator, upstream: dict[str, str], test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    first = discover(test_defs, instance)
    apply(first, test_defs, instance)
    emulator.store.patch("experiment", upstream["experiment"], {"name": "baseline-v2"})
    apply(discover(test_defs, instance), test_defs, instance)
    emulator.store.patch("experiment", upstream["experiment"], {"name": "baseline"})
    back = discover(test_defs, instance)
    assert ("Add", "bt_experiments", ["support-bot/baseline"]) in partition_changes(back)
    # Dagster launches a run key once: the first sync's key would be skipped as launched already.
    assert first_syncs(back)["support-bot/baseline"] != first_syncs(first)["support-bot/baseline"]


def test_the_sensor_first_syncs_the_partitions_a_catalog_run_added(
    upstream: dict[str, str], test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    refresh_catalog(test_defs, instance)
    assert instance.get_dynamic_partitions("bt_experiments") == ["support-bot/baseline"]
    tick = discover(test_defs, instance)
    assert not tick.dynamic_partitions_requests
    assert [(r.job_name, r.partition_key) for r in tick.run_requests] == [
        (CATALOG_JOB_NAME, None),
        ("braintrust_project_logs_job", "support-bot"),
        (EXPERIMENTS_JOB, "support-bot/baseline"),
        ("braintrust_dataset_records_job", "support-bot/golden"),
    ]
    apply(tick, test_defs, instance)
    assert skips_as_all_synced(test_defs, instance)


def test_an_object_a_catalog_run_moved_to_its_new_name_is_synced_at_the_next_tick(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    apply(discover(test_defs, instance), test_defs, instance)
    emulator.store.patch("experiment", upstream["experiment"], {"name": "baseline-v2"})
    refresh_catalog(test_defs, instance)  # as the README has users run it
    assert instance.get_dynamic_partitions("bt_experiments") == ["support-bot/baseline-v2"]
    tick = discover(test_defs, instance)
    # The tick added no key, and the object was synced: it was never synced under its new key.
    assert list(first_syncs(tick)) == ["support-bot/baseline-v2"]
    apply(tick, test_defs, instance)
    (state,) = [s for s in warehouse_resource.synced_objects() if s.object_id == upstream["experiment"]]
    assert state.name == "support-bot/baseline-v2"
    assert skips_as_all_synced(test_defs, instance)


def test_objects_a_run_synced_into_another_warehouse_are_synced_into_this_one(
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    first = discover(test_defs, instance)
    apply(first, test_defs, instance)
    assert skips_as_all_synced(test_defs, instance)
    # A new warehouse (or one restored from a backup older than those runs), the instance kept.
    for path in (warehouse_resource.parquet_root, warehouse_resource.state_dir):
        shutil.rmtree(path)
    Path(warehouse_resource.duckdb_path).unlink()
    again = discover(test_defs, instance)
    assert first_syncs(again).keys() == {"support-bot", "support-bot/baseline", "support-bot/golden"}
    # Not the keys of the runs that synced them, nor of the catalog run: Dagster would launch those no more.
    assert not set(first_syncs(again).values()) & set(first_syncs(first).values())
    assert catalog_run_key(again) != catalog_run_key(first)
    apply(again, test_defs, instance)
    assert {state.object_id for state in warehouse_resource.synced_objects()} == set(upstream.values())
    with warehouse_resource.reader() as connection:
        assert connection.execute("SELECT id FROM projects").fetchall() == [(upstream["project"],)]
    assert skips_as_all_synced(test_defs, instance)


def test_a_tag_added_alone_reaches_the_catalog_at_the_catalog_schedule_s_tick(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    apply(discover(test_defs, instance), test_defs, instance)
    emulator.store.create("project_tag", {"project_id": upstream["project"], "name": "urgent"})
    # No project, experiment or dataset changed: the sensor has nothing to do.
    assert skips_as_all_synced(test_defs, instance)
    schedule = test_defs.get_repository_def().get_schedule_def("braintrust_catalog_schedule")
    assert (schedule.cron_schedule, schedule.job_name) == ("30 * * * *", CATALOG_JOB_NAME)
    run_job(test_defs, instance, schedule.job_name)
    with warehouse_resource.reader() as connection:
        assert connection.execute("SELECT name FROM project_tags").fetchall() == [("urgent",)]


def skips_as_all_synced(test_defs: dg.Definitions, instance: dg.DagsterInstance) -> bool:
    """Whether the sensor's next tick skips, saying every object has a synced partition."""
    skipped = discover(test_defs, instance).skip_reason
    return skipped is not None and skipped.skip_message == "every Braintrust object has a synced partition"


def first_syncs(result: dg.SensorResult) -> dict[str | None, str | None]:
    """The partitions a tick asks to sync, with their run keys."""
    return {r.partition_key: r.run_key for r in result.run_requests if r.job_name != CATALOG_JOB_NAME}


def catalog_run_key(result: dg.SensorResult) -> str | None:
    (catalog,) = [r for r in result.run_requests if r.job_name == CATALOG_JOB_NAME]
    return catalog.run_key


def test_a_first_sync_that_failed_is_asked_for_again_once_per_failure(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator.faults.add(FaultRule(kind="status", status=401, route="/fetch", times=None))
    first = discover(test_defs, instance)
    apply(dg.SensorResult(dynamic_partitions_requests=first.dynamic_partitions_requests), test_defs, instance)
    # A tick while the runs are still queued (the partitions added) asks for the same run keys, which
    # Dagster launches once; so is the catalog run that comes with them.
    queued = discover(test_defs, instance)
    assert not queued.dynamic_partitions_requests
    assert first_syncs(queued) == first_syncs(first)
    assert catalog_run_key(queued) == catalog_run_key(first) is not None

    def run_failing(tick: dg.SensorResult) -> None:
        for run in tick.run_requests or []:
            assert run.job_name is not None
            done = run_job(
                test_defs, instance, run.job_name, partition_key=run.partition_key, raise_on_error=False
            )
            assert done.success == (run.job_name == CATALOG_JOB_NAME)

    run_failing(first)
    # Failed, with the partitions there now: the sync is asked for anew, not the catalog run, which
    # succeeded (it was asked for anew at every tick, every 5 minutes, while a sync kept failing).
    retried = discover(test_defs, instance)
    assert not retried.dynamic_partitions_requests
    assert catalog_run_key(retried) == catalog_run_key(first)
    run_failing(retried)
    # A catalog run that failed is asked for again at the next tick, as a sync is.
    emulator.faults.add(FaultRule(kind="status", status=401, route="/v1/prompt", times=None))
    assert not run_job(test_defs, instance, CATALOG_JOB_NAME, raise_on_error=False).success
    emulator.faults.clear()
    # Failed twice in a row: asked for again a tick later (then 15 and 35 minutes, an hour at most), not
    # at every tick, as an object the API refuses for good would be.
    assert not first_syncs(discover(test_defs, instance))
    # Nothing else pending: the tick's skip names the partitions that wait (it said every object had a
    # synced partition).
    run_job(test_defs, instance, CATALOG_JOB_NAME)
    skipped = discover(test_defs, instance).skip_reason
    assert skipped is not None and skipped.skip_message == (
        "3 partitions never synced wait to be asked for again after their first sync failed (5, 15, 35 "
        "minutes after, then hourly): bt_project_logs:support-bot, bt_experiments:support-bot/baseline, "
        "bt_datasets:support-bot/golden; every other object has a synced partition"
    )
    later = time.time() + DISCOVERY_INTERVAL_S
    monkeypatch.setattr(sensors, "time", SimpleNamespace(time=lambda: later))
    # The daemon would launch only runs of keys it never saw: each key names the run that failed.
    again = discover(test_defs, instance)
    assert first_syncs(again).keys() == first_syncs(first).keys() == {
        "support-bot", "support-bot/baseline", "support-bot/golden"
    }  # fmt: skip
    assert not set(first_syncs(again).values()) & set(first_syncs(retried).values())
    assert not set(first_syncs(retried).values()) & set(first_syncs(first).values())
    assert catalog_run_key(again) != catalog_run_key(first)
    apply(again, test_defs, instance)
    assert skips_as_all_synced(test_defs, instance)


def test_one_partition_waiting_after_its_failed_first_sync_is_said_in_the_singular() -> None:
    # It said "1 partitions never synced wait to be asked for again after their first sync failed".
    assert sensors._nothing_to_do(["bt_experiments:sb/flaky"]).startswith(
        "1 partition never synced waits to be asked for again after its first sync failed (5, 15, 35 "
        "minutes after, then hourly): bt_experiments:sb/flaky;"
    )


def test_a_catalog_run_that_failed_is_asked_for_again_with_nothing_else_pending(
    emulator: Emulator, upstream: dict[str, str], test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    apply(discover(test_defs, instance), test_defs, instance)
    assert skips_as_all_synced(test_defs, instance)
    emulator.faults.add(FaultRule(kind="status", status=401, route="/v1/prompt", times=None))
    assert not run_job(test_defs, instance, CATALOG_JOB_NAME, raise_on_error=False).success
    emulator.faults.clear()
    # It skipped: the catalog kept its failed refresh until some object changed.
    retried = discover(test_defs, instance)
    assert [r.job_name for r in retried.run_requests] == [CATALOG_JOB_NAME]
    assert discover(test_defs, instance).run_requests == retried.run_requests  # launched once
    apply(retried, test_defs, instance)
    assert skips_as_all_synced(test_defs, instance)


def test_an_object_re_created_under_its_name_between_two_ticks_is_synced(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    apply(discover(test_defs, instance), test_defs, instance)
    store = emulator.store
    store.delete("experiment", upstream["experiment"])
    again = store.create_experiment(upstream["project"], "baseline")
    store.insert("experiment", again["id"], [{"id": f"new-{i}"} for i in range(7)])
    tick = discover(test_defs, instance)
    assert not tick.dynamic_partitions_requests
    assert list(first_syncs(tick)) == ["support-bot/baseline"]
    # The same partition key, but another object: the catalog names the new one, not the deleted one.
    assert CATALOG_JOB_NAME in [r.job_name for r in tick.run_requests or []]
    apply(tick, test_defs, instance)
    assert len(warehouse_ids(warehouse_resource, "experiment_events", "experiment_id", again["id"])) == 7
    with warehouse_resource.reader() as connection:
        listed = connection.execute("SELECT id FROM experiments WHERE name = 'baseline'").fetchall()
    assert listed == [(again["id"],)]


def test_ambiguous_names_get_unique_keys_that_sync_the_right_object(
    emulator: Emulator, test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    store = emulator.store
    nested, plain = store.create_project("team/bot"), store.create_project("team")
    slash_in_project = store.create_experiment(nested["id"], "run")
    slash_in_name = store.create_experiment(plain["id"], "bot/run")
    dots = store.create_experiment(plain["id"], "wait...done")
    for n, experiment in enumerate((slash_in_project, slash_in_name, dots)):
        store.insert("experiment", experiment["id"], [{"id": f"e{i}"} for i in range(n + 1)])

    refresh_catalog(test_defs, instance)
    keys = instance.get_dynamic_partitions("bt_experiments")
    assert sorted(keys) == sorted(
        [
            f"team/bot/run~{slash_in_project['id']}",
            f"team/bot/run~{slash_in_name['id']}",
            f"team/wait…done~{dots['id']}",
        ]
    )
    assert sorted(instance.get_dynamic_partitions("bt_project_logs")) == sorted(
        ["team", f"team/bot~{nested['id']}"]
    )
    for n, experiment in enumerate((slash_in_project, slash_in_name, dots)):
        key = next(k for k in keys if k.endswith(experiment["id"]))
        (metadata,) = materializations(
            run_job(test_defs, instance, EXPERIMENTS_JOB, partition_key=key)
        ).values()
        assert (metadata["object_id"], metadata["dagster/partition_row_count"]) == (experiment["id"], n + 1)


def test_bt_sync_status_shows_the_partition_keys(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    refresh_catalog(test_defs, instance)
    sync_warehouse(emulator, warehouse_resource)
    settings = warehouse_resource.settings()
    status = run_cli(
        "status", "--duckdb", str(settings.duckdb_path), "--parquet", settings.tables_root, "--json"
    )
    assert status.returncode == 0, status.stderr
    keys = {(s["table_name"], s["partition_key"]) for s in json.loads(status.stdout)}
    partitions = {
        *(("project_logs", key) for key in instance.get_dynamic_partitions("bt_project_logs")),
        *(("experiment_events", key) for key in instance.get_dynamic_partitions("bt_experiments")),
        *(("dataset_records", key) for key in instance.get_dynamic_partitions("bt_datasets")),
    }
    assert (
        keys
        == partitions
        == {
            ("project_logs", "support-bot"),
            ("experiment_events", "support-bot/baseline"),
            ("dataset_records", "support-bot/golden"),
        }
    )
    table = run_cli("status", "--duckdb", str(settings.duckdb_path), "--parquet", settings.tables_root)
    assert "support-bot/baseline" in table.stdout
    # Deleted upstream and created again under its name: its rows stay until a reconcile, and its key is
    # its successor's, which Dagster's partition names (status gave both `name~id`, and no partition had).
    emulator.store.delete("experiment", upstream["experiment"])
    successor = emulator.store.create_experiment(upstream["project"], "baseline")
    emulator.store.insert("experiment", successor["id"], [{"id": "e-1", "input": 1}])
    sync_warehouse(emulator, warehouse_resource)
    refresh_catalog(test_defs, instance)
    status = run_cli(
        "status", "--duckdb", str(settings.duckdb_path), "--parquet", settings.tables_root, "--json"
    )
    keys_by_id = {s["object_id"]: s["partition_key"] for s in json.loads(status.stdout)}
    assert (keys_by_id[upstream["experiment"]], keys_by_id[successor["id"]]) == (None, "support-bot/baseline")
    assert instance.get_dynamic_partitions("bt_experiments") == ["support-bot/baseline"]
    table = run_cli("status", "--duckdb", str(settings.duckdb_path), "--parquet", settings.tables_root)
    assert table.stderr == (
        "bt-sync: note: 1 object deleted upstream, without a Dagster partition: "
        "`bt-sync sync --reconcile` removes the rows\n"
    )


def test_schedules_sync_each_partition_hourly_and_reconcile_each_table_in_one_weekly_run(
    test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    hourly = test_defs.resolve_schedule_def("braintrust_experiment_events_schedule")
    weekly = test_defs.resolve_schedule_def("braintrust_experiment_events_reconcile_schedule")
    tick = datetime(2026, 1, 1, 10, tzinfo=UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    for schedule in (hourly, weekly):
        empty = schedule(context)
        assert isinstance(empty, dg.SkipReason) and "braintrust_discovery_sensor" in (
            empty.skip_message or ""
        )
        # Or every object deleted upstream: no partition can name them, the command line removes their rows.
        assert "`bt-sync sync --reconcile --objects experiments` removes them" in (empty.skip_message or "")
    instance.add_dynamic_partitions("bt_experiments", ["bot/a", "bot/b", "bot/c"])
    requests = hourly(context)
    assert isinstance(requests, list)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (key, f"{tick.isoformat()}:{key}") for key in ("bot/a", "bot/b", "bot/c")
    ]
    reconcile = weekly(context)
    assert isinstance(reconcile, dg.RunRequest)
    assert reconcile.tags["dagster/asset_partition_range_start"] == "bot/a"
    assert reconcile.tags["dagster/asset_partition_range_end"] == "bot/c"
    assert reconcile.run_config == {"ops": {"braintrust_experiment_events": {"config": {"reconcile": True}}}}


@pytest.mark.parametrize("added_by", ["sensor", "catalog run"])
def test_a_name_deleted_again_after_it_was_re_created_refreshes_the_catalog_again(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    added_by: str,
) -> None:
    store = emulator.store
    apply(discover(test_defs, instance), test_defs, instance)
    removals = []
    for _ in range(2):  # a nightly experiment: created, deleted, and again
        nightly = store.create_experiment(upstream["project"], "nightly")
        if added_by == "sensor":  # which syncs it
            apply(discover(test_defs, instance), test_defs, instance)
        else:  # the object goes before any sync: its partition never ran
            refresh_catalog(test_defs, instance)
        store.delete("experiment", nightly["id"])
        removal = discover(test_defs, instance)
        assert partition_changes(removal) == [("Delete", "bt_experiments", ["support-bot/nightly"])]
        removals.append(catalog_run_key(removal))
        apply(removal, test_defs, instance)
        with warehouse_resource.reader() as connection:
            assert connection.execute("SELECT id FROM experiments WHERE name = 'nightly'").fetchall() == []
    # The same key twice: Dagster launched the second catalog run never, and the table kept the experiment.
    assert removals[0] != removals[1]


def test_another_deployment_s_api_is_refused_by_the_sensor_and_the_partition_runs(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    apply(discover(test_defs, instance), test_defs, instance)
    partitions = {
        name: instance.get_dynamic_partitions(name) for name in ("bt_project_logs", "bt_experiments")
    }
    assert all(partitions.values())
    held = warehouse_ids(warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"])
    # A staging URL: a project and an experiment of the same names. The tick removed every partition but
    # those two, whose runs synced staging's rows into this warehouse; the reconcile then removed its own.
    with Emulator(seed="empty") as staging:
        project = staging.store.create_project("support-bot")
        experiment = staging.store.create_experiment(project["id"], "baseline")
        staging.store.insert("experiment", experiment["id"], [{"id": "staging-row"}])
        resource = BraintrustResource(api_url=staging.url, api_key=staging.api_key)
        defs = build_definitions(resource, warehouse_resource, retry_policy=dg.RetryPolicy(max_retries=0))
        tick = discover(defs, instance)
        skipped = tick.skip_reason
        assert skipped is not None and "none of the 1 this warehouse holds objects of" in skipped.skip_message
        apply(tick, defs, instance)  # as the daemon would: no partition removed, no run
        result = run_job(
            defs, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline", raise_on_error=False
        )
    (failure,) = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failure.step_failure_data is not None and failure.step_failure_data.error is not None
    assert "none of the 1 this warehouse holds objects of" in failure.step_failure_data.error.message
    assert {name: instance.get_dynamic_partitions(name) for name in partitions} == partitions
    assert (
        warehouse_ids(warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"])
        == held
    )
    with warehouse_resource.reader() as connection:
        assert connection.execute(
            "SELECT count(*) FROM experiment_events WHERE id = 'staging-row'"
        ).fetchall() == [(0,)]
