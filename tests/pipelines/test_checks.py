"""Asset checks on the event tables, run as `braintrust_checks_job` runs them, on a synced warehouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from connector.emulator import Emulator
from connector.errors import WarehouseError
from pipelines import BraintrustResource, build_definitions
from pipelines.jobs import CHECKS_JOB_NAME
from pipelines.maintain import MAINTAIN_JOB_NAME
from pipelines.resources import WarehouseResource
from tests.helpers import sync
from tests.pipelines.helpers import EXPERIMENT_EVENTS, refresh_catalog, run_checks, run_job, sync_warehouse


def first_version_file(warehouse: WarehouseResource, table: str, key: str, object_id: str) -> Path:
    """The first file of the object's current commit."""
    root = Path(warehouse.settings().tables_root)
    record = json.loads((root / table / f"{key}={object_id}" / "_sync_state.json").read_text())
    return root / "_bt_sync" / table / f"{key}={object_id}" / record["files"][0]["version"]


def duplicate_row(warehouse: WarehouseResource, table: str, key: str, object_id: str, row_id: str) -> None:
    """Corrupt the warehouse behind bt-sync's back: a second copy of a row in the object's file."""
    path = first_version_file(warehouse, table, key, object_id)
    versions = path.parent
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM '{path}' UNION ALL SELECT * FROM '{path}' WHERE id = '{row_id}') TO "
            f"'{path}.new' (FORMAT parquet)"
        )
    (versions / f"{path.name}.new").replace(path)


def age_sync_state(warehouse: WarehouseResource, table: str, key: str, when: datetime) -> None:
    """Make every object of a table look last synced at `when`."""
    for path in Path(warehouse.settings().tables_root, table).glob(f"{key}=*/_sync_state.json"):
        record = json.loads(path.read_text())
        if record.get("state"):
            record["state"]["synced_at"] = when.isoformat()
            path.write_text(json.dumps(record))


