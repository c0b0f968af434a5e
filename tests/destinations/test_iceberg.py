"""The Iceberg destination: the DuckDB warehouse's tables, merges writing only what changed, maintenance."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.types import StringType

from connector.config import WarehouseSettings
from connector.destinations import iceberg_maintain, iceberg_merge
from connector.destinations.iceberg_catalog import (
    REPLANS,
    ensure_namespace,
    ensure_table,
    open_catalog,
    retry_conflicts,
)
from connector.destinations.iceberg_maintain import UNREFERENCED_GRACE
from connector.destinations.iceberg_merge import READ_THREADS, _read_in_order
from connector.destinations.iceberg_schema import SYNC_STATE_SCHEMA
from connector.emulator import Emulator, ListQuery
from connector.errors import ConfigError, MalformedResponse, TableChanged, WarehouseError
from connector.sync.run import OBJECT_FAILURES
from connector.wiring import open_destination
from tests.helpers import (
    LOGS_REF,
    all_tables,
    cli_in_process,
    cli_warehouse_args,
    event,
    event_tables,
    hourly_change,
    iceberg_in,
    logs_state,
    query,
    run_cli,
    staged,
    sync,
    synced_keys,
    upstream_keys,
)

# An object of this size, changed by 1-2%, must not rewrite more than a tenth of its bytes.
OBJECT_ROWS = 10_000
DOCS = Path(__file__).resolve().parents[2] / "docs" / "iceberg.md"
STATE_COLUMNS = "object_type, object_id, name, project_id, table_name, version, rows"


def iceberg_table(settings: WarehouseSettings, name: str) -> Table:
    """A table as any pyiceberg user opens it: the SQL catalog bt-sync wrote, by its URI."""
    catalog = load_catalog(
        "bt_sync", type="sql", uri=str(settings.iceberg_catalog), warehouse=str(settings.iceberg_warehouse)
    )
    return catalog.load_table((settings.iceberg_namespace, name))


def data_files(settings: WarehouseSettings, table: str) -> dict[str, int]:
    """The data files of a table's current snapshot: path -> bytes."""
    return {
        task.file.file_path: task.file.file_size_in_bytes
        for task in iceberg_table(settings, table).scan().plan_files()
    }


def both_warehouses(settings: WarehouseSettings) -> dict[str, Any]:
    return {
        **all_tables(settings),
        "sync_state": query(settings, f"SELECT {STATE_COLUMNS} FROM sync_state ORDER BY object_id"),
    }


def logs_synced(
    emulator: Emulator,
    settings: WarehouseSettings,
    name: str,
    rows: int,
    *,
    syncs: int = 1,
    kinds: frozenset[str] | None = frozenset({"logs"}),
) -> dict[str, Any]:
    """A new project `name` whose logs gain `rows` rows before each of `syncs` syncs of `kinds` (None:
    every kind) into `settings`; the project."""
    project: dict[str, Any] = emulator.store.create_project(name)
    for _ in range(syncs):
        emulator.store.generate_logs(project["id"], rows, update_fraction=0.0)
        sync(emulator, settings, **({} if kinds is None else {"kinds": kinds}))
    return project


