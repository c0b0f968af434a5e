"""`bt-sync demo` runs the whole loop, ending with a dataset curated from the demo logs by `push --sql`."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb as duckdb_module
import pytest

from connector.cli.demo import CURATION_DATASET, CURATION_SQL
from connector.config import WarehouseSettings
from tests.helpers import query, run_cli


@pytest.mark.slow
def test_the_demo_curates_a_dataset_and_syncs_it_back(tmp_path: Path) -> None:
    duckdb, parquet = tmp_path / "demo.duckdb", tmp_path / "demo-parquet"
    # What an earlier demo left: the demo replaces it.
    duckdb_module.connect(str(duckdb)).execute("CREATE TABLE earlier AS SELECT 1 AS x").close()
    (parquet / "project_logs").mkdir(parents=True)
    (parquet / "project_logs" / "stale.parquet").write_bytes(b"stale")
    (tmp_path / "demo-parquet-state" / "staging").mkdir(parents=True)
    done = run_cli("demo", "--duckdb", str(duckdb), "--parquet", str(parquet), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "7. Curate a dataset from the logs (bt-sync push --sql)" in done.stdout
    # The demo's last table: the curated dataset, its records, and how many link back to a span.
    (records, linked) = re.findall(rf"│ {CURATION_DATASET} +│ (\d+) +│ (\d+) +│", done.stdout)[-1]
    demo = WarehouseSettings(duckdb_path=duckdb, parquet_root=str(parquet))
    ((curated,),) = query(demo, f"SELECT count(*) FROM ({CURATION_SQL})")
    assert int(records) == int(linked) == curated > 0
    assert not (parquet / "project_logs" / "stale.parquet").exists()


@pytest.mark.parametrize("given", ["--duckdb", "--parquet", "scratch"])
def test_the_demo_touches_nothing_at_paths_an_earlier_demo_did_not_write(tmp_path: Path, given: str) -> None:
    duckdb, parquet = tmp_path / "demo.duckdb", tmp_path / "demo-parquet"
    mine = {"--duckdb": duckdb, "--parquet": parquet, "scratch": tmp_path / "demo-parquet-state"}[given]
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    done = run_cli("demo", "--duckdb", str(duckdb), "--parquet", str(parquet))
    assert done.returncode == 2 and done.stderr.startswith("bt-sync: error: ")
    assert f"{mine} holds files the demo did not write" in done.stderr
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name]
