"""Incremental sync into DuckDB and Parquet, against the real emulator."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from connector.emulator import Emulator
from tests.support import EVENT_TABLES, all_tables, sync, table_rows


def live_ids(emulator: Emulator, object_type: str, object_id: str) -> set[str]:
    return {row["id"] for row in emulator.store.live_rows(object_type, object_id)}


@pytest.fixture
def project(emulator: Emulator) -> dict:
    project = emulator.store.create_project("sync-tests")
    emulator.store.insert(
        "project_logs",
        project["id"],
        [
            {
                "id": f"log-{i}",
                "input": {"q": i},
                "output": f"a{i}",
                "scores": {"acc": i / 100},
                "metadata": {"model": "m1"},
                "metrics": {"prompt_tokens": i, "completion_tokens": 2 * i},
                "tags": ["t"],
                "root_span_id": f"trace-{i // 3}",
                "span_id": f"span-{i}",
            }
            for i in range(60)
        ],
    )
    return project


def test_full_then_incremental_equals_fresh_full_sync(
    emulator: Emulator, project: dict, tmp_path: Path
) -> None:
    first = sync(emulator, tmp_path / "a.duckdb")
    assert first.objects[0].rows == 60
    emulator.store.insert(
        "project_logs", project["id"], [{"id": "log-5", "_is_merge": True, "output": "changed"}]
    )
    emulator.store.insert("project_logs", project["id"], [{"id": "log-new", "input": "fresh"}])
    dataset = emulator.store.create_dataset(project["id"], "ds")
    emulator.store.insert("dataset", dataset["id"], [{"id": "r1", "input": 1, "expected": 2}])
    second = sync(emulator, tmp_path / "a.duckdb")
    logs = next(o for o in second.objects if o.table == "project_logs")
    assert (logs.mode, logs.inserted, logs.updated) == ("incremental", 1, 1)
    sync(emulator, tmp_path / "b.duckdb", full=True)
    assert all_tables(tmp_path / "a.duckdb") == all_tables(tmp_path / "b.duckdb")
    with duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True) as con:
        assert con.execute("SELECT output FROM project_logs WHERE id = 'log-5'").fetchone() == ('"changed"',)


def test_update_of_an_old_row_lands(emulator: Emulator, project: dict, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    sync(emulator, db)
    emulator.store.insert(
        "project_logs", project["id"], [{"id": "log-0", "_is_merge": True, "scores": {"acc": 0.99}}]
    )
    sync(emulator, db)
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(
            "SELECT scores['acc'], output, count(*) OVER () FROM project_logs WHERE id = 'log-0'"
        ).fetchone()
    assert row == (0.99, '"a0"', 1)


def test_same_id_in_two_datasets_stays_two_rows(emulator: Emulator, project: dict, tmp_path: Path) -> None:
    first = emulator.store.create_dataset(project["id"], "first")
    second = emulator.store.create_dataset(project["id"], "second")
    emulator.store.insert("dataset", first["id"], [{"id": "shared", "input": "from first"}])
    emulator.store.insert("dataset", second["id"], [{"id": "shared", "input": "from second"}])
    db = tmp_path / "w.duckdb"
    sync(emulator, db)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT dataset_id, input FROM dataset_records WHERE id = 'shared' ORDER BY input"
        ).fetchall()
    assert rows == [(first["id"], '"from first"'), (second["id"], '"from second"')]


def test_xact_ids_of_different_digit_lengths_compare_numerically(tmp_path: Path) -> None:
    # ids 999999990 .. 1000000005 cross from 9 to 10 digits: as strings "999999999" > "1000000000".
    with Emulator(seed="empty", xact_start=999_999_990) as emulator:
        project = emulator.store.create_project("digits")
        for version in range(12):
            emulator.store.insert("project_logs", project["id"], [{"id": "row", "output": version}])
        db = tmp_path / "w.duckdb"
        sync(emulator, db)
        emulator.store.insert("project_logs", project["id"], [{"id": "row", "output": "latest"}])
        sync(emulator, db)
    with duckdb.connect(str(db), read_only=True) as con:
        output, xact = con.execute("SELECT output, _xact_id FROM project_logs").fetchone()
    assert output == '"latest"'
    assert xact >= 1_000_000_000


def test_reconcile_removes_rows_and_objects_deleted_upstream(
    emulator: Emulator, project: dict, tmp_path: Path
) -> None:
    dataset = emulator.store.create_dataset(project["id"], "to-delete")
    emulator.store.insert("dataset", dataset["id"], [{"id": "d1", "input": 1}])
    db = tmp_path / "w.duckdb"
    sync(emulator, db, parquet=tmp_path / "pq")
    emulator.store.insert("project_logs", project["id"], [{"id": "log-7", "_object_delete": True}])
    emulator.store.delete("dataset", dataset["id"])
    incremental = sync(emulator, db, parquet=tmp_path / "pq")
    assert sum(o.deleted for o in incremental.objects) == 0  # fetch never reports deletes
    reconciled = sync(emulator, db, parquet=tmp_path / "pq", reconcile=True)
    assert reconciled.removed_objects == [f"dataset:{dataset['id']}"]
    rows = table_rows(db, "project_logs")
    assert {row[0] for row in rows} == live_ids(emulator, "project_logs", project["id"])
    assert table_rows(db, "dataset_records") == []
    assert not (tmp_path / "pq" / "dataset_records" / f"dataset_id={dataset['id']}").exists()


def test_parquet_and_duckdb_agree(demo_emulator: Emulator, tmp_path: Path) -> None:
    db, parquet = tmp_path / "w.duckdb", tmp_path / "pq"
    sync(demo_emulator, db, parquet=parquet)
    with duckdb.connect(str(db), read_only=True) as con:
        for table, key in EVENT_TABLES.items():
            columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall() if c[0] != "_synced_at"]
            listing = ", ".join(f'"{c}"::VARCHAR' for c in columns)
            from_table = con.execute(f"SELECT {listing} FROM {table} ORDER BY {key}, id").fetchall()
            from_files = con.execute(
                f"SELECT {listing} FROM read_parquet('{parquet}/{table}/**/*.parquet', hive_partitioning=1) "
                f"ORDER BY {key}, id"
            ).fetchall()
            assert from_table and from_files == from_table, table


def test_incremental_after_one_percent_change_fetches_about_one_percent(
    emulator: Emulator, tmp_path: Path
) -> None:
    project = emulator.store.create_project("big")
    emulator.store.generate_logs(project["id"], 5_000, update_fraction=0.0, rng_seed=1)
    db = tmp_path / "w.duckdb"
    full = sync(emulator, db)
    assert full.rows_fetched == 5_000
    changed = [
        {"id": row["id"], "_is_merge": True, "metadata": {"touched": True}}
        for row in emulator.store.live_rows("project_logs", project["id"])[:50]
    ]
    emulator.store.insert("project_logs", project["id"], changed)
    emulator.stats.reset()
    incremental = sync(emulator, db)
    assert incremental.objects[0].updated == 50
    # Pages are whole traces (1-20 spans here): the pin's one-trace page and the last page's overshoot
    # into already-synced traces add a few traces to the 50 changed rows - about 1-3% of the 5,000 rows
    # served, never the whole history.
    served = sum(emulator.stats.rows_served.values())
    assert 50 <= incremental.rows_fetched <= served <= 150