def test_checks_pass_on_a_synced_warehouse(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    evaluations = run_checks(test_defs, instance)
    assert len(evaluations) == 13
    assert {name: e.passed for name, e in evaluations.items() if not e.passed} == {}


def test_an_iceberg_warehouse_syncs_passes_its_checks_and_is_maintained(
    emulator: Emulator,
    upstream: dict[str, str],
    braintrust: BraintrustResource,
    instance: dg.DagsterInstance,
    iceberg_resource: WarehouseResource,
) -> None:
    iceberg_defs = build_definitions(braintrust, iceberg_resource)
    sync_warehouse(emulator, iceberg_resource)
    assert {name: e.passed for name, e in run_checks(iceberg_defs, instance).items() if not e.passed} == {}
    with iceberg_resource.reader() as connection:
        assert connection.execute("SELECT count(*) FROM project_logs").fetchone() == (30,)
    config = {"ops": {"maintain_warehouse": {"config": {"retain_hours": 0}}}}
    assert run_job(iceberg_defs, instance, MAINTAIN_JOB_NAME, run_config=config).success


def test_unique_key_check_fails_on_a_duplicated_row(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    duplicate_row(warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"], "ev-3")
    evaluations = run_checks(test_defs, instance)
    failed = evaluations["experiment_events:unique_key"]
    assert not failed.passed
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["duplicated_keys"].value == 1
    assert failed.metadata["sample"].value == [
        {"experiment_id": upstream["experiment"], "id": "ev-3", "copies": "2"}
    ]
    # The object's commit counts the row once: its table holds one row more than its state says.
    assert sorted(name for name, e in evaluations.items() if not e.passed) == [
        "experiment_events:rows_match_sync_state",
        "experiment_events:unique_key",
    ]


def test_rows_match_sync_state_fails_when_a_commit_record_leaves_out_a_file_or_miscounts(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    root = Path(warehouse_resource.settings().tables_root)
    path = root / "experiment_events" / f"experiment_id={upstream['experiment']}" / "_sync_state.json"
    record = json.loads(path.read_text())
    # Its file left out by hand: the object's rows vanished from every query, and every check passed.
    path.write_text(json.dumps({**record, "files": []}))
    # That check alone: the checks job runs fifteen.
    check = dg.AssetCheckKey(EXPERIMENT_EVENTS, "rows_match_sync_state")
    failed = run_checks(test_defs, instance, check)["experiment_events:rows_match_sync_state"]
    assert (failed.passed, failed.severity) == (False, dg.AssetCheckSeverity.ERROR)
    rows = record["state"]["rows"]
    assert failed.metadata["sample"].value == [
        {
            "id": upstream["experiment"],
            "name": "support-bot/baseline",
            "sync_state_rows": str(rows),
            "table_rows": "0",
        }
    ]
    # Its state counting rows its files do not hold.
    path.write_text(json.dumps({**record, "state": {**record["state"], "rows": rows + 5}}))
    assert not run_checks(test_defs, instance, check)["experiment_events:rows_match_sync_state"].passed
    path.write_text(json.dumps(record))
    assert run_checks(test_defs, instance, check)["experiment_events:rows_match_sync_state"].passed


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("deleted", "a file of the synced tables is missing"),
        ("garbled", "a file of the synced tables is damaged"),
    ],
)
def test_the_checks_fail_at_once_naming_a_file_of_the_warehouse_missing_or_damaged(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    damage: str,
    says: str,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    victim = first_version_file(
        warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"]
    )
    if damage == "deleted":
        victim.unlink()
    else:  # the first columns' pages, which every check's query reads
        data = bytearray(victim.read_bytes())
        victim.write_bytes(data[:200] + bytes(b ^ 0x5A for b in data[200:2_000]) + data[2_000:])
    result = run_job(test_defs, instance, CHECKS_JOB_NAME, raise_on_error=False)
    assert not result.success
    assert not any(e.passed for e in result.get_asset_check_evaluations())
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures
    assert all(
        says in str(e.event_specific_data) and victim.name in str(e.event_specific_data) for e in failures
    )
    # Not retried for minutes as if the warehouse could mend itself.
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_query_the_warehouse_cannot_answer_is_a_terminal_warehouse_error(
    emulator: Emulator, warehouse_resource: WarehouseResource, tmp_path: Path
) -> None:
    # As a file damaged past its metadata is found only by a query that reads its pages.
    sync_warehouse(emulator, warehouse_resource)
    garbage = tmp_path / "damaged.parquet"
    garbage.write_bytes(b"PAR1" + bytes(range(256)) * 8 + b"PAR1")
    refused = pytest.raises(WarehouseError, match=r"^the synced tables cannot be read: .*damaged\.parquet")
    with refused, warehouse_resource.reader(pinned=True) as connection:
        connection.execute(f"SELECT * FROM read_parquet('{garbage}')").fetchall()


def test_a_file_a_query_finds_damaged_is_named_though_duckdb_names_none(
    emulator: Emulator, upstream: dict[str, str], warehouse_resource: WarehouseResource
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    victim = first_version_file(
        warehouse_resource, "experiment_events", "experiment_id", upstream["experiment"]
    )
    with (
        pytest.raises(WarehouseError) as refused,
        warehouse_resource.reader(pinned=True) as connection,
    ):
        # Damaged once the reader was opened: found by the query, whose error (DuckDB's `Out of buffer`,
        # say) named no file.
        with victim.open("r+b") as file:
            file.seek(100)
            file.write(bytes(200))
        connection.execute("SELECT * FROM experiment_events").fetchall()
    assert str(refused.value).startswith(
        "the synced tables cannot be read: a file of the synced tables is damaged"
    )
    assert victim.name in str(refused.value)


def test_coverage_freshness_and_count_checks_warn_when_the_warehouse_is_behind(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    emulator.store.insert("dataset", upstream["dataset"], [{"id": "rec-late", "expected": 0}])
    unsynced = emulator.store.create_experiment(upstream["project"], "exp-unsynced")
    refresh_catalog(test_defs, instance)
    for table, key in (("project_logs", "project_id"), ("experiment_events", "experiment_id")):
        age_sync_state(warehouse_resource, table, key, datetime(2020, 1, 1, tzinfo=UTC))
    evaluations = run_checks(test_defs, instance)
    failed = {name: e for name, e in evaluations.items() if not e.passed}
    assert sorted(failed) == [
        "dataset_records:row_counts_match_api",
        "experiment_events:objects_synced",
        "experiment_events:synced_recently",
        "project_logs:synced_recently",
    ]
    stale = failed["experiment_events:synced_recently"].metadata["sample"].value
    # Named as its partition is (it said the experiment's name alone: two projects' `baseline` read alike).
    experiment = emulator.store.get("experiment", upstream["experiment"])["name"]
    assert [row["name"] for row in stale] == [f"support-bot/{experiment}"]
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in failed.values())
    counts = failed["dataset_records:row_counts_match_api"].metadata["sample"].value
    assert counts == [
        {"id": upstream["dataset"], "name": "support-bot/golden", "warehouse_rows": "8", "api_records": "9"}
    ]
    unsynced_sample = failed["experiment_events:objects_synced"].metadata["sample"].value
    # Named as its partition is (it said "exp-unsynced").
    assert unsynced_sample == [{"id": unsynced["id"], "name": "support-bot/exp-unsynced"}]


@pytest.mark.parametrize(("hours_ago", "recent"), [(5, True), (7, False)])
def test_synced_recently_means_within_max_age_hours(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    hours_ago: int,
    recent: bool,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    synced_at = datetime.now(UTC) - timedelta(hours=hours_ago)
    age_sync_state(warehouse_resource, "project_logs", "project_id", synced_at)
    assert run_checks(test_defs, instance)["project_logs:synced_recently"].passed is recent  # default: 6


def test_the_count_check_warns_about_a_dataset_deleted_upstream_until_a_reconcile_removes_it(
    emulator: Emulator,
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
) -> None:
    sync_warehouse(emulator, warehouse_resource)
    emulator.store.delete("dataset", upstream["dataset"])
    # The sensor refreshes the catalog after a deletion: the dataset leaves `datasets`, its rows stay.
    refresh_catalog(test_defs, instance)
    failed = run_checks(test_defs, instance)["dataset_records:row_counts_match_api"]
    assert not failed.passed
    assert failed.metadata["sample"].value == [
        {
            "id": upstream["dataset"],
            "name": "support-bot/golden",
            "warehouse_rows": "8",
            "api_records": "None",
        }
    ]
    sync(emulator, warehouse_resource.settings(), reconcile=True)
    assert run_checks(test_defs, instance)["dataset_records:row_counts_match_api"].passed
