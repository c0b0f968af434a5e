"""A full disk, while staging or committing: one line naming the cause, the old state kept, a clean rerun."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

import orjson
import pytest

from connector.config import WarehouseSettings
from connector.emulator import Emulator
from tests.helpers import (
    CLI,
    SmallDisk,
    cli_warehouse_args,
    event_tables,
    fresh_sync_tables,
    limit_file_size,
    one_line,
    query,
    run_cli,
    sync,
    warehouse_in,
)

# Rows take about 150 bytes once written as Parquet: these need twice the small disk.
OVERFLOWING_ROWS = 15_000


@pytest.fixture
def small_disk_mb() -> int:
    """1 MB, not the shared 2: it halves the rows each test generates, syncs, fails on and syncs again."""
    return 1


@pytest.fixture
def busy_project(emulator: Emulator) -> dict[str, str]:
    project = emulator.store.create_project("busy")
    emulator.store.generate_logs(project["id"], OVERFLOWING_ROWS, update_fraction=0.0, rng_seed=3)
    return project


def test_a_full_disk_while_staging_fails_its_object_in_one_line_and_the_rerun_converges(
    emulator: Emulator, busy_project: dict[str, str], small_disk: SmallDisk, tmp_path: Path
) -> None:
    quiet = emulator.store.create_project("quiet")
    emulator.store.insert("project_logs", quiet["id"], [{"id": f"q{n}", "input": n} for n in range(5)])
    settings = warehouse_in(tmp_path).model_copy(update={"state_dir": small_disk.path / "state"})
    env = {"BRAINTRUST_API_KEY": emulator.api_key}
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(settings), "--json", env=env)
    assert done.returncode == 1
    assert "No space left on device" in one_line(done.stderr)
    # The object fails, not the run: it stopped with DuckDB's error alone, no summary, the other
    # objects not tried.
    statuses = {o["name"]: (o["status"], o["error"]) for o in orjson.loads(done.stdout)["objects"]}
    assert statuses["quiet"] == ("synced", None)
    status, error = statuses["busy"]
    assert status == "failed" and error.startswith("cannot stage the rows read in ")
    # DuckDB's error ends with the reason, Python's with the file it was writing (a checkpoint).
    assert "(under --state-dir): " in error and "No space left on device" in error
    small_disk.grow(256)
    assert run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(settings), env=env).returncode == 0
    assert event_tables(settings) == fresh_sync_tables(emulator, tmp_path)


def test_a_full_disk_while_committing_keeps_the_old_state_and_the_rerun_converges(
    emulator: Emulator, small_disk: SmallDisk, tmp_path: Path
) -> None:
    project = emulator.store.create_project("growing")
    emulator.store.generate_logs(project["id"], 500, update_fraction=0.0, rng_seed=4)
    settings: WarehouseSettings = warehouse_in(tmp_path).model_copy(
        update={"parquet_root": str(small_disk.path / "pq")}
    )
    sync(emulator, settings)
    before = event_tables(settings)
    emulator.store.generate_logs(project["id"], OVERFLOWING_ROWS, update_fraction=0.0, rng_seed=5)
    env = {"BRAINTRUST_API_KEY": emulator.api_key}
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(settings), env=env)
    assert done.returncode == 1
    assert "No space left on device" in one_line(done.stderr)
    assert event_tables(settings) == before  # the commit did not happen: readers see the old rows
    # The versions the failed merge wrote are gone at once: the rerun needs the room they took.
    assert unnamed_versions(small_disk.path / "pq") == []
    small_disk.grow(256)
    assert run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(settings), env=env).returncode == 0
    assert query(settings, "SELECT count(*) FROM project_logs")[0][0] == OVERFLOWING_ROWS + 500


def unnamed_versions(root: Path) -> list[str]:
    """Files under the tree's versions that no object's commit record names."""
    unnamed = []
    for record_path in root.glob("*/*=*/_sync_state.json"):
        record = orjson.loads(record_path.read_bytes())
        if not record:
            continue  # a table's empty object, whose file no commit names
        named = {f["version"] for f in record["files"]} | {r["version"] for r in record["retired"]}
        versions = root / "_bt_sync" / record_path.parent.parent.name / record_path.parent.name
        unnamed += [path.name for path in versions.glob("*") if path.name not in named]
    return unnamed


def test_a_full_disk_under_the_views_file_says_how_full_and_leaves_nothing_behind(
    emulator: Emulator, small_disk: SmallDisk, tmp_path: Path
) -> None:
    project = emulator.store.create_project("viewed")
    emulator.store.insert("project_logs", project["id"], [{"id": "a", "input": 1}])
    filler = small_disk.path / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk.path).free - 100_000))
    settings = warehouse_in(tmp_path).model_copy(update={"duckdb_path": small_disk.path / "w.duckdb"})
    env = {"BRAINTRUST_API_KEY": emulator.api_key}
    done = run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(settings), env=env)
    assert done.returncode == 1
    # DuckDB said only that a checkpoint failed as the file was detached.
    said = one_line(done.stderr)
    assert f"cannot write {settings.duckdb_path}: " in said and " bytes free on its disk)" in said
    assert "views_" not in said  # DuckDB's name of the file it attached
    # Its log stayed, and took the room the rerun needed.
    assert [p.name for p in small_disk.path.iterdir()] == ["filler"]
    filler.unlink()
    assert run_cli("sync", "--api-url", emulator.url, *cli_warehouse_args(settings), env=env).returncode == 0


def test_a_stage_over_the_process_s_file_size_limit_names_the_limit(
    emulator: Emulator, tmp_path: Path
) -> None:
    # "cannot stage the rows read in …: Could not write file …: File too large", the cause left to guess.
    project = emulator.store.create_project("limited")
    emulator.store.insert("project_logs", project["id"], [{"id": "first", "input": 1}])
    settings = warehouse_in(tmp_path)
    sync(emulator, settings)
    emulator.store.generate_logs(project["id"], 2_000, update_fraction=0.0, rng_seed=9)
    done = run_cli(
        "sync", "--api-url", emulator.url, *cli_warehouse_args(settings), "--json",
        env={"BRAINTRUST_API_KEY": emulator.api_key}, file_size_limit=64 * 1024,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (failed,) = [o for o in orjson.loads(done.stdout)["objects"] if o["status"] == "failed"]
    assert failed["error"].startswith("cannot stage the rows read in ")
    assert failed["error"].endswith(
        "File too large; this process may write files of at most 65,536 bytes (its file-size limit, "
        "`ulimit -f`)"
    )


# Each of a command's ways of writing stdout: rich's table, a line at a time, a query's result in batches.
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        *(["sql", "--format", form, "SELECT repeat('x', 2000) AS long"] for form in ("table", "csv", "json")),
    ],
    ids=["status", "status-json", "sql-table", "sql-csv", "sql-json"],
)
@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])
def test_output_cut_short_by_the_file_size_limit_fails_the_command(
    emulator: Emulator, tmp_path: Path, command: list[str], unbuffered: str
) -> None:
    # Written to a file under `ulimit -f`, output was cut at the limit, exit 0. Unbuffered (as containers
    # often run Python), stdout's write returned what the system took and the rest was dropped (`status`);
    # buffered, a query's result shorter than the buffer was written at the exit, whose error was ignored.
    project = emulator.store.create_project("wide")
    emulator.store.insert("project_logs", project["id"], [{"id": f"r{n}", "input": n} for n in range(3)])
    settings = warehouse_in(tmp_path)
    sync(emulator, settings)
    limit = 128
    with (tmp_path / "output").open("w") as output:
        done = subprocess.run(
            [*CLI, *command[:1], *cli_warehouse_args(settings)[:4], *command[1:]],
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            preexec_fn=partial(limit_file_size, limit),
        )
    assert done.stderr == (
        "bt-sync: error: cannot write to standard output: File too large; this process may write files of at "
        "most 128 bytes (its file-size limit, `ulimit -f`)\n"
    )
    assert done.returncode == 1
    assert (tmp_path / "output").stat().st_size == limit
