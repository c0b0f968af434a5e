"""The code location as Dagster loads it: names, specs, the translator hook, `dg` and the instance config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
import pytest

from connector.emulator import Emulator
from pipelines import BraintrustResource, BraintrustTableData, BraintrustTranslator, build_definitions
from pipelines.definitions import defs
from pipelines.jobs import CATALOG_JOB_NAME, CHECKS_JOB_NAME
from pipelines.maintain import MAINTAIN_JOB_NAME
from pipelines.push import PUSH_JOB_NAME
from pipelines.resources import WarehouseResource
from schemas.kinds import EVENT_STREAMS, KINDS
from tests.helpers import run_installed
from tests.pipelines.helpers import materializations, refresh_catalog, run_job

REPO = Path(__file__).resolve().parents[2]
EVENT_TABLES = ("project_logs", "experiment_events", "dataset_records")
SOURCE = dg.AssetKey(["braintrust", "api"])


def test_definitions_name_every_asset_check_job_schedule_and_sensor() -> None:
    repository = defs.get_repository_def()
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} == {
        "braintrust/api",
        *(f"braintrust/{table}" for table in (*EVENT_TABLES, *(kind.catalog.table for kind in KINDS))),
    }
    assert repository.asset_graph.get(SOURCE).is_external
    assert len(repository.asset_graph.asset_check_keys) == 13
    assert {job.name for job in repository.get_all_jobs()} >= {
        CATALOG_JOB_NAME,
        CHECKS_JOB_NAME,
        PUSH_JOB_NAME,
        MAINTAIN_JOB_NAME,
        *(f"braintrust_{table}_job" for table in EVENT_TABLES),
    }
    assert {s.name for s in repository.schedule_defs} == {
        *(f"braintrust_{table}_schedule" for table in EVENT_TABLES),
        *(f"braintrust_{table}_reconcile_schedule" for table in EVENT_TABLES),
        "braintrust_checks_schedule",
        "braintrust_catalog_schedule",
        "braintrust_maintain_schedule",
    }
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in repository.schedule_defs)
    assert [s.name for s in repository.sensor_defs] == ["braintrust_discovery_sensor"]
    scaled = build_definitions(
        BraintrustResource(api_key="unused"), WarehouseResource(), executor=dg.in_process_executor
    )
    assert scaled.resolve_job_def(CHECKS_JOB_NAME).executor_def is dg.in_process_executor


def test_asset_specs_carry_kinds_code_versions_qualified_names_and_described_columns() -> None:
    graph = defs.get_repository_def().asset_graph
    for stream in EVENT_STREAMS.values():
        node = graph.get(dg.AssetKey(["braintrust", stream.table]))
        assert node.kinds == {"braintrust", "duckdb", "parquet"}
        assert node.tags["braintrust/table_type"] == "events"
        assert node.code_version and len(node.code_version) == 12
        assert node.metadata["dagster/table_name"] == f"{WarehouseResource().table_schema}.{stream.table}"
        schema = node.metadata["dagster/column_schema"]
        assert [(c.name, c.type, c.description) for c in schema.columns] == [
            (c.name, c.duckdb_type, c.description) for c in stream.columns
        ]
        assert all(column.description for column in schema.columns)
        # The event tables depend on Braintrust alone, not on the catalog tables: refreshing the catalog
        # never marks them "Unsynced".
        assert node.parent_keys == {SOURCE}
        assert node.freshness_policy is not None
    catalog = graph.get(dg.AssetKey(["braintrust", "experiments"]))
    assert catalog.tags["braintrust/table_type"] == "catalog" and not catalog.is_partitioned
    assert catalog.kinds == {"braintrust", "duckdb", "parquet"}


def test_iceberg_tables_show_the_iceberg_kind_and_their_namespace(tmp_path: Path) -> None:
    warehouse = WarehouseResource(
        destination="iceberg",
        iceberg_catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        iceberg_warehouse=str(tmp_path / "warehouse"),
    )
    iceberg_defs = build_definitions(BraintrustResource(api_key="unused"), warehouse)
    graph = iceberg_defs.get_repository_def().asset_graph
    for table in (*(stream.table for stream in EVENT_STREAMS.values()), "experiments"):
        node = graph.get(dg.AssetKey(["braintrust", table]))
        assert node.kinds == {"braintrust", "iceberg"}
        assert node.metadata["dagster/table_name"] == f"{warehouse.table_schema}.{table}"


class TeamTranslator(BraintrustTranslator):
    def get_asset_spec(self, data: BraintrustTableData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=spec.key.with_prefix("llm"),
            group_name="llm_observability",
            partitions_def=None,  # ignored: the partitions stay bt-sync's
        ).merge_attributes(owners=["team:ml-platform"], tags={"domain": "evals"})


def test_a_translator_changes_keys_groups_owners_and_tags_everywhere(
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    warehouse_resource: WarehouseResource,
    instance: dg.DagsterInstance,
) -> None:
    custom = build_definitions(braintrust, warehouse_resource, translator=TeamTranslator())
    repository = custom.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert "llm/braintrust/experiment_events" in keys
    assert [k for k in keys if not k.startswith("llm/")] == ["braintrust/api"]
    node = repository.asset_graph.get(dg.AssetKey(["llm", "braintrust", "experiment_events"]))
    assert node.parent_keys == {SOURCE}
    assert node.group_name == "llm_observability" and node.owners == ["team:ml-platform"]
    assert node.tags["domain"] == "evals" and node.is_partitioned
    assert {check.asset_key.path[0] for check in repository.asset_graph.asset_check_keys} == {"llm"}

    refresh_catalog(custom, instance)
    result = run_job(
        custom, instance, "braintrust_experiment_events_job", partition_key="support-bot/baseline"
    )
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == dg.AssetKey(["llm", "braintrust", "experiment_events"])
    assert materializations(result)["support-bot/baseline"]["dagster/partition_row_count"] == 10


def test_dg_loads_the_code_location_without_secrets_or_warnings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BRAINTRUST_API_KEY", "DAGSTER_HOME")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    completed = run_installed("dg", "check", "defs", env=env, cwd=REPO)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "All definitions loaded successfully" in output
    assert "Warning" not in output


def test_the_instance_config_keeps_everything_under_dagster_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as local:
        concurrency = local.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 4
        assert local.run_monitoring_settings["free_slots_after_run_end_seconds"] == 30
        assert not local.telemetry_enabled
    # Nothing lands in the directory the command started in.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert (home / "history").is_dir() or (home / "storage").is_dir()


def test_the_emulator_links_nowhere_unless_told(emulator: Emulator) -> None:
    assert BraintrustResource(api_key="k").app() == "https://www.braintrust.dev"
    assert BraintrustResource(api_key="k", api_url=emulator.url).app() is None
    assert BraintrustResource(api_key="k", api_url=emulator.url, app_url=emulator.url).app() == emulator.url
