"""`bt-sync demo` runs the whole loop, ending with a dataset curated from the demo logs by `push --sql`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.cli.demo import CURATION_DATASET, CURATION_SQL
from connector.config import WarehouseSettings
from tests.helpers import query, run_cli


@pytest.mark.slow
def test_the_demo_curates_a_dataset_and_syncs_it_back(tmp_path: Path) -> None:
    duckdb, parquet = tmp_path / "demo.duckdb", tmp_path / "demo-parquet"
    done = run_cli("demo", "--duckdb", str(duckdb), "--parquet", str(parquet), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "7. Curate a dataset from the logs (bt-sync push --sql)" in done.stdout
    # The demo's last table: the curated dataset, its records, and how many link back to a span.
    (records, linked) = re.findall(rf"│ {CURATION_DATASET} +│ (\d+) +│ (\d+) +│", done.stdout)[-1]
    demo = WarehouseSettings(duckdb_path=duckdb, parquet_root=str(parquet))
    ((curated,),) = query(demo, f"SELECT count(*) FROM ({CURATION_SQL})")
    assert int(records) == int(linked) == curated > 0
