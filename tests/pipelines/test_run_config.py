"""Settings a user got wrong: run config fails its step once, in one line naming the setting, and is not
retried; a resource's setting or variable set wrong skips the discovery sensor's ticks in that line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from connector.emulator import Emulator
from connector.errors import ConfigError
from pipelines import BraintrustResource, WarehouseResource, build_definitions
from pipelines.definitions import defs as shipped_defs
from pipelines.jobs import CHECKS_JOB_NAME
from pipelines.maintain import MAINTAIN_JOB_NAME
from pipelines.sensors import DISCOVERY_SENSOR_NAME
from tests.helpers import run_installed
from tests.pipelines.helpers import discover, run_job

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS_JOB = "braintrust_experiment_events_job"
EXPERIMENTS_OP = "braintrust_experiment_events"
SYNCED_RECENTLY_OP = "braintrust__experiment_events_synced_recently"


def skip_message(tick: dg.SensorResult) -> str:
    """The one line a tick that requests nothing skipped with."""
    assert not tick.run_requests and not tick.dynamic_partitions_requests
    assert tick.skip_reason is not None and tick.skip_reason.skip_message is not None
    assert "\n" not in tick.skip_reason.skip_message
    return tick.skip_reason.skip_message


def op_config(op: str, **config: Any) -> dict[str, Any]:
    return {"ops": {op: {"config": config}}}


@pytest.mark.parametrize(
    ("job", "op", "run_config", "message"),
    [
        (
            EXPERIMENTS_JOB,
            EXPERIMENTS_OP,
            op_config(EXPERIMENTS_OP, page_limit=0),
            "invalid sync config: page_limit: Input should be greater than or equal to 1",
        ),
        (
            EXPERIMENTS_JOB,
            EXPERIMENTS_OP,
            op_config(EXPERIMENTS_OP, overlap_s=float("nan")),
            "invalid sync config: overlap_s: Input should be a finite number",
        ),
        (
            MAINTAIN_JOB_NAME,
            "maintain_warehouse",
            op_config("maintain_warehouse", retain_hours=1e12),
            "retain_hours: must be between 0 and 878,400 hours, got 1,000,000,000,000",
        ),
        (
            CHECKS_JOB_NAME,
            SYNCED_RECENTLY_OP,
            op_config(SYNCED_RECENTLY_OP, max_age_hours=float("inf")),
            "max_age_hours: must be between 0 and 878,400 hours, got inf",
        ),
    ],
)
def test_a_setting_out_of_its_range_fails_its_step_once_naming_it(
    upstream: dict[str, str],
    test_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job: str,
    op: str,
    run_config: dict[str, Any],
    message: str,
) -> None:
    partition = {"partition_key": "support-bot/baseline"} if job == EXPERIMENTS_JOB else {}
    if partition:
        instance.add_dynamic_partitions("bt_experiments", ["support-bot/baseline"])
    done = run_job(test_defs, instance, job, run_config=run_config, raise_on_error=False, **partition)
    events = [e for e in done.all_events if e.step_key == op]
    assert "STEP_UP_FOR_RETRY" not in [e.event_type_value for e in events]
    (failure,) = [e for e in events if e.event_type_value == "STEP_FAILURE"]
    error = str(failure.event_specific_data.error)
    assert message in error and "Traceback" not in error.split("\n")[0]


@pytest.mark.parametrize(
    ("api_url", "variable", "message"),
    [
        ("127.0.0.1:9", None, "invalid setting: api_url: must start with http://"),
        # The definitions load all the same: before, the code location did not (a traceback in every
        # `dagster` command, the UI, sensors and schedules).
        (
            None,
            ("BT_SYNC_DESTINATION", "foo"),
            "invalid setting: BT_SYNC_DESTINATION: Input should be 'duckdb' or 'iceberg'",
        ),
    ],
    ids=["resource field", "warehouse variable"],
)
def test_a_setting_a_user_got_wrong_fails_its_step_once_naming_it(
    upstream: dict[str, str],
    emulator: Emulator,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
    api_url: str | None,
    variable: tuple[str, str] | None,
    message: str,
) -> None:
    if variable is not None:
        monkeypatch.setenv(*variable)
    braintrust = BraintrustResource(api_url=api_url or emulator.url, api_key=emulator.api_key)
    retry_policy = dg.RetryPolicy(max_retries=3)
    definitions = build_definitions(braintrust, warehouse_resource, retry_policy=retry_policy)
    instance.add_dynamic_partitions("bt_experiments", ["support-bot/baseline"])
    done = run_job(
        definitions, instance, EXPERIMENTS_JOB, partition_key="support-bot/baseline", raise_on_error=False
    )
    events = [e.event_type_value for e in done.all_events if e.step_key == EXPERIMENTS_OP]
    assert "STEP_UP_FOR_RETRY" not in events and events.count("STEP_FAILURE") == 1
    (failure,) = [e for e in done.all_events if e.event_type_value == "STEP_FAILURE"]
    assert message in str(failure.event_specific_data.error)


def test_resource_fields_left_unset_read_the_cli_s_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BT_SYNC_TIMEOUT", "7")
    monkeypatch.setenv("BT_SYNC_MAX_ATTEMPTS", "2")
    settings = BraintrustResource(api_key="key").settings()
    assert (settings.timeout_s, settings.max_attempts) == (7, 2)
    given = BraintrustResource(api_key="key", timeout_s=3, max_attempts=1).settings()
    assert (given.timeout_s, given.max_attempts) == (3, 1)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (("BT_SYNC_TIMEOUT", "abc"), "invalid setting: BT_SYNC_TIMEOUT: Input should be a valid number"),
        (("BT_SYNC_MAX_ATTEMPTS", "0"), "invalid setting: BT_SYNC_MAX_ATTEMPTS: Input should be greater"),
        (("BRAINTRUST_API_URL", "127.0.0.1:9"), "invalid setting: BRAINTRUST_API_URL: must start with http"),
        (("BT_SYNC_DESTINATION", "foo"), "invalid setting: BT_SYNC_DESTINATION: Input should be 'duckdb'"),
        (("BT_SYNC_DUCKDB", ""), "invalid setting: BT_SYNC_DUCKDB: is empty: give a path"),
        # Ticks looked healthy while every sync failed opening it.
        (("BT_SYNC_DUCKDB", "{tmp}"), "BT_SYNC_DUCKDB {tmp} is a directory: name a DuckDB file in it"),
        (
            ("BT_SYNC_DUCKDB", "{tmp}/empty"),
            "BT_SYNC_DUCKDB {tmp}/empty is an empty file, not a DuckDB database: name another file",
        ),
    ],
    ids=["timeout", "attempts", "url", "destination", "duckdb", "duckdb-directory", "duckdb-empty-file"],
)
def test_a_setting_a_user_got_wrong_skips_the_sensor_s_tick_naming_it(
    upstream: dict[str, str],
    emulator: Emulator,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: tuple[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("BRAINTRUST_API_URL", emulator.url)
    monkeypatch.setenv("BT_SYNC_DUCKDB", str(tmp_path / "warehouse.duckdb"))
    (tmp_path / "empty").touch()
    name, value = variable
    monkeypatch.setenv(name, value.format(tmp=tmp_path))
    warehouse = WarehouseResource(parquet_root=str(tmp_path / "parquet"), state_dir=str(tmp_path / "state"))
    braintrust = BraintrustResource(api_key=emulator.api_key)
    reason = skip_message(discover(build_definitions(braintrust, warehouse), instance))
    assert reason.startswith(f"bt-sync: {message.format(tmp=tmp_path)}") and emulator.api_key not in reason


def test_the_shipped_sensor_skips_its_tick_in_one_line_while_the_key_is_unset(
    emulator: Emulator, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped definitions took the key as Dagster's EnvVar, which failed the tick with Dagster's
    # own error and traceback before the sensor ran.
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    monkeypatch.setenv("BRAINTRUST_API_URL", emulator.url)
    monkeypatch.setenv("BT_SYNC_DUCKDB", str(tmp_path / "warehouse.duckdb"))
    reason = skip_message(discover(shipped_defs, instance))
    assert reason == (
        "bt-sync: No Braintrust API key: set BRAINTRUST_API_KEY where Dagster runs, or give "
        "BraintrustResource an api_key that is not blank."
    )


@pytest.mark.parametrize(
    ("api_key", "message"),
    [
        ("wrong-secret-key", "Braintrust rejected the API key (HTTP 401"),
        ("wrong-secret-kéy", "invalid setting: api_key: holds a non-ASCII character (at position 15 of 16)"),
    ],
    ids=["rejected", "not ASCII"],
)
def test_a_key_a_user_got_wrong_skips_the_sensor_s_tick_without_showing_it(
    upstream: dict[str, str],
    emulator: Emulator,
    instance: dg.DagsterInstance,
    warehouse_resource: WarehouseResource,
    api_key: str,
    message: str,
) -> None:
    braintrust = BraintrustResource(api_url=emulator.url, api_key=api_key)
    reason = skip_message(discover(build_definitions(braintrust, warehouse_resource), instance))
    assert reason.startswith(f"bt-sync: {message}") and "secret" not in reason


def test_the_daemon_sees_a_bad_setting_s_skipped_tick_as_one_line(emulator: Emulator, tmp_path: Path) -> None:
    # Through the code server, as the daemon and the UI evaluate a tick: a sensor's error would show
    # Dagster's own headline over two tracebacks.
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "BRAINTRUST_API_URL": emulator.url,
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_TIMEOUT": "abc",
        "BT_SYNC_DUCKDB": str(tmp_path / "warehouse.duckdb"),
        "BT_SYNC_PARQUET": str(tmp_path / "parquet"),
        "BT_SYNC_STATE_DIR": str(tmp_path / "state"),
    }
    preview = ("sensor", "preview", DISCOVERY_SENSOR_NAME, "-m", "pipelines.definitions")
    completed = run_installed("dagster", *preview, env=env, cwd=REPO)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "skipping: bt-sync: invalid setting: BT_SYNC_TIMEOUT: Input should be a valid number" in output
    assert "Traceback" not in output and "Stack Trace" not in output and emulator.api_key not in output


def test_a_duckdb_file_that_cannot_be_one_fails_what_opens_the_warehouse_not_what_reads_its_settings(
    tmp_path: Path,
) -> None:
    # A file's push reads the resource's settings (its scratch directory), never the DuckDB file.
    warehouse = WarehouseResource(duckdb_path=str(tmp_path), state_dir=str(tmp_path / "state"))
    assert warehouse.settings().state_dir == tmp_path / "state"
    with pytest.raises(ConfigError, match=f"^the warehouse resource's duckdb_path {tmp_path} is a directory"):
        warehouse.open(prepare=False)
