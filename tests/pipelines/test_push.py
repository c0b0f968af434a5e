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
    assert "push golden.csv: 2 rows, 1 batch" in logged
    assert "validate golden.csv: 2 rows" in logged
    rows = emulator.store.live_rows("dataset", metadata["dataset_id"])
    assert sorted((r["id"], r["input"], r["expected"]) for r in rows) == [
        ("q1", "What is 2+2?", "4"),
        ("q2", "Capital of France?", "Paris"),
    ]

    semicolons = tmp_path / "golden-semicolons.csv"
    semicolons.write_text("key;question;answer;topic\nq3;Half of 3?;1,5;math\n")
    separated = {**config, "file": str(semicolons), "dataset": "semicolons", "delimiter": ";"}
    pushed = push.execute_in_process(
        instance=instance, run_config={"ops": {"push_dataset_file": {"config": separated}}}
    )
    (output,) = [e for e in pushed.all_events if e.event_type_value == "STEP_OUTPUT"]
    dataset_id = output.event_specific_data.metadata["dataset_id"].value
    (row,) = emulator.store.live_rows("dataset", dataset_id)
    assert (row["id"], row["input"], row["expected"]) == ("q3", "Half of 3?", "1,5")

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


def test_the_push_job_s_checks_while_it_runs_name_the_run_config_s_fields(
    emulator: Emulator, test_defs: dg.Definitions, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text('id,input\nq1,"{not json"\n')
    (tmp_path / "rejects").mkdir()
    base = {"project": "support-bot", "dataset": "pushed", "state_dir": str(tmp_path / "push-state")}
    push = test_defs.resolve_job_def(PUSH_JOB_NAME)

    def failure(config: dict[str, object]) -> str:
        result = push.execute_in_process(
            instance=instance,
            run_config={"ops": {"push_dataset_file": {"config": base | config}}},
            raise_on_error=False,
        )
        (failed,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        message: str = failed.event_specific_data.error.message
        assert "--" not in message, message
        return message

    directory = {"file": str(source), "on_error": "skip", "rejects": str(tmp_path / "rejects")}
    semicolons = tmp_path / "export.csv"
    semicolons.write_text("id;input\nq1;x\n")
    assert "its header looks separated by ';': pass delimiter: ';'" in failure({"file": str(semicolons)})
    assert f"rejects {tmp_path / 'rejects'} is a directory; name a file" in failure(directory)
    assert "pass parse_json: false to send such values as text" in failure({"file": str(source)})
    query_file = tmp_path / "query.sql"
    query_file.write_bytes(b"SELECT '\xff'")
    assert f"sql_file {query_file}: not UTF-8 text" in failure({"sql_file": str(query_file)})
    unknown = tmp_path / "rows.data"
    unknown.write_text("id\n1\n")
    assert "or pass format: csv|parquet|jsonl|json" in failure({"file": str(unknown)})


def test_a_push_run_that_rejected_every_row_fails_with_its_counts(
    emulator: Emulator, test_defs: dg.Definitions, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text('id,input\nq1,"{not json"\nq2,"[1,"\n')
    rejects = tmp_path / "rejects.jsonl"
    config = {
        "file": str(source),
        "project": "support-bot",
        "dataset": "pushed",
        "on_error": "skip",
        "rejects": str(rejects),
        "state_dir": str(tmp_path / "push-state"),
    }
    result = test_defs.resolve_job_def(PUSH_JOB_NAME).execute_in_process(
        instance=instance, run_config={"ops": {"push_dataset_file": {"config": config}}}, raise_on_error=False
    )
    # It succeeded, every row set aside: a scheduled backfill of a file in the wrong shape looked done.
    assert not result.success
    (failed,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    failure = failed.event_specific_data.user_failure_data
    assert (
        failure.description
        == f"no row of rows.csv was stored: 2 rows rejected (written to {rejects}); mend them and push again"
    )
    metadata = {k: v.value for k, v in failure.metadata.items()}
    assert (metadata["rows_read"], metadata["rows_skipped"], metadata["rows_sent"]) == (2, 2, 0)
    assert len(rejects.read_bytes().splitlines()) == 2
