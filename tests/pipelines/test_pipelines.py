"""Dagster orchestration, run in-process against the emulator with a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from connector.emulator import Emulator
from connector.push.run import PushOptions
from pipelines.assets import EVENT_ASSETS, braintrust_catalog
from pipelines.definitions import build_definitions, defs
from pipelines.jobs import CATALOG_JOB_NAME, CHECKS_JOB_NAME
from pipelines.maintain import MAINTAIN_JOB_NAME
from pipelines.push import PUSH_JOB_NAME, PushConfig
from pipelines.reconcile import RECONCILE_JOB_NAME
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.schedules import SYNC_SCHEDULES
from pipelines.sensors import braintrust_discovery_sensor
from pipelines.streams import DATASET_RECORDS, EXPERIMENT_EVENTS, PROJECT_LOGS, STREAMS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def upstream(emulator: Emulator) -> dict[str, str]:
    """One project with logs, an experiment and a dataset; returns their ids."""
    store = emulator.store
    project = store.create_project("pipelines")
    experiment = store.create_experiment(project["id"], "exp-a")
    dataset = store.create_dataset(project["id"], "golden")
    store.insert("project_logs", project["id"], [{"id": f"log-{i}", "input": i} for i in range(30)])
    store.insert(
        "experiment", experiment["id"], [{"id": f"ev-{i}", "scores": {"acc": 0.5}} for i in range(10)]
    )
    store.insert("dataset", dataset["id"], [{"id": f"rec-{i}", "expected": i} for i in range(8)])
    return {"project": project["id"], "experiment": experiment["id"], "dataset": dataset["id"]}


@pytest.fixture
def resources(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    return {
        "braintrust": BraintrustResource(api_url=emulator.url, api_key=emulator.api_key),
        "warehouse": WarehouseResource(
            duckdb_path=str(tmp_path / "warehouse.duckdb"), parquet_root=str(tmp_path / "parquet")
        ),
    }


@pytest.fixture
def test_defs(resources: dict[str, Any]) -> dg.Definitions:
    return build_definitions(resources["braintrust"], resources["warehouse"])


@pytest.fixture(scope="module")
def module_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A sqlite-backed test instance shared by the module, with one event-log database (not one per run)."""
    event_log = {
        "module": "dagster._core.storage.event_log",
        "class": "ConsolidatedSqliteEventLogStorage",
        "config": {"base_dir": str(tmp_path_factory.mktemp("event_log"))},
    }
    with dg.instance_for_test(overrides={"event_log_storage": event_log}) as test_instance:
        yield test_instance


@pytest.fixture
def instance(module_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The shared instance with no partitions, as a fresh one would have."""
    for assets in STREAMS:
        for key in module_instance.get_dynamic_partitions(assets.partitions_name):
            module_instance.delete_dynamic_partition(assets.partitions_name, key)
    return module_instance


def discover(definitions: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    resources = definitions.get_repository_def().get_top_level_resources()
    context = dg.build_sensor_context(instance=instance, resources=resources)
    result = braintrust_discovery_sensor(context)
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


def sync_everything(definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Sync every object in one run (the reconcile job), which also registers their partitions."""
    assert definitions.resolve_job_def(RECONCILE_JOB_NAME).execute_in_process(instance=instance).success


def run_checks(
    definitions: dg.Definitions, instance: dg.DagsterInstance
) -> dict[str, dg.AssetCheckEvaluation]:
    result = definitions.resolve_job_def(CHECKS_JOB_NAME).execute_in_process(instance=instance)
    return {f"{e.asset_key.path[-1]}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def warehouse_ids(tmp_path: Path, table: str, key: str, object_id: str) -> set[str]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(f"SELECT id FROM {table} WHERE {key} = ?", [object_id]).fetchall()
    return {row[0] for row in rows}


def record_path(tmp_path: Path, table: str, key: str, object_id: str) -> Path:
    return tmp_path / "parquet" / table / f"{key}={object_id}" / "_sync_state.json"


def duplicate_row(tmp_path: Path, table: str, key: str, object_id: str, row_id: str) -> None:
    """Corrupt the warehouse behind bt-sync's back: a second copy of a row in the object's file."""
    record = json.loads(record_path(tmp_path, table, key, object_id).read_text())
    versions = tmp_path / "parquet" / "_bt_sync" / table / f"{key}={object_id}"
    path = versions / record["files"][0]["version"]
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM '{path}' UNION ALL SELECT * FROM '{path}' WHERE id = '{row_id}') TO "
            f"'{path}.new' (FORMAT parquet)"
        )
    (versions / f"{path.name}.new").replace(path)


