"""Run config a user got wrong fails its step once, in one line naming the setting, and is not retried."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from connector.emulator import Emulator
from pipelines import BraintrustResource, WarehouseResource, build_definitions
from pipelines.jobs import CHECKS_JOB_NAME
from pipelines.maintain import MAINTAIN_JOB_NAME
from tests.pipelines.helpers import run_job

EXPERIMENTS_JOB = "braintrust_experiment_events_job"
EXPERIMENTS_OP = "braintrust_experiment_events"
SYNCED_RECENTLY_OP = "braintrust__experiment_events_synced_recently"


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
            "retain_hours must be between 0 and 878,400 hours, got 1e+12",
        ),
        (
            CHECKS_JOB_NAME,
            SYNCED_RECENTLY_OP,
            op_config(SYNCED_RECENTLY_OP, max_age_hours=float("inf")),
            "max_age_hours must be between 0 and 878,400 hours, got inf",
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
