"""Helpers of the Dagster tests: run jobs and sensors as the daemon would, and read what they recorded."""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb

from connector.emulator import Emulator
from pipelines.jobs import CATALOG_JOB_NAME, CHECKS_JOB_NAME
from pipelines.resources import WarehouseResource
from pipelines.sensors import DISCOVERY_SENSOR_NAME
from tests.helpers import sync

EXPERIMENT_EVENTS = dg.AssetKey(["braintrust", "experiment_events"])


def discover(definitions: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    """One tick of the discovery sensor."""
    resources = definitions.get_repository_def().get_top_level_resources()
    context = dg.build_sensor_context(instance=instance, resources=resources)
    result = definitions.resolve_sensor_def(DISCOVERY_SENSOR_NAME)(context)
    assert isinstance(result, dg.SensorResult)
    return result


def apply(result: dg.SensorResult, definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Do what the daemon does with a tick: change partitions first, then launch the runs."""
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    for run in result.run_requests or []:
        assert run.job_name is not None
        job = definitions.resolve_job_def(run.job_name)
        assert job.execute_in_process(instance=instance, partition_key=run.partition_key).success


def run_job(
    definitions: dg.Definitions, instance: dg.DagsterInstance, name: str, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Run a job in this process; it must succeed unless `raise_on_error=False` is given."""
    return definitions.resolve_job_def(name).execute_in_process(instance=instance, **kwargs)


def refresh_catalog(definitions: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run the catalog job, which also keeps one partition per object."""
    return run_job(definitions, instance, CATALOG_JOB_NAME)


def run_checks(
    definitions: dg.Definitions, instance: dg.DagsterInstance, *only: dg.AssetCheckKey
) -> dict[str, dg.AssetCheckEvaluation]:
    """Run every check, or `only` those (a run of the checks job selecting them); their evaluations by
    `table:check`."""
    job = definitions.resolve_job_def(CHECKS_JOB_NAME)
    if only:
        job = job.get_subset(asset_check_selection=set(only))
    result = job.execute_in_process(instance=instance)
    return {f"{e.asset_key.path[-1]}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def materializations(result: dg.ExecuteInProcessResult) -> dict[str | None, dict[str, Any]]:
    """The metadata values of each materialization a run recorded, by partition."""
    return {
        event.partition: {key: value.value for key, value in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


def table_size(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The metadata values of the one observation a sync run recorded: the whole table's size."""
    (observation,) = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observation.partition is None
    metadata = observation.asset_observation_data.asset_observation.metadata
    return {key: value.value for key, value in metadata.items()}


def sync_warehouse(emulator: Emulator, warehouse: WarehouseResource) -> None:
    """Sync everything as `bt-sync sync` does, without Dagster, for tests of what runs after a sync."""
    sync(emulator, warehouse.settings())


def warehouse_ids(warehouse: WarehouseResource, table: str, key: str, object_id: str) -> set[str]:
    """Ids of an object's rows, as an analyst opening the DuckDB file sees them."""
    with duckdb.connect(str(warehouse.duckdb_file()), read_only=True) as connection:
        rows = connection.execute(f"SELECT id FROM {table} WHERE {key} = ?", [object_id]).fetchall()
    return {row[0] for row in rows}
