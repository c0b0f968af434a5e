"""The push job: `bt-sync push FILE` as a Dagster run, with the CLI's options and validation."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from connector.emulator import Emulator
from connector.push.run import PushOptions
from pipelines.push import PUSH_JOB_NAME, PushConfig


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
        "project": "support-bot",
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
    # The run's log counts the push's batches; the check before it counts none.
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert "push golden.csv: 2 rows, 1 batches" in logged
    assert "validate golden.csv: 2 rows" in logged
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
    # In the run config's words: it said "--on-error skip needs --rejects FILE".
    assert failure.event_specific_data.error.message.startswith(
        "dagster._core.definitions.events.Failure: invalid push config: "
        "rejects: on_error: skip needs rejects (a file), so skipped rows are kept"
    )