def test_the_iceberg_tables_hold_what_the_duckdb_warehouse_holds_and_the_docs_snippet_reads_them(
    demo_emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    # Where the snippet in docs/iceberg.md looks, relative to its working directory.
    iceberg = iceberg_in(tmp_path, catalog=f"sqlite:///{tmp_path / 'data' / 'iceberg' / 'catalog.db'}")
    (tmp_path / "data" / "iceberg").mkdir(parents=True)
    sync(demo_emulator, iceberg)
    sync(demo_emulator, warehouse)
    expected = both_warehouses(warehouse)
    # Read once: nothing below writes to the tables, and a read of every Iceberg table costs a second.
    held = both_warehouses(iceberg)
    assert held == expected
    logs = iceberg_table(iceberg, "project_logs")
    assert [(f.name, str(f.transform)) for f in logs.spec().fields] == [
        ("project_id", "identity"),
        ("created_day", "day"),
    ]
    assert logs.schema().find_field("input").doc == "The span's input (free-form JSON)."
    # Any engine reading the table sees one row per id.
    rows = logs.scan(selected_fields=("project_id", "id")).to_arrow()
    assert rows.num_rows == len(set(zip(rows["project_id"].to_pylist(), rows["id"].to_pylist(), strict=True)))
    snippet = DOCS.read_text().split("<!-- tested: tests/destinations/test_iceberg.py -->\n```python\n")[1]
    ran = subprocess.run(
        [sys.executable, "-c", snippet.split("```")[0]], cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"{len(expected['project_logs'])} rows\n[('")
    mirrored = iceberg_table(iceberg, "sync_state").scan().to_arrow()
    assert sorted(mirrored["object_id"].to_pylist()) == [r[1] for r in held["sync_state"]]


def test_an_incremental_sync_rewrites_a_small_share_of_the_bytes(emulator: Emulator, tmp_path: Path) -> None:
    iceberg = iceberg_in(tmp_path)
    busy = emulator.store.create_project("busy")
    quiet = emulator.store.create_project("quiet")
    emulator.store.generate_logs(busy["id"], OBJECT_ROWS, update_fraction=0.05, rng_seed=1)
    emulator.store.generate_logs(quiet["id"], 2_000, update_fraction=0.0, rng_seed=1)
    sync(emulator, iceberg, kinds=frozenset({"logs"}))
    before = data_files(iceberg, "project_logs")
    hourly_change(emulator, busy["id"], new_rows=OBJECT_ROWS // 100, updated_rows=OBJECT_ROWS // 200)
    summary = sync(emulator, iceberg, kinds=frozenset({"logs"}))
    after = data_files(iceberg, "project_logs")
    by_name = {o.name: o for o in summary.objects}
    assert by_name["busy"].inserted == OBJECT_ROWS // 100 and by_name["busy"].updated == OBJECT_ROWS // 200
    written = sum(size for path, size in after.items() if path not in before)
    assert by_name["busy"].bytes_written == written
    assert 0 < written <= sum(before.values()) // 10, f"wrote {written:,} of {sum(before.values()):,} bytes"
    assert {p for p in after if quiet["id"] in p} == {p for p in before if quiet["id"] in p}
    assert by_name["quiet"].bytes_written == 0
    assert synced_keys(iceberg) == upstream_keys(emulator)


def test_rows_whose_days_do_not_follow_their_fetch_order_are_written_a_file_a_day(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(iceberg_merge, "file_target_rows", lambda rows: 40)
    iceberg = iceberg_in(tmp_path)
    project = emulator.store.create_project("backfilled")["id"]
    # Logs loaded with their own times, the days in turn: any 40 rows fetched fall on every day.
    days = [{"id": f"r{i}", "input": i, "created": f"2025-03-{1 + i % 20:02d}T12:00:00Z"} for i in range(400)]
    emulator.store.insert("project_logs", project, days)
    sync(emulator, iceberg, kinds=frozenset({"logs"}))
    # Twenty days of twenty rows: a file a day, where a file of each chunk of 40 and day made 200.
    assert len(data_files(iceberg, "project_logs")) == 20
    # A merge rewriting a file of every day writes them so too.
    updates = [{"id": f"r{i}", "_is_merge": True, "output": i} for i in range(0, 400, 9)]
    emulator.store.insert("project_logs", project, updates)
    sync(emulator, iceberg, kinds=frozenset({"logs"}))
    assert len(data_files(iceberg, "project_logs")) == 20
    assert synced_keys(iceberg) == upstream_keys(emulator)
    assert query(iceberg, "SELECT count(*), count(output) FROM project_logs") == [(400, len(updates))]


def test_a_merge_reads_files_in_order_and_never_more_than_its_threads_ahead() -> None:
    # A merge reads every data file of the object (its keys, or whole files to rewrite): files read
    # faster than DuckDB takes them must wait, or a large object's files would pile up in memory.
    started: list[int] = []

    def read(task: Any) -> pa.Table:
        started.append(task)
        return pa.table({"file": [task]})

    taken: list[int] = []
    for table in _read_in_order(read, list(range(4 * READ_THREADS))):
        taken.append(table["file"][0].as_py())
        time.sleep(0.005)  # slower than a read: unbounded reads would all be done by now
        assert len(started) <= len(taken) + READ_THREADS
    assert taken == list(range(4 * READ_THREADS))


def test_reconcile_deletes_what_was_deleted_upstream(demo_emulator: Emulator, tmp_path: Path) -> None:
    iceberg = iceberg_in(tmp_path)
    sync(demo_emulator, iceberg, kinds=frozenset({"logs", "datasets"}))
    project = demo_emulator.store.list_objects("project", ListQuery(name="support-bot"))[0]
    row = demo_emulator.store.live_rows("project_logs", project["id"])[0]
    demo_emulator.store.insert("project_logs", project["id"], [{"id": row["id"], "_object_delete": True}])
    dataset = demo_emulator.store.list_objects("dataset", ListQuery())[0]
    demo_emulator.store.delete("dataset", dataset["id"])
    summary = sync(demo_emulator, iceberg, reconcile=True, kinds=frozenset({"logs", "datasets"}))
    assert f"dataset:{dataset['id']}" in summary.removed_objects
    assert query(iceberg, "SELECT count(*) FROM project_logs WHERE id = ?", [row["id"]]) == [(0,)]
    synced, upstream = synced_keys(iceberg), upstream_keys(demo_emulator)
    assert [synced[t] for t in ("project_logs", "dataset_records")] == [
        upstream[t] for t in ("project_logs", "dataset_records")
    ]
    assert dataset["id"] not in {s.object_id for s in open_destination(iceberg, prepare=False).list_states()}


def test_the_cli_syncs_queries_shows_status_and_maintains_from_the_environment(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    iceberg = iceberg_in(tmp_path)
    env = {
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_DESTINATION": "iceberg",
        "BT_SYNC_ICEBERG_CATALOG": str(iceberg.iceberg_catalog),
        "BT_SYNC_ICEBERG_WAREHOUSE": str(iceberg.iceberg_warehouse),
        "BT_SYNC_STATE_DIR": str(iceberg.state_dir),
    }
    project = emulator.store.create_project("growing")
    emulator.store.generate_logs(project["id"], 300, update_fraction=0.0)
    synced = run_cli("sync", "--api-url", emulator.url, "--objects", "logs", "--json", env=env)
    assert synced.returncode == 0, synced.stderr

    # The other commands in this process, reading the same environment: each new process would first
    # spend 2-3 s importing pyiceberg.
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return cli_in_process(capfd, *args, env=env)

    for _ in range(2):  # each incremental sync adds a small file
        emulator.store.generate_logs(project["id"], 300, update_fraction=0.0)
        sync(emulator, iceberg, kinds=frozenset({"logs"}))
    status = cli("status", "--json")
    assert [(s["name"], s["rows"]) for s in json.loads(status.stdout)] == [("growing", 900)]
    counted = cli("sql", "SELECT count(DISTINCT id) AS n FROM project_logs", "--format", "json")
    assert json.loads(counted.stdout) == [{"n": 900}]
    rows, files_before = event_tables(iceberg), len(data_files(iceberg, "project_logs"))
    age_files(Path(str(iceberg.iceberg_warehouse)), UNREFERENCED_GRACE + timedelta(minutes=1))
    done = cli("maintain", "--retain-hours", "0", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files_compacted"] >= 2 and summary["files_written"] < summary["files_compacted"]
    assert summary["snapshots_expired"] > 0 and summary["files_deleted"] > 0
    assert len(data_files(iceberg, "project_logs")) < files_before
    assert len(iceberg_table(iceberg, "project_logs").snapshots()) == 1
    assert event_tables(iceberg) == rows
    # The object's state counts the files and bytes the compaction left, as `status` and sync_state show.
    files = data_files(iceberg, "project_logs")
    (state,) = json.loads(cli("status", "--json").stdout)
    assert (state["files"], state["bytes"]) == (len(files), sum(files.values()))
    assert query(iceberg, "SELECT files, bytes FROM sync_state") == [(len(files), sum(files.values()))]
    # Every file the table needs is still there: a read of every column of every file succeeds.
    assert iceberg_table(iceberg, "project_logs").scan().to_arrow().num_rows == 900


def age_files(root: Path, age: timedelta) -> None:
    """Make every file under `root` look last modified `age` ago."""
    then = time.time() - age.total_seconds()
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def test_maintain_never_deletes_a_write_in_flight_however_short_the_retention(
    emulator: Emulator, tmp_path: Path
) -> None:
    iceberg = iceberg_in(tmp_path)
    logs_synced(emulator, iceberg, "busy", 100)
    # A sync's data file written and not committed yet: nothing refers to it.
    committed = Path(next(iter(data_files(iceberg, "project_logs"))).removeprefix("file://"))
    in_flight = committed.with_name(f"in-flight-{committed.name}")
    in_flight.write_bytes(committed.read_bytes())
    destination = open_destination(iceberg, prepare=False)
    assert destination.maintain(timedelta(0)).files_deleted == 0
    assert in_flight.exists()
    # Once older than the grace it is a killed writer's leftover, and goes.
    age_files(in_flight.parent, UNREFERENCED_GRACE + timedelta(minutes=1))
    assert destination.maintain(timedelta(0)).files_deleted >= 1
    assert not in_flight.exists() and committed.exists()
    assert iceberg_table(iceberg, "project_logs").scan().to_arrow().num_rows == 100


def test_maintain_keeps_the_files_of_another_catalog_s_tables_in_the_same_warehouse(
    emulator: Emulator, tmp_path: Path
) -> None:
    # A relative `sqlite:///cat.db` used from two directories: two catalogs, one warehouse.
    shared = tmp_path / "shared-warehouse"
    first, second = (iceberg_in(tmp_path, name, warehouse=str(shared)) for name in ("first", "second"))
    project = emulator.store.create_project("twice")
    emulator.store.generate_logs(project["id"], 200, update_fraction=0.0)
    for settings in (first, second):
        sync(emulator, settings, kinds=frozenset({"logs"}))
    rows = event_tables(first)
    assert event_tables(second) == rows
    age_files(shared, UNREFERENCED_GRACE + timedelta(minutes=1))
    for settings in (first, second):
        open_destination(settings, prepare=False).maintain(timedelta(0))
    # Each catalog's maintain took the other's files for its own table's leftovers and deleted them.
    for settings in (first, second):
        assert iceberg_table(settings, "project_logs").scan().to_arrow().num_rows == 200
        assert event_tables(settings) == rows


def test_a_worker_that_lost_the_race_to_create_a_table_leaves_no_directory_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iceberg = iceberg_in(tmp_path)
    winner, loser = (open_catalog(str(iceberg.iceberg_catalog), str(iceberg.iceberg_warehouse)) for _ in "ab")
    ensure_namespace(winner, "braintrust")
    loaded = loser.load_table

    def created_meanwhile(identifier: tuple[str, str]) -> Table:
        # The loser looked before the winner created it, and creates it too.
        monkeypatch.setattr(loser, "load_table", loaded)
        ensure_table(winner, identifier, SYNC_STATE_SCHEMA)
        raise NoSuchTableError(identifier)

    monkeypatch.setattr(loser, "load_table", created_meanwhile)
    table = ensure_table(loser, ("braintrust", "sync_state"), SYNC_STATE_SCHEMA)
    # Each loser left a directory holding a metadata file no table names, which `maintain` never found.
    assert [p.name for p in Path(str(iceberg.iceberg_warehouse), "braintrust").iterdir()] == [
        Path(table.location()).name
    ]


def test_a_warehouse_the_catalog_refuses_is_named_without_its_credentials(tmp_path: Path) -> None:
    settings = iceberg_in(tmp_path).model_copy(
        update={"iceberg_warehouse": "s3://AKIAKEY:s3cr3tpw/x@bucket/p"}
    )
    with pytest.raises(WarehouseError) as refused:
        open_destination(settings)
    assert "AKIAKEY:***" in str(refused.value) and "s3cr3t" not in str(refused.value)


def test_choosing_iceberg_without_its_extra_or_catalog_is_one_clear_line(tmp_path: Path) -> None:
    hidden = (
        "import sys; sys.modules['pyiceberg'] = None; sys.argv = ['bt-sync', *sys.argv[1:]]; "
        "from connector.cli import main; main()"
    )
    without_extra = subprocess.run(
        [sys.executable, "-c", hidden, "status", *cli_warehouse_args(iceberg_in(tmp_path))[:-2]],
        capture_output=True,
        text=True,
    )
    assert without_extra.returncode == 2
    assert without_extra.stderr.strip() == (
        "bt-sync: error: the iceberg destination needs the iceberg extra: pip install 'bt-sync[iceberg]'"
    )
    no_catalog = run_cli("status", "--destination", "iceberg")
    assert no_catalog.returncode == 2 and len(no_catalog.stderr.strip().splitlines()) == 1
    assert "--iceberg-catalog" in no_catalog.stderr
    # `push --sql` takes no such flag (it said to pass it, and refused it): the environment comes first.
    query = ("push", "--sql", "SELECT 1 AS id", "--project", "p", "--dataset", "d", "--dry-run")
    pushed = run_cli(*query, env={"BT_SYNC_DESTINATION": "iceberg"})
    assert pushed.returncode == 2
    assert "needs a catalog: BT_SYNC_ICEBERG_CATALOG (or --iceberg-catalog, for the commands" in pushed.stderr


@pytest.mark.parametrize(
    ("catalog", "says"),
    [
        ("http://catalog:8181", "is a REST catalog's URL: define the catalog in .pyiceberg.yaml"),
        (
            "mysql://bt:pw@db/iceberg",
            "a SQL catalog's database is SQLite (sqlite:///catalog.db) or PostgreSQL",
        ),
        ("lake", "no catalog of that name is configured in .pyiceberg.yaml or PYICEBERG_CATALOG__LAKE__URI"),
        # `sqlite:///$CATALOG` with the variable unset: every sync read everything, kept nothing.
        *(
            (memory, "is a SQLite catalog in memory, which keeps nothing between runs: name its file")
            for memory in (
                "sqlite:///",
                "sqlite://",
                "sqlite:///:memory:",
                "sqlite:///file:c?mode=memory",
                "sqlite:///file::memory:?uri=true",
            )
        ),
    ],
)
def test_a_catalog_bt_sync_cannot_open_says_what_to_give_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog: str, says: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .pyiceberg.yaml here
    monkeypatch.setenv("HOME", str(tmp_path))
    # Given by the environment, as a scheduler does: the message named `--iceberg-catalog`, given nowhere.
    done = run_cli(
        "status", "--destination", "iceberg", "--iceberg-warehouse", "w",
        env={"BT_SYNC_ICEBERG_CATALOG": catalog},
    )  # fmt: skip
    assert done.returncode == 2 and says in done.stderr and "pw" not in done.stderr
    assert "--iceberg-catalog" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_commands_that_only_read_see_a_missing_sqlite_catalog_as_empty_and_leave_no_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    # In a directory yet to be made, as the docs' `sqlite:///data/iceberg/catalog.db` on a fresh machine.
    catalog_file = tmp_path / "data" / "iceberg" / "catalog.db"
    iceberg = iceberg_in(tmp_path, catalog=f"sqlite:///{catalog_file}")
    args = cli_warehouse_args(iceberg)[:-2]  # without --state-dir: these commands stage nothing
    status = run_cli("status", *args, "--json")
    assert (status.returncode, json.loads(status.stdout)) == (0, []), status.stderr
    assert "no object was synced" in status.stderr
    maintained = run_cli("maintain", *args, "--json")
    assert (maintained.returncode, json.loads(maintained.stdout)["tables"]) == (0, 0), maintained.stderr
    queried = run_cli("sql", *args, "SELECT count(*) FROM project_logs")
    assert queried.returncode == 1 and "a sync creates the tables" in queried.stderr
    assert not catalog_file.parent.exists()
    # A catalog a sync has not created the tables in yet (the Dagster sensor's first tick) lists nothing.
    open_catalog(str(iceberg.iceberg_catalog), str(iceberg.iceberg_warehouse))
    assert catalog_file.exists() and open_destination(iceberg, prepare=False).list_states() == []
    emulator.store.generate_logs(emulator.store.create_project("first")["id"], 5, update_fraction=0.0)
    sync(emulator, iceberg, kinds=frozenset({"logs"}))
    assert [s.rows for s in open_destination(iceberg, prepare=False).list_states()] == [5]


def test_a_merge_never_moves_the_watermark_back_below_another_worker_s_commit(tmp_path: Path) -> None:
    destination = open_destination(iceberg_in(tmp_path))

    def merge(name: str, xact: int) -> None:
        destination.merge(
            LOGS_REF,
            staged(tmp_path / name, [event(name, xact)]),
            logs_state(xact),
            delete_missing_up_to=None,
        )

    merge("newer", 20)
    merge("older", 10)  # a worker whose read began earlier commits after it
    committed = destination.read_state(LOGS_REF)
    assert committed is not None and (committed.version, committed.rows) == (20, 2)


@pytest.mark.parametrize(
    ("rows", "newest", "refused"),
    [
        ([2**63 + 5, 2**63 - 1], 2**63 - 1, f"a row's _xact_id ({2**63 + 5})"),
        # The newest version the API reported, whose row was deleted before the read met it.
        ([7], 2**64 - 1, f"the object's newest _xact_id ({2**64 - 1})"),
    ],
)
def test_a_version_beyond_iceberg_s_long_fails_its_object_not_the_run(
    tmp_path: Path, rows: list[int], newest: int, refused: str
) -> None:
    destination = open_destination(iceberg_in(tmp_path))
    # Valid for the API, whose versions are unsigned 64-bit numbers; Iceberg's long is signed.
    parts = staged(tmp_path / "read", [event(f"r{n}", xact) for n, xact in enumerate(rows)])
    state = logs_state(newest)
    with pytest.raises(MalformedResponse) as caught:  # among the failures that fail their object alone
        destination.merge(LOGS_REF, parts, state, delete_missing_up_to=None)
    assert str(caught.value) == (
        f"{refused} is 2**63 or more, beyond what Iceberg's long holds (the DuckDB destination stores it)"
    )
    assert MalformedResponse in OBJECT_FAILURES and destination.read_state(LOGS_REF) is None


def test_a_commit_conflicting_with_other_writers_is_planned_again_up_to_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("connector.destinations.iceberg_catalog.time.sleep", lambda _: None)
    attempts: list[int] = []

    def conflicting(times: int) -> Callable[[], str]:
        def attempt() -> str:
            attempts.append(1)
            if len(attempts) <= times:
                raise CommitFailedException("Requirement failed: branch main has changed")
            return "committed"

        return attempt

    assert retry_conflicts("committing t 'o'", conflicting(REPLANS - 1)) == "committed"
    assert len(attempts) == REPLANS
    attempts.clear()
    with pytest.raises(WarehouseError) as gave_up:
        retry_conflicts("committing t 'o'", conflicting(REPLANS))
    assert len(attempts) == REPLANS
    assert str(gave_up.value) == (
        "committing t 'o': another writer kept committing conflicting changes (Requirement failed: branch "
        "main has changed); run the sync again"
    )


@pytest.mark.parametrize("damaged", ["manifest", "metadata"])
def test_a_damaged_manifest_or_metadata_file_is_one_line_in_every_command(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], damaged: str
) -> None:
    iceberg = iceberg_in(tmp_path)
    logs_synced(emulator, iceberg, "damaged", 50)
    table = iceberg_table(iceberg, "project_logs")
    if damaged == "manifest":
        snapshot = table.current_snapshot()
        assert snapshot is not None
        (manifest,) = {entry.manifest_path for entry in snapshot.manifests(table.io)}
        path = Path(manifest.removeprefix("file://"))
        expected = "cannot read the manifests of the Iceberg table at "
    else:
        path = Path(table.metadata_location.removeprefix("file://"))
        expected = "validation error for TableMetadataWrapper"  # pyiceberg's reason, after bt-sync's words
    path.write_bytes(path.read_bytes()[:200])  # cut short, as by a full disk or a torn copy
    env = {"BRAINTRUST_API_KEY": emulator.api_key}
    # Tracebacks (a UnicodeDecodeError, pydantic's ValidationError) from each, and `--json` printed nothing.
    where = cli_warehouse_args(iceberg)
    commands = [
        ("sync", "--api-url", emulator.url, "--objects", "logs", *where, "--json"),
        ("maintain", *where, "--json"),
        ("sql", "SELECT count(*) FROM project_logs", *where[:-2], "--format", "json"),
    ]
    for command in commands:
        # In this process: the line is the command's own (`main`); a new process would first spend 2-3 s
        # importing pyiceberg. Other tests see such lines printed by a process.
        done = cli_in_process(capfd, *command, env=env)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith("bt-sync: error: ") and done.stderr.count("\n") == 1, done.stderr
        assert expected in done.stderr, (command, done.stderr)
        assert command[0] == "sql" or json.loads(done.stdout), "a --json run prints its document"


def test_an_event_table_dropped_from_the_catalog_is_created_again_and_its_objects_read_whole(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    iceberg = iceberg_in(tmp_path)
    sync(demo_emulator, iceberg)
    expected = both_warehouses(iceberg)
    # The docs' remedy for a damaged table: drop it and sync again.
    catalog = load_catalog(
        "bt_sync", type="sql", uri=str(iceberg.iceberg_catalog), warehouse=str(iceberg.iceberg_warehouse)
    )
    catalog.drop_table((iceberg.iceberg_namespace, "experiment_events"))
    # Every sync failed, of any object: "Table does not exist: braintrust.experiment_events".
    summary = sync(demo_emulator, iceberg)
    reloaded = {o.name: o.mode for o in summary.objects if o.table == "experiment_events"}
    assert reloaded and set(reloaded.values()) == {"full"}
    assert both_warehouses(iceberg) == expected


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("added", "has analyst_note, which bt-sync does not write"),
        ("dropped", "lacks classifications"),
    ],
)
def test_an_event_table_whose_columns_were_changed_by_hand_fails_its_objects_in_one_line(
    demo_emulator: Emulator, tmp_path: Path, change: str, said: str
) -> None:
    iceberg = iceberg_in(tmp_path)
    sync(demo_emulator, iceberg)
    with iceberg_table(iceberg, "project_logs").update_schema(allow_incompatible_changes=True) as update:
        if change == "added":  # an analyst's column: every later sync failed, naming a scratch table
            update.add_column("analyst_note", StringType())
        else:  # a traceback, and no `--json` document
            update.delete_column("classifications")
    project = demo_emulator.store.list_objects("project", ListQuery())[0]
    demo_emulator.store.insert("project_logs", project["id"], [{"id": "new", "input": 1}])
    summary = sync(demo_emulator, iceberg)
    failed = {o.error for o in summary.objects if o.status == "failed"}
    assert {o.table for o in summary.objects if o.status == "failed"} == {"project_logs"}
    assert failed == {
        f"the Iceberg table braintrust.project_logs {said}: its schema was changed outside bt-sync; undo the "
        "change, or drop the table, which the next sync creates again (reading its objects whole)"
    }
    assert all(o.status == "synced" for o in summary.objects if o.table != "project_logs")
    if change == "added":  # read as before: bt-sync's columns are selected
        assert query(iceberg, "SELECT count(*) FROM project_logs WHERE id = 'new'") == [(0,)]
    else:
        with pytest.raises(WarehouseError, match=f"project_logs {said}"):  # `sql`: a binder error, any table
            query(iceberg, "SELECT count(*) FROM experiment_events")
    # The remedy it gives.
    load_catalog(
        "bt_sync", type="sql", uri=str(iceberg.iceberg_catalog), warehouse=str(iceberg.iceberg_warehouse)
    ).drop_table((iceberg.iceberg_namespace, "project_logs"))
    assert not [o for o in sync(demo_emulator, iceberg).objects if o.status != "synced"]
    assert query(iceberg, "SELECT count(*) FROM project_logs WHERE id = 'new'") == [(1,)]


def test_a_column_added_to_sync_state_takes_nulls_and_to_a_catalog_table_stops_the_sync(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    iceberg = iceberg_in(tmp_path)
    sync(demo_emulator, iceberg)
    # `sync_state`, rewritten from the objects' states, takes it: as before the check.
    with iceberg_table(iceberg, "sync_state").update_schema() as update:
        update.add_column("analyst_note", StringType())
    assert all(o.status == "synced" for o in sync(demo_emulator, iceberg).objects)
    assert query(iceberg, "SELECT count(*) > 0 FROM sync_state") == [(True,)]
    # A catalog table's rows cannot be written with it (pyiceberg's traceback once they changed): the
    # sync stops in one line, its remedy naming no objects to read again.
    with iceberg_table(iceberg, "datasets").update_schema() as update:
        update.add_column("analyst_note", StringType())
    demo_emulator.store.create_dataset(
        demo_emulator.store.list_objects("project", ListQuery())[0]["id"], "new"
    )
    with pytest.raises(TableChanged) as caught:
        sync(demo_emulator, iceberg)
    assert str(caught.value) == (
        "the Iceberg table braintrust.datasets has analyst_note, which bt-sync does not write: its schema "
        "was changed outside bt-sync; undo the change, or drop the table, which the next sync creates again"
    )


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_a_data_file_deleted_or_damaged_is_named_and_its_object_rebuilt_by_the_next_sync(
    emulator: Emulator, tmp_path: Path, damage: str
) -> None:
    iceberg, logs = iceberg_in(tmp_path), frozenset({"logs"})
    damaged, other = (emulator.store.create_project(name) for name in ("damaged", "other"))
    for project in (damaged, other):
        emulator.store.generate_logs(project["id"], 300, update_fraction=0.0, rng_seed=4)
    sync(emulator, iceberg, kinds=logs)
    (path, *_) = (p for p in data_files(iceberg, "project_logs") if f"project_id={damaged['id']}/" in p)
    victim = Path(path.removeprefix("file://"))
    if damage == "deleted":
        victim.unlink()
        # Was pyarrow's bare path, and a Dagster materialization retried it as if it could mend itself.
        with pytest.raises(WarehouseError, match=r"^a data file of the tables is missing \(.*\): the next "):
            open_destination(iceberg, prepare=False).reader()
    else:
        victim.write_bytes(victim.read_bytes()[:100])  # was a traceback, and the run's end
    for project in (damaged, other):
        emulator.store.generate_logs(project["id"], 10, update_fraction=0.5, rng_seed=5)
    summary = sync(emulator, iceberg, kinds=logs)
    assert {o.name: (o.status, o.mode) for o in summary.objects} == {
        "damaged": ("synced", "full"),
        "other": ("synced", "incremental"),
    }
    reference = iceberg_in(tmp_path, "reference")
    sync(emulator, reference, kinds=logs)
    assert event_tables(iceberg) == event_tables(reference)


def test_a_reader_s_states_are_those_of_the_snapshots_it_views(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iceberg = iceberg_in(tmp_path)
    logs_synced(emulator, iceberg, "viewed", 20)
    destination = open_destination(iceberg, prepare=False)
    loaded: list[str] = []
    real_table = type(destination)._table

    def counted(self: Any, name: str) -> Table:
        loaded.append(name)
        return real_table(self, name)

    monkeypatch.setattr(type(destination), "_table", counted)
    with destination.reader() as connection:
        assert connection.execute("SELECT rows FROM sync_state").fetchall() == [(20,)]
    # Each table loaded once: the states were read from the event tables loaded again, where a sync
    # committing in between paired the rows of one snapshot with the state of the next (the
    # `rows_match_sync_state` check then failed on a healthy warehouse).
    assert sorted(loaded) == sorted(set(loaded))


def test_a_warehouse_other_than_the_one_the_tables_live_in_is_refused_before_anything_is_written(
    emulator: Emulator, tmp_path: Path
) -> None:
    first = iceberg_in(tmp_path)
    project = logs_synced(emulator, first, "moved", 50)
    # The same catalog, a new warehouse (a move to object storage, say): the sync went on writing to the
    # first one without a word, and `maintain` cleaned it.
    moved = first.model_copy(update={"iceberg_warehouse": str(tmp_path / "elsewhere")})
    emulator.store.generate_logs(project["id"], 50, update_fraction=0.0)
    lives_in = (
        f"the tables of namespace braintrust in {first.iceberg_catalog} live in {first.iceberg_warehouse}, "
        "not under the warehouse given,"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(lives_in)}"):
        sync(emulator, moved, kinds=frozenset({"logs"}))
    with pytest.raises(ConfigError, match=f"^{re.escape(lives_in)}"):
        open_destination(moved, prepare=False).maintain(timedelta(0))
    assert len(event_tables(first)["project_logs"]) == 50 and not (tmp_path / "elsewhere").exists()
    # The same warehouse spelt otherwise (a trailing slash, a link to it) is the same warehouse.
    sync(emulator, first.model_copy(update={"iceberg_warehouse": f"{first.iceberg_warehouse}/"}))
    assert len(event_tables(first)["project_logs"]) == 100
    (tmp_path / "link").symlink_to(str(first.iceberg_warehouse))
    emulator.store.generate_logs(project["id"], 50, update_fraction=0.0)
    sync(emulator, first.model_copy(update={"iceberg_warehouse": str(tmp_path / "link")}))
    assert len(event_tables(first)["project_logs"]) == 150


def test_maintain_keeps_the_statistics_another_engine_wrote_and_the_snapshots_its_tags_name(
    emulator: Emulator, tmp_path: Path
) -> None:
    from pyiceberg.table.statistics import BlobMetadata, StatisticsFile

    iceberg = iceberg_in(tmp_path)
    project = logs_synced(emulator, iceberg, "analyzed", 100)
    table = iceberg_table(iceberg, "project_logs")
    tagged = table.current_snapshot()
    assert tagged is not None
    # Trino's ANALYZE or Spark writes a statistics file, which the table's metadata names.
    stats = Path(table.location().removeprefix("file://")) / "metadata" / f"{tagged.snapshot_id}-stats.puffin"
    stats.write_bytes(b"PFA1" + bytes(100) + b"PFA1")
    blob = BlobMetadata(
        type="apache-datasketches-theta-v1",
        snapshot_id=tagged.snapshot_id,
        sequence_number=tagged.sequence_number,
        fields=[1],
        properties={},
    )
    with table.update_statistics() as update:
        update.set_statistics(
            StatisticsFile(
                snapshot_id=tagged.snapshot_id,
                statistics_path=str(stats),
                file_size_in_bytes=108,
                file_footer_size_in_bytes=20,
                blob_metadata=[blob],
            )
        )
    # A tag, for an audit: pyiceberg refuses to expire its snapshot.
    iceberg_table(iceberg, "project_logs").manage_snapshots().create_tag(tagged.snapshot_id, "audit").commit()
    emulator.store.generate_logs(project["id"], 100, update_fraction=0.0)
    sync(emulator, iceberg, kinds=frozenset({"logs"}))
    age_files(Path(str(iceberg.iceberg_warehouse)), UNREFERENCED_GRACE + timedelta(minutes=1))
    # The statistics file was deleted as unreferenced; the tag failed maintain with a traceback, every
    # table after it unmaintained.
    summary = open_destination(iceberg, prepare=False).maintain(timedelta(0))
    assert summary.snapshots_expired > 0
    assert stats.exists()
    table = iceberg_table(iceberg, "project_logs")
    assert tagged.snapshot_id in {snapshot.snapshot_id for snapshot in table.snapshots()}
    assert table.scan(snapshot_id=tagged.snapshot_id).to_arrow().num_rows == 100
    assert table.scan().to_arrow().num_rows == 200


def test_snapshots_another_maintain_expired_meanwhile_fail_nothing(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iceberg = iceberg_in(tmp_path)
    logs_synced(emulator, iceberg, "twice", 20, syncs=3, kinds=frozenset({"logs"}))
    real_expire = iceberg_maintain._expire
    raced: list[str] = []

    def raced_by_another_maintain(table: Table, horizon: datetime) -> int:
        if not raced and len(table.snapshots()) > 1:
            # As this one plans, another `maintain` (the schedule's, say) expires the same snapshots.
            raced.append(table.name()[-1])
            real_expire(iceberg_table(iceberg, raced[0]), horizon)
        return real_expire(table, horizon)

    monkeypatch.setattr(iceberg_maintain, "_expire", raced_by_another_maintain)
    # It failed that table, in pyiceberg's words: "Snapshot with snapshot id … does not exist: [Snapshot(…".
    open_destination(iceberg, prepare=False).maintain(timedelta(0))
    assert raced and len(iceberg_table(iceberg, raced[0]).snapshots()) == 1


def test_a_table_whose_maintenance_fails_leaves_the_others_maintained_and_is_named(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iceberg = iceberg_in(tmp_path)
    logs_synced(emulator, iceberg, "half", 50, syncs=2, kinds=None)
    real_expire = iceberg_maintain._expire

    def failing_on_project_logs(table: Table, horizon: datetime) -> int:
        if table.name()[-1] == "project_logs":
            raise ValueError("Snapshot with ID 1 is protected and cannot be expired.")
        return real_expire(table, horizon)

    monkeypatch.setattr(iceberg_maintain, "_expire", failing_on_project_logs)
    # The first table's failure was a traceback, and the tables after it went unmaintained.
    with pytest.raises(WarehouseError) as failed:
        open_destination(iceberg, prepare=False).maintain(timedelta(0))
    assert re.search(
        r"^1 of 11 tables of iceberg catalog .* not maintained \(the others were: \d+ snapshots expired, "
        r"0 small files merged, \d+ files deleted\): project_logs: Snapshot with ID 1 is protected",
        str(failed.value),
    )
    # The tables after it (`project_logs` is the first) were maintained.
    assert len(iceberg_table(iceberg, "projects").snapshots()) == 1
    assert len(iceberg_table(iceberg, "project_logs").snapshots()) > 1


def test_a_table_whose_metadata_is_damaged_leaves_the_others_maintained(
    emulator: Emulator, tmp_path: Path
) -> None:
    iceberg = iceberg_in(tmp_path)
    logs_synced(emulator, iceberg, "damaged", 20, syncs=2, kinds=None)
    Path(iceberg_table(iceberg, "prompts").metadata_location.removeprefix("file://")).write_text("{")
    # Its load failed before any table was maintained.
    with pytest.raises(WarehouseError, match=r"^1 of 11 tables of .* not maintained .*: prompts: "):
        open_destination(iceberg, prepare=False).maintain(timedelta(0))
    assert len(iceberg_table(iceberg, "projects").snapshots()) == 1
