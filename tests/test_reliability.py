"""Reliability: every fault during a sync, random SIGKILLs, bad state, and secrets never leaking."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.api.client import BraintrustClient
from connector.config import ApiSettings
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.errors import BtSyncError, PaginationError, StateError
from connector.progress import NullProgress
from connector.push.run import PushOptions, push_file
from connector.sync.staging import CHECKPOINT_FILE
from schemas.api import ObjectType
from tests.support import CLI, all_tables, start_cli_sync, sync
from tests.test_push import CSV_AS_EVENTS, same_rows, write_csv
from tests.test_push_cli import push_process

SECRET = "sk-bt-sync-test-secret-7f3a9c"

# Every fault the emulator can inject on the read path, at several positions in the sync.
FAULTS = [
    FaultRule(kind="status", status=429, retry_after="0"),
    FaultRule(kind="status", status=429, retry_after="Thu, 01 Jan 1970 00:00:00 GMT"),
    FaultRule(kind="status", status=500),
    FaultRule(kind="status", status=502),
    FaultRule(kind="status", status=503),
    FaultRule(kind="status", status=504),
    FaultRule(kind="status", status=408),
    FaultRule(kind="slow", delay_s=1.2),
    FaultRule(kind="drop"),
    FaultRule(kind="truncate"),
]
ROUTES = ["/fetch", "^/v1/(project|experiment|dataset)$"]
POSITIONS = [0, 3, 9]


@pytest.fixture(scope="module")
def reliability_emulator() -> Iterator[Emulator]:
    with Emulator(seed="demo", api_key=SECRET) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def reference(reliability_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    db = tmp_path_factory.mktemp("reference") / "reference.duckdb"
    sync(reliability_emulator, db)
    return all_tables(db)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f.kind}-{f.status}")
def test_a_fault_anywhere_in_a_sync_loses_and_duplicates_nothing(
    reliability_emulator: Emulator,
    reference: dict[str, list],
    tmp_path: Path,
    fault: FaultRule,
    route: str,
    position: int,
) -> None:
    """10 faults x 2 routes x 3 positions = 60 scenarios; each completes with exactly the clean result."""
    emulator = reliability_emulator
    emulator.faults.clear()
    emulator.faults.add(replace(fault, route=route, after=position, times=2))
    db = tmp_path / "w.duckdb"
    summary = sync(emulator, db, timeout_s=1.0) if fault.kind == "slow" else sync(emulator, db)
    emulator.faults.clear()
    assert all_tables(db) == reference
    assert summary.retries >= 1  # the fault fired and was survived


def test_a_repeating_cursor_fails_clearly_and_keeps_the_previous_state(
    reliability_emulator: Emulator, reference: dict[str, list], tmp_path: Path
) -> None:
    emulator = reliability_emulator
    db = tmp_path / "w.duckdb"
    sync(emulator, db)
    emulator.faults.add(FaultRule(kind="repeat_cursor", route="/fetch", times=None, after=0))
    try:
        with pytest.raises(PaginationError, match="already returned"):
            sync(emulator, db, full=True, page_limit=5)
    finally:
        emulator.faults.clear()
    assert all_tables(db) == reference
    sync(emulator, db)
    assert all_tables(db) == reference


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_after_s=st.floats(min_value=0.05, max_value=2.5))
def test_sigkill_at_random_points_then_rerun_converges(
    reliability_emulator: Emulator,
    reference: dict[str, list],
    tmp_path_factory: pytest.TempPathFactory,
    kill_after_s: float,
) -> None:
    emulator = reliability_emulator
    work = tmp_path_factory.mktemp("killed")
    db, parquet = work / "w.duckdb", work / "pq"
    emulator.faults.add(FaultRule(kind="slow", route="/fetch", delay_s=0.01, times=None))
    process = start_cli_sync(emulator, db, parquet, page_limit=3)
    time.sleep(kill_after_s)
    process.send_signal(signal.SIGKILL)
    process.wait()
    emulator.faults.clear()
    sync(emulator, db, parquet=parquet)
    assert all_tables(db) == reference


def test_a_corrupt_checkpoint_is_a_clear_error(reliability_emulator: Emulator, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    sync(reliability_emulator, db)
    project_id = reliability_emulator.store.list_objects("project", ListQuery())[0]["id"]
    checkpoint = tmp_path / "w.duckdb.staging" / ObjectType.PROJECT_LOGS.value / project_id / CHECKPOINT_FILE
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("{not json")
    with pytest.raises(StateError, match="corrupt") as caught:
        sync(reliability_emulator, db)
    assert str(checkpoint.parent) in str(caught.value)


def test_an_unwritable_parquet_root_is_a_clear_error(reliability_emulator: Emulator, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.raises(BtSyncError, match="cannot write Parquet"):
        sync(reliability_emulator, tmp_path / "w.duckdb", parquet=blocker / "pq")


def test_the_api_key_never_reaches_output_or_files(reliability_emulator: Emulator, tmp_path: Path) -> None:
    db, parquet = tmp_path / "w.duckdb", tmp_path / "pq"
    env = {**os.environ, "BRAINTRUST_API_KEY": SECRET}
    runs = [
        subprocess.run(
            [
                *CLI,
                "sync",
                "--api-url",
                reliability_emulator.url,
                "--duckdb",
                str(db),
                "--parquet",
                str(parquet),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
        ),
        subprocess.run([*CLI, "status", "--duckdb", str(db)], env=env, capture_output=True, text=True),
        subprocess.run(
            [*CLI, "sync", "--api-url", "http://127.0.0.1:9", "--duckdb", str(db), "--debug"],
            env=env,
            capture_output=True,
            text=True,
        ),
        subprocess.run(
            [
                *CLI,
                "sync",
                "--api-url",
                reliability_emulator.url,
                "--api-key",
                SECRET + "-wrong",
                "--duckdb",
                str(db),
                "--debug",
            ],
            env=env,
            capture_output=True,
            text=True,
        ),
    ]
    assert [run.returncode != 0 for run in runs] == [False, False, True, True]
    for run in runs:
        assert SECRET not in run.stdout + run.stderr
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".parquet" for path in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


# Push --------------------------------------------------------------------------------------------

PUSH_ROWS = 400
PUSH_FAULTS = [
    *FAULTS,
    FaultRule(kind="status", status=413),
    FaultRule(kind="drop_after_apply"),
]


def pushed_exactly_once(emulator: Emulator, dataset: str, path: Path, tmp_path: Path) -> None:
    (found,) = emulator.store.list_objects("dataset", ListQuery(project_name="p", name=dataset))
    live = emulator.store.live_rows("dataset", found["id"])
    same_rows(live, CSV_AS_EVENTS.format(path=path), tmp_path)


@pytest.mark.parametrize("position", [0, 4])
@pytest.mark.parametrize("fault", PUSH_FAULTS, ids=lambda f: f"{f.kind}-{f.status}")
def test_a_fault_anywhere_in_a_push_loses_and_duplicates_nothing(
    reliability_emulator: Emulator, tmp_path: Path, fault: FaultRule, position: int
) -> None:
    """12 faults x 2 positions = 24 scenarios, each ending with exactly the file's rows once."""
    emulator = reliability_emulator
    dataset = f"faults-{fault.kind}-{fault.status}-{position}"
    path = write_csv(tmp_path / "data.csv", PUSH_ROWS)
    emulator.faults.clear()
    emulator.faults.add(replace(fault, route="/insert", after=position, times=2))
    settings = ApiSettings(api_url=emulator.url, api_key=SECRET, backoff_initial_s=0.01, timeout_s=1.0)
    with BraintrustClient(settings) as client:
        options = PushOptions(
            file=path, project="p", dataset=dataset, batch_rows=40, state_dir=tmp_path / "s"
        )
        summary = push_file(client, options, NullProgress())
    emulator.faults.clear()
    assert summary.rows_sent == PUSH_ROWS
    assert summary.retries + summary.splits >= 1  # the fault fired and was survived
    pushed_exactly_once(emulator, dataset, path, tmp_path)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_after_s=st.floats(min_value=0.3, max_value=2.0))
def test_push_sigkill_at_random_points_then_rerun_has_each_row_once(
    reliability_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory, kill_after_s: float
) -> None:
    emulator = reliability_emulator
    work = tmp_path_factory.mktemp("push-killed")
    dataset = work.name
    path = write_csv(work / "data.csv", 1_500)
    emulator.faults.add(FaultRule(kind="slow", route="/insert", delay_s=0.02, times=None))
    victim = push_process(emulator, path, work / "state", "--dataset", dataset, "--batch-rows", "25")
    time.sleep(kill_after_s)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    emulator.faults.clear()
    rerun = push_process(emulator, path, work / "state", "--dataset", dataset, "--batch-rows", "25")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    pushed_exactly_once(emulator, dataset, path, work)