def age_sync_state(tmp_path: Path, table: str, key: str, when: datetime) -> None:
    """Make every object of a table look last synced at `when`."""
    for path in (tmp_path / "parquet" / table).glob(f"{key}=*/_sync_state.json"):
        record = json.loads(path.read_text())
        if record.get("state"):
            record["state"]["synced_at"] = when.isoformat()
            path.write_text(json.dumps(record))


def live_ids(emulator: Emulator, object_type: str, object_id: str) -> set[str]:
    return {row["id"] for row in emulator.store.live_rows(object_type, object_id)}


def test_definitions_name_every_asset_check_job_schedule_and_sensor() -> None:
    repository = defs.get_repository_def()
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} == {
        "braintrust/projects",
        "braintrust/experiments",
        "braintrust/datasets",
        "braintrust/prompts",
        "braintrust/functions",
        "braintrust/project_scores",
        "braintrust/project_tags",
        "braintrust/project_logs",
        "braintrust/experiment_events",
        "braintrust/dataset_records",
    }
    assert len(repository.asset_graph.asset_check_keys) == 10
    assert {job.name for job in repository.get_all_jobs()} >= {
        CATALOG_JOB_NAME,
        CHECKS_JOB_NAME,
        RECONCILE_JOB_NAME,
        PUSH_JOB_NAME,
        MAINTAIN_JOB_NAME,
        *(assets.job_name for assets in STREAMS),
    }
    assert {s.name for s in repository.schedule_defs} == {
        "braintrust_project_logs_schedule",
        "braintrust_experiment_events_schedule",
        "braintrust_dataset_records_schedule",
        "braintrust_checks_schedule",
        "braintrust_reconcile_schedule",
        "braintrust_maintain_schedule",
    }
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in repository.schedule_defs)
    assert [s.name for s in repository.sensor_defs] == ["braintrust_discovery_sensor"]
    scaled = build_definitions(
        BraintrustResource(api_key="unused"), WarehouseResource(), executor=dg.in_process_executor
    )
    assert scaled.resolve_job_def(CHECKS_JOB_NAME).executor_def is dg.in_process_executor


def test_dagster_yaml_configures_a_local_instance_with_concurrency_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as local:
        concurrency = local.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 4
        assert local.run_monitoring_settings["free_slots_after_run_end_seconds"] == 30
        assert not local.telemetry_enabled
    assert (tmp_path / ".dagster" / "storage").is_dir()


