"""`braintrust_push_job` with `sql` instead of `file`: a dataset curated from the warehouse, in Dagster."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from connector.emulator import Emulator
from pipelines.definitions import build_definitions
from pipelines.push import PUSH_JOB_NAME
from pipelines.resources import BraintrustResource, WarehouseResource
from tests.helpers import sync, warehouse_in


def test_push_job_pushes_a_query_s_result_and_a_rerun_sends_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    project = emulator.store.create_project("pipelines")
    spans = [
        {"id": f"log-{n}", "input": {"q": n}, "output": n * n, "scores": {"acc": n / 10}} for n in range(10)
    ]
    emulator.store.insert("project_logs", project["id"], spans)
    warehouse = warehouse_in(tmp_path)
    sync(emulator, warehouse)
    defs = build_definitions(
        BraintrustResource(api_url=emulator.url, api_key=emulator.api_key),
        WarehouseResource(duckdb_path=str(warehouse.duckdb_path), parquet_root=warehouse.parquet_root),
    )
    config = {
        "sql": "SELECT id, project_id, _xact_id, input, output AS expected FROM project_logs "
        "WHERE scores['acc'] < 0.5",
        "project": "pipelines",
        "dataset": "curated",
        "state_dir": str(tmp_path / "push-state"),
    }
    job = defs.resolve_job_def(PUSH_JOB_NAME)
    outputs = []
    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = job.execute_in_process(
                instance=instance, run_config={"ops": {"push_dataset_file": {"config": config}}}
            )
            (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
            outputs.append({k: v.value for k, v in output.event_specific_data.metadata.items()})
    first, rerun = outputs
    assert (first["rows_read"], first["rows_sent"], first["origin"], first["origins_linked"]) == (
        5,
        5,
        "project_logs",
        5,
    )
    assert "FROM project_logs" in first["query"] and "file" not in first
    assert (rerun["rows_sent"], rerun["already_complete"]) == (0, True)
    # What the run created, as the command line says it: a mistyped name shows at once.
    assert (first["created"], rerun["created"]) == (["dataset"], [])
    assert "earlier" not in first
    assert rerun["earlier"] == {"rows_sent": 5, "rows_skipped": 0, "rows_duplicate": 0, "rejects": None}
    rows = emulator.store.live_rows("dataset", first["dataset_id"])
    assert sorted((r["id"], r["input"], r["expected"], r["origin"]["id"]) for r in rows) == [
        (f"log-{n}", {"q": n}, n * n, f"log-{n}") for n in range(5)
    ]
