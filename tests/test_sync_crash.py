"""A sync killed with SIGKILL at any point, then rerun, converges to a clean sync's tables."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from connector.emulator import Emulator, FaultRule
from tests.support import all_tables, start_cli_sync, sync


def fetches_served(emulator: Emulator) -> int:
    return sum(n for (method, route), n in emulator.stats.requests.items() if route.endswith("fetch"))


@pytest.fixture(scope="module")
def crash_emulator() -> Emulator:
    with Emulator(seed="empty") as emulator:
        project = emulator.store.create_project("crash")
        emulator.store.generate_logs(project["id"], 3_000, update_fraction=0.05, rng_seed=7)
        dataset = emulator.store.create_dataset(project["id"], "ds")
        emulator.store.insert("dataset", dataset["id"], [{"id": f"r{i}", "input": i} for i in range(300)])
        yield emulator


@pytest.mark.parametrize("kill_after_fetches", [1, 4, 12, 30, 10_000])
def test_kill_9_then_rerun_converges(
    crash_emulator: Emulator, tmp_path: Path, kill_after_fetches: int
) -> None:
    emulator = crash_emulator
    reference = tmp_path / "reference.duckdb"
    sync(emulator, reference, parquet=tmp_path / "reference-pq")
    db, parquet = tmp_path / "killed.duckdb", tmp_path / "killed-pq"
    emulator.stats.reset()
    emulator.faults.add(FaultRule(kind="slow", route="/fetch", delay_s=0.01, times=10_000))
    process = start_cli_sync(emulator, db, parquet)
    deadline = time.monotonic() + 60
    # 10_000 means "after every fetch": the kill then lands in the merge or Parquet phase, or just after it.
    while process.poll() is None and time.monotonic() < deadline:
        if fetches_served(emulator) >= kill_after_fetches:
            break
        time.sleep(0.005)
    if kill_after_fetches >= 10_000:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    emulator.faults.clear()
    sync(emulator, db, parquet=parquet)
    assert all_tables(db) == all_tables(reference)
    assert parquet_rows(parquet) == parquet_rows(tmp_path / "reference-pq")


def parquet_rows(root: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect() as con:
        return {
            table: con.execute(
                f"SELECT count(*), count(DISTINCT id), sum(_xact_id) FROM "
                f"read_parquet('{root}/{table}/**/*.parquet', hive_partitioning=1)"
            ).fetchone()
            for table in ("project_logs", "dataset_records")
        }