def test_dagster_definitions_validate_passes_without_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BRAINTRUST_API_KEY", "DAGSTER_HOME")}
    validate = [sys.executable, "-m", "dagster", "definitions", "validate"]
    completed = subprocess.run(
        # From elsewhere than the repository root, so the instance it creates does not land in `.dagster/`.
        [*validate, "-m", "pipelines.definitions", "-d", str(REPO)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "All code locations passed validation" in completed.stdout + completed.stderr


def test_sensor_adds_partitions_for_new_objects_and_syncs_them_without_logging_the_key(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    first = discover(test_defs, instance)
    added = {r.partitions_def_name: list(r.partition_keys) for r in first.dynamic_partitions_requests}
    assert added == {
        "bt_project_logs": [upstream["project"]],
        "bt_experiments": [upstream["experiment"]],
        "bt_datasets": [upstream["dataset"]],
    }
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [
        (CATALOG_JOB_NAME, None),
        (PROJECT_LOGS.job_name, upstream["project"]),
        (EXPERIMENT_EVENTS.job_name, upstream["experiment"]),
        (DATASET_RECORDS.job_name, upstream["dataset"]),
    ]
    apply(first, test_defs, instance)
    assert instance.get_dynamic_partitions("bt_experiments") == [upstream["experiment"]]
    for assets, object_type, key in (
        (PROJECT_LOGS, "project_logs", "project"),
        (EXPERIMENT_EVENTS, "experiment", "experiment"),
        (DATASET_RECORDS, "dataset", "dataset"),
    ):
        stream = assets.stream
        synced = warehouse_ids(tmp_path, stream.table, stream.key_column, upstream[key])
        assert synced == live_ids(emulator, object_type, upstream[key])

    second = discover(test_defs, instance)
    assert not second.run_requests
    assert not second.dynamic_partitions_requests

    new_experiment = emulator.store.create_experiment(upstream["project"], "exp-b")
    emulator.store.delete("dataset", upstream["dataset"])
    third = discover(test_defs, instance)
    changes = [
        (type(r).__name__, r.partitions_def_name, list(r.partition_keys))
        for r in third.dynamic_partitions_requests
    ]
    assert changes == [
        ("AddDynamicPartitionsRequest", "bt_experiments", [new_experiment["id"]]),
        ("DeleteDynamicPartitionsRequest", "bt_datasets", [upstream["dataset"]]),
    ]
    assert [r.partition_key for r in third.run_requests] == [None, new_experiment["id"]]

    logs = [str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]
    assert logs and not [line for line in logs if emulator.api_key in line]


def test_partition_materialization_reports_what_the_sync_did(
    emulator: Emulator,
    upstream: dict[str, str],
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
) -> None:
    experiment = upstream["experiment"]
    instance.add_dynamic_partitions("bt_experiments", [experiment])

    def materialize() -> dict[str, Any]:
        result = dg.materialize(
            [braintrust_catalog, *EVENT_ASSETS],
            selection=[EXPERIMENT_EVENTS.key],
            partition_key=experiment,
            instance=instance,
            resources=resources,
        )
        (event,) = result.asset_materializations_for_node("braintrust__experiment_events")
        assert event.partition == experiment
        return {key: value.value for key, value in event.metadata.items()}

    first = materialize()
    assert first["dagster/partition_row_count"] == 10
    assert first["dagster/table_name"] == "experiment_events"
    assert (first["mode"], first["rows_fetched"], first["inserted"], first["updated"]) == ("full", 10, 10, 0)
    assert first["deleted"] == 0 and first["pages"] >= 1 and first["seconds"] >= 0
    assert int(first["version"]) > 0

    emulator.store.insert(
        "experiment", experiment, [{"id": "ev-0", "_is_merge": True, "output": "x"}, {"id": "ev-new"}]
    )
    second = materialize()
    assert (second["mode"], second["inserted"], second["updated"]) == ("incremental", 1, 1)
    assert second["dagster/partition_row_count"] == 11
    assert int(second["version"]) > int(first["version"])


def test_partition_of_a_deleted_object_fails_without_retrying(
    resources: dict[str, Any], instance: dg.DagsterInstance
) -> None:
    instance.add_dynamic_partitions("bt_datasets", ["no-such-dataset"])
    result = dg.materialize(
        [braintrust_catalog, *EVENT_ASSETS],
        selection=[DATASET_RECORDS.key],
        partition_key="no-such-dataset",
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert events.count("STEP_FAILURE") == 1 and "STEP_UP_FOR_RETRY" not in events
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "dataset no-such-dataset no longer exists" in str(failure.event_specific_data.error)


def test_checks_pass_on_a_synced_warehouse(
    upstream: dict[str, str], test_defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    sync_everything(test_defs, instance)
    evaluations = run_checks(test_defs, instance)
    assert len(evaluations) == 10
    assert {name: e.passed for name, e in evaluations.items() if not e.passed} == {}


def test_an_iceberg_warehouse_syncs_passes_its_checks_and_is_maintained(
    emulator: Emulator, upstream: dict[str, str], instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    warehouse = WarehouseResource(
        destination="iceberg",
        iceberg_catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        iceberg_warehouse=str(tmp_path / "iceberg"),
        state_dir=str(tmp_path / "state"),
    )
    iceberg_defs = build_definitions(
        BraintrustResource(api_url=emulator.url, api_key=emulator.api_key), warehouse
    )
    sync_everything(iceberg_defs, instance)
    assert {name: e.passed for name, e in run_checks(iceberg_defs, instance).items() if not e.passed} == {}
    with warehouse.reader() as connection:
        assert connection.execute("SELECT count(*) FROM project_logs").fetchone() == (30,)
    config = {"ops": {"maintain_warehouse": {"config": {"retain_hours": 0}}}}
    job = iceberg_defs.resolve_job_def(MAINTAIN_JOB_NAME)
    assert job.execute_in_process(instance=instance, run_config=config).success


def test_unique_key_check_fails_on_a_duplicated_row(
    upstream: dict[str, str], test_defs: dg.Definitions, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    sync_everything(test_defs, instance)
    duplicate_row(tmp_path, "experiment_events", "experiment_id", upstream["experiment"], "ev-3")
    evaluations = run_checks(test_defs, instance)
    failed = evaluations["experiment_events:unique_key"]
    assert not failed.passed
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["duplicated_keys"].value == 1
    assert failed.metadata["sample"].value == [
        {"experiment_id": upstream["experiment"], "id": "ev-3", "copies": "2"}
    ]
    assert [name for name, e in evaluations.items() if not e.passed] == ["experiment_events:unique_key"]


def test_coverage_freshness_and_count_checks_warn_when_the_warehouse_is_behind(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sync_everything(test_defs, instance)
    emulator.store.insert("dataset", upstream["dataset"], [{"id": "rec-late", "expected": 0}])
    unsynced = emulator.store.create_experiment(upstream["project"], "exp-unsynced")
    assert test_defs.resolve_job_def(CATALOG_JOB_NAME).execute_in_process(instance=instance).success
    age_sync_state(tmp_path, "project_logs", "project_id", datetime(2020, 1, 1, tzinfo=UTC))
    evaluations = run_checks(test_defs, instance)
    failed = {name: e for name, e in evaluations.items() if not e.passed}
    assert sorted(failed) == [
        "dataset_records:row_counts_match_api",
        "experiment_events:objects_synced",
        "project_logs:synced_recently",
    ]
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in failed.values())
    counts = failed["dataset_records:row_counts_match_api"].metadata["sample"].value
    assert counts == [
        {"id": upstream["dataset"], "name": "golden", "warehouse_rows": "8", "api_records": "9"}
    ]
    unsynced_sample = failed["experiment_events:objects_synced"].metadata["sample"].value
    assert unsynced_sample == [{"id": unsynced["id"], "name": "exp-unsynced"}]


def test_schedules_request_one_incremental_run_per_partition(instance: dg.DagsterInstance) -> None:
    schedule = next(s for s in SYNC_SCHEDULES if s.name == "braintrust_experiment_events_schedule")
    tick = datetime(2026, 1, 1, 10, tzinfo=UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    empty = schedule(context)
    assert isinstance(empty, dg.SkipReason) and "braintrust_discovery_sensor" in (empty.skip_message or "")
    instance.add_dynamic_partitions("bt_experiments", ["exp-1", "exp-2"])
    requests = schedule(context)
    assert isinstance(requests, list)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("exp-1", f"{tick.isoformat()}:exp-1"),
        ("exp-2", f"{tick.isoformat()}:exp-2"),
    ]


def test_reconcile_job_removes_upstream_deletions_and_records_partitions(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    apply(discover(test_defs, instance), test_defs, instance)
    emulator.store.insert("project_logs", upstream["project"], [{"id": "log-4", "_object_delete": True}])
    emulator.store.delete("experiment", upstream["experiment"])
    result = test_defs.resolve_job_def(RECONCILE_JOB_NAME).execute_in_process(instance=instance)
    assert result.success
    logs = warehouse_ids(tmp_path, "project_logs", "project_id", upstream["project"])
    assert "log-4" not in logs and len(logs) == 29
    assert warehouse_ids(tmp_path, "experiment_events", "experiment_id", upstream["experiment"]) == set()
    assert instance.get_dynamic_partitions("bt_experiments") == []
    recorded = {
        (m.asset_key.to_user_string(), m.partition)
        for m in result.asset_materializations_for_node("reconcile_warehouse")
    }
    assert (PROJECT_LOGS.key.to_user_string(), upstream["project"]) in recorded
    assert (DATASET_RECORDS.key.to_user_string(), upstream["dataset"]) in recorded
    assert ("braintrust/experiments", None) in recorded


def test_push_job_inserts_a_file_into_a_dataset_like_the_cli(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    assert set(PushConfig.model_fields) == set(PushOptions.model_fields)
    source = tmp_path / "golden.csv"
    source.write_text("key,question,answer,topic\nq1,What is 2+2?,4,math\nq2,Capital of France?,Paris,geo\n")
    config = {
        "file": str(source),
        "project": "pipelines",
        "dataset": "pushed",
        "format": "csv",
        "id_column": "key",
        "input": ["question"],
        "expected": ["answer"],
        "metadata": ["topic"],
        "state_dir": str(tmp_path / "push-state"),
    }
    push = test_defs.resolve_job_def(PUSH_JOB_NAME)
    result = push.execute_in_process(
        instance=instance, run_config={"ops": {"push_dataset_file": {"config": config}}}
    )
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert (metadata["rows_read"], metadata["rows_sent"], metadata["dry_run"]) == (2, 2, False)
    rows = emulator.store.live_rows("dataset", metadata["dataset_id"])
    assert sorted((r["id"], r["input"], r["expected"]) for r in rows) == [
        ("q1", "What is 2+2?", "4"),
        ("q2", "Capital of France?", "Paris"),
    ]

    skip_without_rejects = {**config, "on_error": "skip"}
    failed = push.execute_in_process(
        instance=instance,
        run_config={"ops": {"push_dataset_file": {"config": skip_without_rejects}}},
        raise_on_error=False,
    )
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "rejects" in str(failure.event_specific_data.error)


def test_partitions_materialized_in_parallel_processes_share_the_duckdb_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    project = emulator.store.create_project("parallel")
    experiments = [emulator.store.create_experiment(project["id"], f"exp-{n}")["id"] for n in range(3)]
    for n, experiment in enumerate(experiments):
        emulator.store.insert(
            "experiment", experiment, [{"id": f"e{n}-{i}", "input": "x" * 200} for i in range(400)]
        )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as home_instance:
        home_instance.add_dynamic_partitions("bt_experiments", experiments)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "BRAINTRUST_API_URL": emulator.url,
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_DUCKDB": str(tmp_path / "warehouse.duckdb"),
        "BT_SYNC_PARQUET": str(tmp_path / "parquet"),
    }
    # In-process steps: the processes under test are the runs, one per partition, as the queue launches them.
    in_process = '{"execution": {"config": {"in_process": {}}}}'
    materialize = [
        *(sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions"),
        *("--config-json", in_process),
    ]
    runs = [
        subprocess.Popen(
            [*materialize, "--select", "braintrust/experiment_events", "--partition", experiment],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for experiment in experiments
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * len(runs), "\n".join(outputs)
    for experiment in experiments:
        synced = warehouse_ids(tmp_path, "experiment_events", "experiment_id", experiment)
        assert synced == live_ids(emulator, "experiment", experiment)
    with dg.DagsterInstance.from_config(str(home)) as home_instance:
        status = home_instance.get_status_by_partition(
            EXPERIMENT_EVENTS.key, experiments, EXPERIMENT_EVENTS.partitions
        )
    assert status == dict.fromkeys(experiments, dg.AssetPartitionStatus.MATERIALIZED)
