"""Fixtures of the Dagster tests: an upstream with one object of each kind, resources, definitions and a
test instance, all real (the emulator over loopback, DuckDB and Parquet files, a sqlite Dagster instance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from connector.emulator import Emulator
from pipelines import BraintrustResource, WarehouseResource, build_definitions
from pipelines.tables import PARTITIONS


@pytest.fixture
def upstream(emulator: Emulator) -> dict[str, str]:
    """Project `support-bot` with 30 log rows, experiment `baseline` (10 rows) and dataset `golden` (8
    records); returns their ids."""
    store = emulator.store
    project = store.create_project("support-bot")
    experiment = store.create_experiment(project["id"], "baseline")
    dataset = store.create_dataset(project["id"], "golden")
    store.insert("project_logs", project["id"], [{"id": f"log-{i}", "input": i} for i in range(30)])
    store.insert(
        "experiment",
        experiment["id"],
        [{"id": f"ev-{i}", "input": f"question {i}", "scores": {"acc": 0.5}} for i in range(10)],
    )
    store.insert("dataset", dataset["id"], [{"id": f"rec-{i}", "expected": i} for i in range(8)])
    return {"project": project["id"], "experiment": experiment["id"], "dataset": dataset["id"]}


@pytest.fixture
def braintrust(emulator: Emulator) -> BraintrustResource:
    """The emulator as the API, and as the UI that materializations link to."""
    return BraintrustResource(api_url=emulator.url, api_key=emulator.api_key, app_url=emulator.url)


@pytest.fixture
def warehouse_resource(tmp_path: Path) -> WarehouseResource:
    """A throwaway DuckDB file, Parquet root and scratch directory under `tmp_path`."""
    return WarehouseResource(
        duckdb_path=str(tmp_path / "warehouse.duckdb"),
        parquet_root=str(tmp_path / "parquet"),
        state_dir=str(tmp_path / "state"),
        lock_wait_s=0.2,
    )


@pytest.fixture
def iceberg_resource(tmp_path: Path) -> WarehouseResource:
    """A throwaway Iceberg warehouse: a SQLite catalog and a data directory under `tmp_path`."""
    return WarehouseResource(
        destination="iceberg",
        iceberg_catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        iceberg_warehouse=str(tmp_path / "iceberg"),
        state_dir=str(tmp_path / "state"),
    )


@pytest.fixture
def test_defs(braintrust: BraintrustResource, warehouse_resource: WarehouseResource) -> dg.Definitions:
    """The definitions bound to the emulator and the throwaway warehouse, with quick retries."""
    return build_definitions(
        braintrust, warehouse_resource, retry_policy=dg.RetryPolicy(max_retries=3, delay=0.2)
    )


@pytest.fixture(scope="module")
def module_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A sqlite-backed test instance shared by the module, with one event-log database (not one per run)."""
    event_log = {
        "module": "dagster._core.storage.event_log",
        "class": "ConsolidatedSqliteEventLogStorage",
        "config": {"base_dir": str(tmp_path_factory.mktemp("event_log"))},
    }
    # No capture of each step's stdout and stderr into files: a `tail` process and an orphan watcher
    # per step, 0.3 s a run, and no test reads them.
    no_logs = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}
    overrides = {"event_log_storage": event_log, "compute_logs": no_logs}
    with dg.instance_for_test(overrides=overrides) as test_instance:
        yield test_instance


@pytest.fixture
def instance(module_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The shared instance with no partitions and no asset history, as a fresh one would have."""
    module_instance.wipe_assets(module_instance.all_asset_keys())
    for partitions in PARTITIONS.values():
        assert partitions.name is not None
        for key in module_instance.get_dynamic_partitions(partitions.name):
            module_instance.delete_dynamic_partition(partitions.name, key)
    return module_instance
