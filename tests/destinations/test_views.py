"""The analysts' DuckDB file: never in a sync's way, readable by DuckDB 1.4 and newer, always current."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from connector.config import WarehouseSettings
from connector.destinations.filesystem import Root
from connector.destinations.parquet_tree import ParquetTree
from connector.destinations.query import run_query
from connector.destinations.views import fingerprint, view_statements
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.errors import ConfigError, WarehouseError
from connector.wiring import open_destination
from schemas.kinds import CATALOG_TABLES, EVENT_STREAMS
from tests.helpers import cli_in_process, cli_warehouse_args, query, run_cli, sync, warehouse_in

# Every table the README documents.
TABLES = [*(s.table for s in EVENT_STREAMS.values()), *(t.table for t in CATALOG_TABLES), "sync_state"]
# A DuckDB of each older release line, in its own venv, kept between runs.
OLD_DUCKDB_VENVS = Path(__file__).resolve().parents[2] / ".venv" / "old-duckdb"
READER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("open", flush=True)
    while sys.stdin.readline().strip() == "query":
        try:
            total, distinct = con.execute(
                "SELECT count(*), count(DISTINCT (project_id, id)) FROM project_logs").fetchone()
            print(f"ok {total} {distinct}", flush=True)
        except Exception as error:
            print("error", str(error).splitlines()[0], flush=True)
    """
)


@pytest.fixture
def project(demo_emulator: Emulator) -> dict[str, str]:
    return demo_emulator.store.list_objects("project", ListQuery())[0]


class HeldSession:
    """Another process holding the DuckDB file open read-only, as a notebook does; answers on demand."""

    def __init__(self, path: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None and self._process.stdout.readline().strip() == "open"

    def ask(self) -> str:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("query\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


@pytest.fixture
def held(demo_emulator: Emulator, warehouse: WarehouseSettings) -> Iterator[HeldSession]:
    sync(demo_emulator, warehouse)
    session = HeldSession(warehouse.duckdb_path)
    yield session
    session.close()


def test_a_filter_on_an_object_skips_the_files_of_the_others_a_join_s_too(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # Read from each file's directory rather than by Hive partitioning, the key filtered no file out
    # when the filter came from a join (`JOIN projects … WHERE p.name = …`): every object's files were read.
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    joined = (
        "SELECT count(*) FROM project_logs AS l JOIN projects AS p ON p.id = l.project_id "
        "WHERE p.name = 'rag-search'"
    )
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:

        def files_read(sql: str) -> int:
            plan = con.execute(f"EXPLAIN ANALYZE {sql}").fetchall()[0][1]
            return sum(int(count) for count in re.findall(r"Total Files Read: (\d+)", plan))

        ((rows,),) = con.execute(joined).fetchall()
        # Fewer, with the projects' file, than all of the table's files.
        assert rows > 0 and files_read(joined) < files_read("SELECT count(*) FROM project_logs")


def test_syncs_never_wait_for_a_session_holding_the_file_and_it_sees_their_rows(
    demo_emulator: Emulator, project: dict[str, str], warehouse: WarehouseSettings, held: HeldSession
) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    for round_ in range(2):
        demo_emulator.store.insert("project_logs", project["id"], [{"id": f"new-{round_}", "input": round_}])
        # Blocked by the session, the sync would give up after --lock-wait and exit 1. It syncs the
        # project whose rows change: a sync meets the file in the same places (opening the destination,
        # committing) whichever objects it syncs, and all seven took 4 s to the one's 1.5 s.
        done = run_cli(
            "sync",
            "--api-url",
            demo_emulator.url,
            *cli_warehouse_args(warehouse),
            "--project",
            project["name"],
            "--lock-wait",
            "10",
            env=env,
        )
        assert done.returncode == 0, done.stderr
        live = demo_emulator.store.live_count("project_logs", project["id"])
        total = query(warehouse, "SELECT count(*) FROM project_logs")[0][0]
        # The held session answers, and sees the new rows: its views read the files as they are now.
        assert held.ask() == f"ok {total} {total}"
        with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as fresh:
            assert fresh.execute(
                "SELECT count(*) FROM project_logs WHERE id = ?", [f"new-{round_}"]
            ).fetchone() == (1,)
        assert (
            live
            + sum(
                demo_emulator.store.live_count("project_logs", p["id"])
                for p in demo_emulator.store.list_objects("project", ListQuery())
                if p["id"] != project["id"]
            )
            == total
        )


def test_queries_never_fail_or_see_a_row_twice_while_syncs_commit(
    demo_emulator: Emulator, project: dict[str, str], warehouse: WarehouseSettings, held: HeldSession
) -> None:
    env = {**os.environ, "BRAINTRUST_API_KEY": demo_emulator.api_key}
    rows = demo_emulator.store.live_rows("project_logs", project["id"])
    for round_ in range(2):
        demo_emulator.store.insert(
            "project_logs",
            project["id"],
            [{"id": row["id"], "_is_merge": True, "tags": [str(round_)]} for row in rows],
        )
        syncing = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "sync", "--api-url", demo_emulator.url,
             *cli_warehouse_args(warehouse), "--full"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        answers = []
        while syncing.poll() is None:
            answers.append(held.ask())
        answers.append(held.ask())
        assert syncing.returncode == 0
        bad = [a for a in answers if not (a.startswith("ok ") and a.split()[1] == a.split()[2])]
        assert answers and not bad, bad


@pytest.mark.parametrize("table", ["project_logs", "projects"])
def test_a_file_with_tables_bt_sync_did_not_make_is_refused_in_one_line(
    demo_emulator: Emulator, warehouse: WarehouseSettings, table: str
) -> None:
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute(f"CREATE TABLE {table} (id INTEGER, note VARCHAR)")
        con.execute(f"INSERT INTO {table} VALUES (1, 'mine')")
    done = run_cli(
        "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse),
        env={"BRAINTRUST_API_KEY": demo_emulator.api_key},
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.count("\n") == 1
        and f"table {table}" in done.stderr
        and "bt-sync did not make" in done.stderr
    )
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
        kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ?", [table])
        assert kind.fetchall() == [("BASE TABLE",)]
        assert con.execute(f"SELECT * FROM {table}").fetchall() == [(1, "mine")]


@pytest.mark.parametrize(
    ("made", "named", "still_there"),
    [
        (
            "CREATE SCHEMA analyst; CREATE TABLE analyst.labels AS SELECT 1 AS hard",
            "base table analyst.labels, schema analyst",
            "SELECT count(*) FROM analyst.labels",
        ),
        (
            "CREATE SCHEMA scratch",
            "schema scratch",
            "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'scratch'",
        ),
        (
            "CREATE MACRO roots(t) AS TABLE SELECT * FROM query_table(t) WHERE is_root",
            "table macro roots",
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'roots'",
        ),
        ("CREATE MACRO plus_one(x) AS x + 1", "macro plus_one", "SELECT plus_one(0)"),
        ("CREATE SEQUENCE label_ids", "sequence label_ids", "SELECT count(*) FROM duckdb_sequences()"),
        ("CREATE TYPE mood AS ENUM ('hard', 'easy')", "type mood", "SELECT count(enum_range(NULL::mood))"),
    ],
)
def test_what_a_session_made_in_the_file_stops_the_sync_that_would_write_it_afresh(
    demo_emulator: Emulator, warehouse: WarehouseSettings, made: str, named: str, still_there: str
) -> None:
    sync(demo_emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute(made)
        # A view commented: the next sync writes the file afresh, to put the view back.
        con.execute("COMMENT ON VIEW project_logs IS 'prod spans'")
    with pytest.raises(WarehouseError, match=f"holds {re.escape(named)}, which bt-sync did not make"):
        sync(demo_emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
        assert con.execute(still_there).fetchone() == (1,)


@pytest.mark.parametrize(
    ("made", "remedy"),
    [
        # A session's own table: the remedy given was to move the whole file away and sync it afresh.
        (
            "CREATE TABLE mine AS SELECT 42 AS x",
            "drop what a session made there, or move it into a DuckDB file of its own (which a session "
            "ATTACHes), or choose another DuckDB file",
        ),
        # A view a session replaced by a table of its name is no file of bt-sync 0.1, whose had no marker.
        (
            "DROP VIEW experiments; CREATE TABLE experiments AS SELECT 42 AS x",
            "drop what a session made there, or move it into a DuckDB file of its own (which a session "
            "ATTACHes), or choose another DuckDB file",
        ),
    ],
)
def test_what_a_session_made_in_the_file_is_told_with_the_remedy_for_it(
    demo_emulator: Emulator, warehouse: WarehouseSettings, made: str, remedy: str
) -> None:
    sync(demo_emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute(made)
    with pytest.raises(WarehouseError) as raised:
        sync(demo_emulator, warehouse)
    assert str(raised.value).endswith(
        "which bt-sync did not make (it keeps only views of the synced tables there, and writes the file "
        f"afresh): {remedy} (--duckdb, or BT_SYNC_DUCKDB)"
    )


def test_a_file_bt_sync_0_1_wrote_is_told_to_be_moved_and_synced_afresh(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # bt-sync 0.1 kept its tables inside the file, and wrote no marker view.
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute("CREATE TABLE project_logs AS SELECT 42 AS x; CREATE TABLE sync_state AS SELECT 1 AS x")
    with pytest.raises(WarehouseError) as raised:
        sync(demo_emulator, warehouse)
    assert str(raised.value).endswith(
        "holds base table project_logs, base table sync_state, which bt-sync did not make (it keeps only "
        "views of the synced tables there, and writes the file afresh): a file written by bt-sync 0.1 "
        "(tables inside the file): move it away and run `bt-sync sync --full`, or choose another DuckDB "
        "file (--duckdb, or BT_SYNC_DUCKDB)"
    )


def test_a_table_a_session_makes_while_the_tree_is_written_stops_the_sync_too(
    demo_emulator: Emulator, warehouse: WarehouseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is looked at before the tree is written, and written from what was found then: a table
    # made in between was lost with the file written afresh (its views were stale: a session's edit).
    sync(demo_emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute("CREATE OR REPLACE VIEW projects AS SELECT 1 AS x")
    writing_the_tree = ParquetTree.prepare

    def meanwhile(tree: ParquetTree) -> None:
        writing_the_tree(tree)
        with duckdb.connect(str(warehouse.duckdb_path)) as con:
            con.execute("CREATE TABLE analyst_notes AS SELECT 42 AS x")

    monkeypatch.setattr(ParquetTree, "prepare", meanwhile)
    with pytest.raises(WarehouseError, match="holds base table analyst_notes, which bt-sync did not make"):
        sync(demo_emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT x FROM analyst_notes").fetchall() == [(42,)]


def test_a_file_held_for_writing_is_left_alone_with_a_warning_and_the_next_sync_makes_its_views(
    demo_emulator: Emulator, project: dict[str, str], warehouse: WarehouseSettings
) -> None:
    path = warehouse.duckdb_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # A notebook's session opened without read_only: it holds the file's write lock until it ends.
    holder = "import sys, duckdb\ncon = duckdb.connect(sys.argv[1])\nprint('open', flush=True)\ninput()"
    writer = subprocess.Popen(
        [sys.executable, "-c", holder, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
    args = (
        "sync",
        "--api-url",
        demo_emulator.url,
        *cli_warehouse_args(warehouse),
        "--project",
        project["name"],
    )
    try:
        done = run_cli(*args, env={"BRAINTRUST_API_KEY": demo_emulator.api_key})
    finally:
        writer.communicate("\n", timeout=30)
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"bt-sync: warning: {path} is open for writing in another process, so its views")
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (0,)

    assert run_cli(*args, env={"BRAINTRUST_API_KEY": demo_emulator.api_key}).returncode == 0
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM project_logs").fetchone() == (
            query(warehouse, "SELECT count(*) FROM project_logs")[0][0],
        )


def test_the_views_follow_a_moved_parquet_root_once_their_file_is_deleted(
    demo_emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    sync(demo_emulator, warehouse)
    shutil.copytree(warehouse.tables_root, tmp_path / "moved")
    moved = warehouse.model_copy(update={"parquet_root": str(tmp_path / "moved")})
    # The file shows the tree it was synced with: another, or a parent of it, is refused...
    for elsewhere in (moved, warehouse.model_copy(update={"parquet_root": str(tmp_path)})):
        with pytest.raises(ConfigError, match="shows the tables of another Parquet root"):
            sync(demo_emulator, elsewhere)
    # ...until the file, which holds only views, is deleted.
    warehouse.duckdb_path.unlink()
    sync(demo_emulator, moved)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
        (sql,) = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'project_logs'").fetchone()
    assert str(tmp_path / "moved") in sql


def old_duckdb(release: str) -> Path:
    """The Python of a venv with DuckDB `release` (e.g. "1.5"), made from PyPI once and kept."""
    venv = OLD_DUCKDB_VENVS / release
    python = venv / "bin" / "python"
    if not python.exists():
        uv = [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(python), f"duckdb=={release}.*"], check=True
        )
    return python


def _declared_types() -> dict[tuple[str, str], str]:
    """(table, column) -> the DuckDB type `schemas.tables` declares, as `information_schema` spells it."""
    spelled = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
    tables = [(s.table, s.columns) for s in EVENT_STREAMS.values()]
    tables += [(t.table, t.columns) for t in CATALOG_TABLES]
    return {
        (table, column.name): spelled.get(column.duckdb_type, column.duckdb_type)
        for table, columns in tables
        for column in columns
    }


def test_every_column_of_the_file_has_the_type_the_tables_declare(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # Before any data (placeholder files only), then after a sync (data files too).
    for step in ("empty", "synced"):
        if step == "synced":
            sync(demo_emulator, warehouse)
        else:
            open_destination(warehouse)
        with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
            actual = {
                (table, column): data_type
                for table, column, data_type in con.execute(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns"
                ).fetchall()
            }
        declared = _declared_types()
        assert {key: actual.get(key) for key in declared} == declared, step


# 1.4.0 and 1.4.1 read a view holding a common table expression in a subquery as naming a table.
@pytest.mark.parametrize("release", ["1.4.0", "1.4", "1.5"])
def test_an_older_duckdb_reads_every_table(
    demo_emulator: Emulator, warehouse: WarehouseSettings, release: str
) -> None:
    sync(demo_emulator, warehouse)
    expected = {table: query(warehouse, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}
    script = textwrap.dedent(
        """
        import json, sys, duckdb
        con = duckdb.connect(sys.argv[1], read_only=True)
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in sys.argv[2:]}
        typed = con.execute(
            "SELECT typeof(input), typeof(scores), typeof(_xact_id) FROM project_logs LIMIT 1"
        ).fetchone()
        print(json.dumps({"version": duckdb.__version__, "counts": counts, "typed": typed}))
        """
    )
    done = subprocess.run(
        [str(old_duckdb(release)), "-c", script, str(warehouse.duckdb_path), *TABLES],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout)
    assert result["version"].startswith(release)
    assert result["counts"] == expected and all(expected[t] > 0 for t in TABLES)
    assert result["typed"] == ["JSON", "MAP(VARCHAR, DOUBLE)", "UBIGINT"]


# The rows a query reads, and the rows the state it reads says the commit holds.
ROWS_AND_STATE = "SELECT (SELECT count(*) FROM project_logs), (SELECT sum(rows)::BIGINT FROM sync_state)"
Counts = tuple[int, int]


def _count_through_bt_sync_sql(warehouse: WarehouseSettings) -> Callable[[], Counts]:
    def count() -> Counts:
        with run_query(warehouse, ROWS_AND_STATE) as result:
            (batch,) = [batch for batch in result.batches() if batch.num_rows]
        return int(batch.column(0)[0].as_py()), int(batch.column(1)[0].as_py())

    return count


def _count_in_the_analysts_file(warehouse: WarehouseSettings) -> Callable[[], Counts]:
    # One session per reader, held across the syncs as a notebook holds it.
    session = duckdb.connect(str(warehouse.duckdb_path), read_only=True)

    def count() -> Counts:
        row = session.execute(ROWS_AND_STATE).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    return count


ADDED_PER_SYNC = 7
# Commits a query must straddle. Each round costs more than the one before (the records name more
# replaced versions, read by every query): views that dropped the replaced versions failed both
# readers in 14 runs of 14 at 8 rounds (6-11 s), and in 3 of 4 at 15 (23-34 s).
SYNC_ROUNDS = 8


@pytest.mark.parametrize("reader", [_count_through_bt_sync_sql, _count_in_the_analysts_file])
def test_a_query_sees_every_row_of_one_commit_while_syncs_commit(
    emulator: Emulator, tmp_path: Path, reader: Callable[[WarehouseSettings], Callable[[], Counts]]
) -> None:
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("busy")["id"]
    rows = 3000
    emulator.store.insert("project_logs", project, [{"id": f"r{i}", "input": i} for i in range(rows)])
    sync(emulator, warehouse)
    counts: list[Counts] = []
    syncing = threading.Event()
    syncing.set()

    def count_while_syncing(count: Callable[[], Counts]) -> None:
        while syncing.is_set():
            counts.append(count())

    readers = [threading.Thread(target=count_while_syncing, args=(reader(warehouse),)) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for round_ in range(SYNC_ROUNDS):  # each rewrites the files holding 20 rows spread over the object
            changed = [{"id": f"r{i}", "_is_merge": True, "output": round_} for i in range(round_, rows, 150)]
            added = [{"id": f"new-{round_}-{i}"} for i in range(ADDED_PER_SYNC)]
            emulator.store.insert("project_logs", project, [*changed, *added])
            sync(emulator, warehouse)
    finally:
        syncing.clear()
        for thread in readers:
            thread.join()
    # A query that ran while a commit landed must not miss the rows of a rewritten file, nor read the
    # state of another commit than the rows'.
    whole_commits = {(n, n) for n in range(rows, rows + (SYNC_ROUNDS + 1) * ADDED_PER_SYNC, ADDED_PER_SYNC)}
    assert counts and set(counts) <= whole_commits, sorted(set(counts) - whole_commits)


def test_a_transaction_sees_the_commits_made_before_it_began(emulator: Emulator, tmp_path: Path) -> None:
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("busy")["id"]
    emulator.store.insert("project_logs", project, [{"id": f"r{i}", "input": i} for i in range(10)])
    sync(emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as session:
        session.execute("BEGIN")
        changes = [{"id": "r0", "_is_merge": True, "output": 0}, {"id": "r10", "input": 10}]
        emulator.store.insert("project_logs", project, changes)
        sync(emulator, warehouse)
        # The sync rewrote the file holding r0 and r10 (the object's only one): the transaction still
        # reads its version from before.
        counts = (
            "SELECT count(*), count(output), (SELECT sum(rows)::BIGINT FROM sync_state) FROM project_logs"
        )
        assert session.execute(counts).fetchone() == (10, 0, 10)
        session.execute("COMMIT")
        assert session.execute(counts).fetchone() == (11, 1, 11)


def test_a_transaction_keeps_sync_state_across_a_sync_that_changed_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Such a sync writes its watermark in place: the state it leaves must still count from the start.
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("quiet")["id"]
    emulator.store.insert("project_logs", project, [{"id": f"r{i}", "input": i} for i in range(10)])
    sync(emulator, warehouse)
    counts = "SELECT count(*), (SELECT sum(rows)::BIGINT FROM sync_state) FROM project_logs"
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as session:
        session.execute("BEGIN")
        (quiet,) = sync(emulator, warehouse).objects
        assert (quiet.inserted, quiet.updated, quiet.bytes_written) == (0, 0, 0)
        assert session.execute(counts).fetchone() == (10, 10)
        session.execute("COMMIT")
        assert session.execute(counts).fetchone() == (10, 10)


def test_a_sync_leaves_a_current_views_file_untouched(emulator: Emulator, tmp_path: Path) -> None:
    # README: syncs never write the analysts' file, unless its views change.
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("p")["id"]
    emulator.store.insert("project_logs", project, [{"id": "r1", "input": 1}])
    sync(emulator, warehouse)
    before = warehouse.duckdb_path.stat()
    emulator.store.insert("project_logs", project, [{"id": "r2", "input": 2}])
    sync(emulator, warehouse)
    after = warehouse.duckdb_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize(
    "change",
    [
        "DROP VIEW prompts",
        # Every version of every row: replaced ones, and those of deleted rows.
        "CREATE OR REPLACE VIEW project_logs AS "
        "SELECT * FROM read_parquet('{root}/_bt_sync/project_logs/*/*.parquet')",
        "COMMENT ON VIEW project_logs IS 'mine'",
        "COMMENT ON COLUMN project_logs.id IS 'mine'",
        # Views reading no file of the tree: every later sync failed, taking the file for another tree's.
        "CREATE OR REPLACE VIEW project_logs AS SELECT 1 AS x",
        "CREATE OR REPLACE VIEW sync_state AS SELECT 1 AS x",
        "CREATE OR REPLACE VIEW prompts AS SELECT * FROM project_logs",
    ],
)
def test_a_sync_restores_a_view_a_session_changed_in_the_file(
    emulator: Emulator, tmp_path: Path, change: str
) -> None:
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("p")["id"]
    emulator.store.insert("project_logs", project, [{"id": "r1", "input": 1}])
    sync(emulator, warehouse)
    emulator.store.insert("project_logs", project, [{"id": "r1", "input": 2}])
    sync(emulator, warehouse)
    shown = (
        "SELECT (SELECT count(*) FROM prompts), (SELECT count(*) FROM project_logs), comment "
        "FROM duckdb_views()"
    )
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as session:
        written = session.execute(f"{shown} WHERE view_name = 'project_logs'").fetchall()
    with duckdb.connect(str(warehouse.duckdb_path)) as session:  # an analyst's session, writing
        session.execute(change.format(root=warehouse.parquet_root))
    # The views were checked against their fingerprint alone: the change stayed, and analysts saw it.
    sync(emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as session:
        assert session.execute(f"{shown} WHERE view_name = 'project_logs'").fetchall() == written
        column = (
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'project_logs' AND column_name = 'id'"
        )
        assert session.execute(column).fetchall() != [("mine",)]


def killed_while_writing(path: Path, statement: str) -> None:
    """A session that writes the DuckDB file `path` (`statement`) and is killed: its write-ahead log stays."""
    # The connection held: closed, it would fold the log into the file.
    code = f"import duckdb, os; c = duckdb.connect({str(path)!r}); c.execute({statement!r}); os._exit(9)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9 and path.with_name(f"{path.name}.wal").exists(), done.stderr


def readable(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as session:
        return session.execute("SELECT count(*) FROM project_logs").fetchall()


def synced_project(emulator: Emulator, tmp_path: Path, rows: int = 0) -> WarehouseSettings:
    """A warehouse under `tmp_path` holding one synced project of `rows` log rows (`r1`, `r2`, …)."""
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("p")["id"]
    if rows:
        emulator.store.insert(
            "project_logs", project, [{"id": f"r{n}", "input": n} for n in range(1, rows + 1)]
        )
    sync(emulator, warehouse)
    return warehouse


def test_a_sync_writing_the_file_afresh_after_a_killed_session_leaves_it_readable(
    emulator: Emulator, tmp_path: Path
) -> None:
    warehouse = synced_project(emulator, tmp_path, rows=1)
    path = warehouse.duckdb_path
    killed_while_writing(path, "DROP VIEW prompts")
    # The view dropped made the sync write the file afresh; the killed session's log, left beside the new
    # file, made it unreadable by every DuckDB and failed every sync after.
    sync(emulator, warehouse)
    assert readable(path) == [(1,)]
    assert not path.with_name(f"{path.name}.wal").exists()
    sync(emulator, warehouse)


def test_a_log_left_where_no_file_is_is_set_aside_and_the_file_written_there_is_readable(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warehouse = synced_project(emulator, tmp_path, rows=1)
    path = warehouse.duckdb_path
    killed_while_writing(path, "CREATE TABLE notes AS SELECT 1 AS n")
    path.rename(tmp_path / "moved.duckdb")  # as an error of bt-sync's advises
    sync(emulator, warehouse)
    assert readable(path) == [(1,)]
    (aside,) = tmp_path.glob(f"{path.name}.wal.*.orphaned")
    assert f"moved to {aside}" in caplog.text
    # Put back beside the file it belongs to, the log gives back what the session wrote.
    aside.rename(tmp_path / "moved.duckdb.wal")
    with duckdb.connect(str(tmp_path / "moved.duckdb"), read_only=True) as session:
        assert session.execute("SELECT n FROM notes").fetchall() == [(1,)]


def test_another_file_s_log_beside_the_file_is_named_in_one_line(emulator: Emulator, tmp_path: Path) -> None:
    warehouse = synced_project(emulator, tmp_path)
    path = warehouse.duckdb_path
    killed_while_writing(tmp_path / "other.duckdb", "CREATE TABLE t AS SELECT 1")
    (tmp_path / "other.duckdb.wal").rename(path.with_name(f"{path.name}.wal"))
    with pytest.raises(WarehouseError) as error:
        sync(emulator, warehouse)
    assert str(error.value) == (
        f"cannot open {path}: its write-ahead log {path}.wal is another file's (a session killed while "
        "writing a file once at this path left it): move the log away"
    )


def test_records_written_before_versions_had_times_are_read_whole(emulator: Emulator, tmp_path: Path) -> None:
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("old")["id"]
    emulator.store.insert("project_logs", project, [{"id": f"r{i}", "input": i} for i in range(10)])
    sync(emulator, warehouse)
    emulator.store.insert("project_logs", project, [{"id": "r1", "_is_merge": True, "output": 1}])
    sync(emulator, warehouse)
    (record_path,) = Path(warehouse.parquet_root).glob(f"project_logs/project_id={project}/_sync_state.json")
    record = json.loads(record_path.read_text())
    assert record["files"] and record["retired"], "a rewrite leaves a current and a replaced version"
    # As bt-sync wrote them before it kept when each version became current.
    for entry in [*record["files"], *record["retired"]]:
        del entry["since"]
    record_path.write_text(json.dumps(record))
    assert query(warehouse, "SELECT count(*), count(output) FROM project_logs") == [(10, 1)]


def test_what_a_killed_write_of_the_file_left_beside_it_is_swept_by_a_later_sync(
    emulator: Emulator, tmp_path: Path
) -> None:
    warehouse = synced_project(emulator, tmp_path)
    path = warehouse.duckdb_path
    left, in_flight = (path.with_name(f".{path.name}.{name}.tmp") for name in ("0badc0de", "5eed1e55"))
    for leftover in (left, left.with_name(f"{left.name}.wal"), in_flight):
        leftover.write_bytes(b"partial")
    long_ago = time.time() - 3600
    for leftover in (left, left.with_name(f"{left.name}.wal")):
        os.utime(leftover, (long_ago, long_ago))
    sync(emulator, warehouse)
    # Another process's write, still young, is left alone.
    assert sorted(p.name for p in path.parent.glob(f".{path.name}.*")) == [in_flight.name]


# `[]`, an empty file and a blank one hold no JSON object to read a row of (nor does a record cut short).
@pytest.mark.parametrize(
    ("damaged", "fault"),
    [
        *[(record, "names no object") for record in ("{}", "null", '{"format_version": 1}', "[]")],
        ("", "is empty"),
        (" \n", "is empty"),
        # It said "names no object", where `status` said the record was no JSON.
        ('{"format_version": 1, "state": {', "is not JSON (cut short or overwritten)"),
        # DuckDB's own error, naming no record: "could not read content of file ... as valid UTF-8".
        (b'{"format_version": 1, "state": {"name": "\xff"}}', "is not JSON (cut short or overwritten)"),
    ],
)
def test_a_commit_record_naming_no_object_fails_every_query_until_its_object_is_rebuilt(
    demo_emulator: Emulator,
    warehouse: WarehouseSettings,
    capfd: pytest.CaptureFixture[str],
    damaged: str | bytes,
    fault: str,
) -> None:
    logs = frozenset({"logs"})  # the objects whose records are damaged and rebuilt, and no other
    sync(demo_emulator, warehouse, kinds=logs)
    counts = "SELECT (SELECT count(*) FROM project_logs), (SELECT count(*) FROM sync_state)"
    expected = query(warehouse, counts)
    record = next(Path(warehouse.parquet_root).glob("project_logs/project_id=*-*/_sync_state.json"))
    # Emptied or overwritten: its object's rows were left out of every query without a word.
    record.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    failure = f"the commit record {record} {fault}: delete its directory, and the next `bt-sync sync`"
    # The command's own line, in this process: the test below sees such a line printed by a new one.
    done = cli_in_process(
        capfd, "sql", *cli_warehouse_args(warehouse)[:4], "SELECT count(*) FROM project_logs"
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"bt-sync: error: {failure}") and done.stderr.count("\n") == 1
    session = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    for table in ("project_logs", "sync_state"):
        with pytest.raises(duckdb.InvalidInputException, match=re.escape(fault)):
            session.execute(f"SELECT count(*) FROM {table}").fetchall()
    session.close()
    shutil.rmtree(record.parent)
    sync(demo_emulator, warehouse, kinds=logs)
    assert query(warehouse, counts) == expected


# Valid JSON, read by the views' `from_json` as NULL where a list of versions belongs (or an entry of it).
@pytest.mark.parametrize("files", ['"x"', '{"name": "part-000000.parquet"}', "7", "[1]", '[{"name": "p"}]'])
def test_a_commit_record_listing_its_files_wrongly_fails_its_table_s_queries_until_its_object_is_rebuilt(
    demo_emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str], files: str
) -> None:
    logs, counts = frozenset({"logs"}), "SELECT count(*) FROM project_logs"
    sync(demo_emulator, warehouse, kinds=logs)
    expected = query(warehouse, counts)
    record = next(Path(warehouse.parquet_root).glob("project_logs/project_id=*-*/_sync_state.json"))
    # Its object's rows were left out of every query without a word; a sync refuses the record.
    record.write_text(json.dumps(json.loads(record.read_text()) | {"files": json.loads(files)}))
    failure = f"the commit record {record} lists its files wrongly: delete its directory, and the next "
    done = cli_in_process(capfd, "sql", *cli_warehouse_args(warehouse)[:4], counts)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"bt-sync: error: {failure}") and done.stderr.count("\n") == 1
    session = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    with pytest.raises(duckdb.InvalidInputException, match="lists its files wrongly"):
        session.execute(counts).fetchall()
    session.close()
    shutil.rmtree(record.parent)
    sync(demo_emulator, warehouse, kinds=logs)
    assert query(warehouse, counts) == expected


def test_a_commit_record_without_its_files_key_reads_as_an_object_without_files(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    logs, counts = frozenset({"logs"}), "SELECT count(*) FROM project_logs"
    sync(demo_emulator, warehouse, kinds=logs)
    (total,) = query(warehouse, counts)[0]
    record = next(Path(warehouse.parquet_root).glob("project_logs/project_id=*-*/_sync_state.json"))
    (object_id,) = [part.split("=")[1] for part in record.parts if part.startswith("project_id=")]
    (rows,) = query(warehouse, f"{counts} WHERE project_id = ?", [object_id])[0]
    # No bt-sync writes one; the record's model (a sync) takes no key for an empty list, and so do the views.
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "files"}))
    assert query(warehouse, counts) == [(total - rows,)]


def test_a_data_file_missing_from_the_tree_fails_every_query_of_its_table_until_the_next_sync(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    expected = query(warehouse, "SELECT count(*) FROM experiment_events")
    # Deleted by hand, or left behind by a partial copy of the tree: its rows were left out unseen.
    versions = Path(warehouse.parquet_root, "_bt_sync", "experiment_events")
    victim = next(versions.glob("experiment_id=*-*/*.parquet"))
    victim.unlink()
    failure = f"a file of the synced tables is missing ({victim}): the next `bt-sync sync` rebuilds its "
    failure += "object"
    session = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    with pytest.raises(duckdb.InvalidInputException) as raised:
        session.execute("SELECT count(*) FROM experiment_events").fetchall()
    assert str(raised.value) == f"Invalid Input Error: {failure}"
    # The other tables read on; a pinned reader, which names every file as it opens, does not open.
    assert session.execute("SELECT count(*) FROM project_logs").fetchall() == query(
        warehouse, "SELECT count(*) FROM project_logs"
    )
    session.close()
    with pytest.raises(WarehouseError) as refused:
        open_destination(warehouse, prepare=False).reader(pinned=True)
    assert str(refused.value) == failure
    sync(demo_emulator, warehouse)
    assert query(warehouse, "SELECT count(*) FROM experiment_events") == expected


def test_a_data_file_whose_footer_is_damaged_is_named_with_its_remedy_by_every_reader(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    expected = query(warehouse, "SELECT count(*) FROM experiment_events")
    victim = next(Path(warehouse.parquet_root, "_bt_sync", "experiment_events").glob("*/*.parquet"))
    data = bytearray(victim.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")  # its length, before the closing magic bytes
    data[-8 - footer : -8] = bytes(b ^ 0x5A for b in data[-8 - footer : -8])
    victim.write_bytes(data)
    # DuckDB's own error names no file.
    failure = f"a file of the synced tables is damaged ({victim}: "
    for pinned in (False, True):
        with pytest.raises(WarehouseError) as refused:
            open_destination(warehouse, prepare=False).reader(pinned=pinned)
        assert str(refused.value).startswith(failure)
        assert str(refused.value).endswith(
            "): delete it, and the next `bt-sync sync` rebuilds its object if the file was current"
        )
    done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], "SELECT count(*) FROM experiment_events")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"bt-sync: error: {failure}") and done.stderr.count("\n") == 1
    victim.unlink()  # as it says
    sync(demo_emulator, warehouse)
    assert query(warehouse, "SELECT count(*) FROM experiment_events") == expected


def test_a_data_file_damaged_in_a_column_s_pages_is_named_by_the_queries_reading_it(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    reading = "SELECT max(length(input::VARCHAR)) FROM experiment_events"
    expected = query(warehouse, reading)
    victim = next(Path(warehouse.parquet_root, "_bt_sync", "experiment_events").glob("*/*.parquet"))
    chunk = next(
        column
        for column in (pq.read_metadata(victim).row_group(0).column(i) for i in range(40))
        if column.path_in_schema == "input"
    )
    data = bytearray(victim.read_bytes())
    start = chunk.data_page_offset
    data[start : start + chunk.total_compressed_size] = bytes(chunk.total_compressed_size)
    victim.write_bytes(data)
    where = cli_warehouse_args(warehouse)[:4]
    # Its footer whole, a query not reading the column runs; one reading it failed naming no file.
    assert run_cli("sql", *where, "SELECT count(*) FROM experiment_events").returncode == 0
    done = run_cli("sql", *where, reading)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"bt-sync: error: a file of the synced tables is damaged ({victim}: ")
    assert done.stderr.count("\n") == 1
    victim.unlink()  # as it says
    sync(demo_emulator, warehouse)
    assert query(warehouse, reading) == expected


def test_a_table_whose_commit_records_are_all_gone_fails_its_queries_rather_than_show_no_rows(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    # Its directory deleted by hand, the schema object's record too: its files under `_bt_sync` remain.
    shutil.rmtree(Path(warehouse.parquet_root, "project_logs"))
    session = duckdb.connect(str(warehouse.duckdb_path), read_only=True)
    with pytest.raises(duckdb.Error, match="No files found that match the pattern"):
        session.execute("SELECT count(*) FROM project_logs").fetchall()
    session.close()
    shutil.rmtree(warehouse.parquet_root)
    done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], "SELECT count(*) FROM project_logs")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("bt-sync: error: no synced tables at ") and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("deleted", "named"),
    [
        ("experiment_events/experiment_id=__schema__", "experiment_events/experiment_id=__schema__"),
        ("prompts", "prompts/data.parquet"),
    ],
)
def test_a_directory_every_sync_writes_deleted_by_hand_is_named_not_taken_for_nothing_synced(
    demo_emulator: Emulator, warehouse: WarehouseSettings, deleted: str, named: str
) -> None:
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    # A directory named `__schema__` looks like junk; every query said nothing was synced, run a sync.
    shutil.rmtree(Path(warehouse.parquet_root, deleted))
    done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], "SELECT count(*) FROM project_logs")
    assert (done.returncode, done.stdout) == (1, "")
    root = warehouse.parquet_root
    assert done.stderr == (
        f"bt-sync: error: the synced tables at {root} lack {root}/{named}, which every sync writes (deleted "
        "by hand, or a first sync stopped before writing it?): the next `bt-sync sync` writes it again\n"
    )
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    assert Path(warehouse.parquet_root, deleted).is_dir()


def test_a_damaged_catalog_file_is_named_with_its_remedy(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # Every query failed with DuckDB's "No magic bytes found at end of file", and no remedy.
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    damaged = Path(warehouse.parquet_root, "project_tags", "data.parquet")
    os.truncate(damaged, 100)
    done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], "SELECT count(*) FROM project_logs")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(
        f"bt-sync: error: a catalog file of the synced tables is damaged ({damaged}: "
    ), done.stderr
    assert done.stderr.endswith("): the next `bt-sync sync` writes it again\n")


@pytest.mark.parametrize("damage", ["deleted", "cut"])
@pytest.mark.parametrize("narrowed", [{"kinds": frozenset({"logs"})}, {"projects": ("support-bot",)}])
def test_a_lost_catalog_file_is_written_again_whole_by_any_sync_with_a_warning(
    demo_emulator: Emulator,
    warehouse: WarehouseSettings,
    caplog: pytest.LogCaptureFixture,
    damage: str,
    narrowed: dict[str, Any],
) -> None:
    # A sync that did not list experiments wrote their file back empty, for good: the table had no row,
    # and `status` called both experiments deleted upstream. A damaged one failed every query.
    sync(demo_emulator, warehouse)
    counts = "SELECT (SELECT count(*) FROM experiments), (SELECT count(*) FROM projects)"
    before = query(warehouse, counts)
    lost = Path(warehouse.parquet_root, "experiments", "data.parquet")
    if damage == "deleted":
        lost.unlink()
    else:
        os.truncate(lost, 100)
    sync(demo_emulator, warehouse, **narrowed)
    assert query(warehouse, counts) == before
    assert before[0][0] == 2
    assert "the warehouse had lost its experiments table: written again from the API" in caplog.text
    caplog.clear()
    sync(demo_emulator, warehouse, **narrowed)  # nothing lost: nothing said
    assert "lost" not in caplog.text


def test_a_lost_catalog_table_the_key_may_not_list_fails_no_sync(
    demo_emulator: Emulator, warehouse: WarehouseSettings, caplog: pytest.LogCaptureFixture
) -> None:
    # Listing it again for every project raised the key's refusal before anything was written: every
    # later sync failed so, the file still missing (the second review's).
    sync(demo_emulator, warehouse)
    demo_emulator.faults.add(FaultRule(kind="status", status=403, route="^/v1/prompt", times=None))
    Path(warehouse.parquet_root, "prompts", "data.parquet").unlink()
    summary = sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    assert summary.objects and all(o.status == "synced" for o in summary.objects)
    assert "Braintrust refused this API key the listing of prompts" in caplog.text
    assert "the table stays empty until a sync that can list it" in caplog.text
    assert query(warehouse, "SELECT count(*) FROM prompts") == [(0,)]


def test_queries_while_syncs_add_objects_never_take_a_new_record_for_a_damaged_one(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    tree = Path(warehouse.parquet_root)
    model = next(tree.glob("experiment_events/experiment_id=*-*/_sync_state.json"))
    record = json.loads(model.read_text())
    stop = threading.Event()

    def add_objects() -> None:
        # As a sync adds one: its directory appears with its record whole.
        while not stop.is_set():
            object_id = f"added-{time.monotonic_ns()}"
            written = tree / f".{object_id}"
            written.mkdir()
            state = {**record["state"], "object_id": object_id}
            (written / "_sync_state.json").write_text(json.dumps({**record, "state": state, "files": []}))
            written.rename(tree / "experiment_events" / f"experiment_id={object_id}")
            time.sleep(0.02)

    adding = threading.Thread(target=add_objects)
    adding.start()
    failures = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                query(warehouse, "SELECT count(*) FROM sync_state, experiment_events")
            except WarehouseError as error:
                failures.append(str(error))
    finally:
        stop.set()
        adding.join()
    # Listed twice (a glob, then the records read), a record added between the two was called damaged.
    assert failures == []


# A sort larger than 100 MB of memory.
SPILLS = "SELECT count(*) FROM (SELECT md5(i::VARCHAR) AS m FROM range(3000000) AS r(i) ORDER BY m)"


def test_a_query_too_large_for_memory_spills_into_the_temporary_directory_not_the_working_one(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = synced_project(emulator, tmp_path)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with open_destination(warehouse, prepare=False).reader() as con:
        con.execute("SET memory_limit = '100MB'")
        assert con.execute(SPILLS).fetchall() == [(3_000_000,)]
        # DuckDB's default, `.tmp` in the working directory, which a scheduled job may not be able to write.
        assert not (tmp_path / "cwd" / ".tmp").exists()
        assert list((tmp_path / "tmp").glob("bt-sync-reader-*/duckdb_temp_*"))
    assert not list((tmp_path / "tmp").iterdir())


# A reader in its own process, spilling as long as it is let run.
_SPILLING_READER = f"""
import sys
from connector.config import WarehouseSettings
from connector.wiring import open_destination
settings = WarehouseSettings(duckdb_path=sys.argv[1], parquet_root=sys.argv[2], state_dir=sys.argv[3])
with open_destination(settings, prepare=False).reader() as con:
    con.execute("SET memory_limit = '100MB'")
    while True:
        con.execute({SPILLS!r})
"""


def test_a_later_reader_sweeps_the_spill_directory_a_killed_one_left(
    emulator: Emulator, tmp_path: Path
) -> None:
    warehouse = synced_project(emulator, tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    places = (str(warehouse.duckdb_path), str(warehouse.parquet_root), str(warehouse.state_dir))
    reader = subprocess.Popen([sys.executable, "-c", _SPILLING_READER, *places], env=env)
    deadline = time.monotonic() + 60
    while not list(temp.glob("bt-sync-reader-*/duckdb_temp_*")) and time.monotonic() < deadline:
        assert reader.poll() is None
        time.sleep(0.05)
    reader.kill()
    reader.wait()
    (left,) = temp.glob("bt-sync-reader-*")
    # A directory of a process still running is kept however old, and the killed one's for an hour: it
    # may be a reader's in another PID namespace sharing the directory.
    running = temp / f"bt-sync-reader-{os.getpid()}-{'0' * 12}"
    running.mkdir()
    an_hour_ago = time.time() - 3660
    os.utime(running, (an_hour_ago, an_hour_ago))
    # The earlier naming holds no PID: such a directory was never swept; now after a day untouched.
    unowned = temp / f"bt-sync-reader-{'a' * 12}"
    unowned.mkdir()
    (unowned / "duckdb_temp_storage_0.tmp").write_bytes(b"spilled")
    _last_written_at(unowned, an_hour_ago)

    def read() -> None:
        done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], "SELECT 1", env={"TMPDIR": str(temp)})
        assert done.returncode == 0, done.stderr

    read()
    assert left.exists() and running.exists()
    # DuckDB writes into its files without touching the directory: an old directory with a file written
    # since is a reader's at work.
    os.utime(left, (an_hour_ago, an_hour_ago))
    read()
    assert left.exists()
    _last_written_at(left, an_hour_ago)
    read()
    assert not left.exists() and running.exists() and unowned.exists()
    _last_written_at(unowned, time.time() - 24 * 3600 - 60)
    read()
    assert not unowned.exists() and running.exists()


def _last_written_at(directory: Path, when: float) -> None:
    """Make `directory` and its files look last written at `when`."""
    for path in (*directory.iterdir(), directory):
        os.utime(path, (when, when))


def test_every_view_and_column_in_the_analysts_file_is_described(emulator: Emulator, tmp_path: Path) -> None:
    warehouse = warehouse_in(tmp_path)
    project = emulator.store.create_project("p")["id"]
    emulator.store.insert("project_logs", project, [{"id": "r1", "input": 1}])
    sync(emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as session:
        views = session.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND (comment IS NULL OR comment = '')"
        ).fetchall()
        columns = session.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal "
            "AND (comment IS NULL OR comment = '')"
        ).fetchall()
        marker = session.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = '_bt_sync'"
        ).fetchall()
    # The marker view was the one left bare.
    assert (views, columns, marker) == ([], [], [(1,)])
    # A file written before: the marker's digest is of the views' statements alone, and it has no comment.
    before = fingerprint(view_statements(Root(str(warehouse.parquet_root))))
    with duckdb.connect(str(warehouse.duckdb_path)) as session:
        (stored,) = session.execute("SELECT stored FROM _bt_sync").fetchall()[0]
        session.execute(
            f"CREATE OR REPLACE VIEW _bt_sync AS SELECT '{before}' AS views, '{stored}' AS stored"
        )
    sync(emulator, warehouse)
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as session:
        described = session.execute(
            "SELECT comment FROM duckdb_views() WHERE view_name = '_bt_sync'"
        ).fetchall()
    assert described[0][0]


def test_a_views_file_that_cannot_be_made_there_says_why_and_not_how_full_the_disk_is(tmp_path: Path) -> None:
    # "(0 bytes free on its disk)" followed a permission's or a missing directory's error (`/proc` has none).
    from connector.destinations.views import check_views_file, ensure_views_file
    from connector.errors import WarehouseError

    path = Path("/proc/bt-sync-views.duckdb")
    with pytest.raises(WarehouseError) as raised:
        ensure_views_file(check_views_file(path), Root(str(tmp_path / "pq")))
    said = str(raised.value)
    assert said.startswith(f"cannot write {path}: ") and "No such file or directory" in said, said
    assert "bytes free" not in said, said


def test_a_views_file_over_the_process_s_file_size_limit_names_the_limit(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The file's write failed with "… (76,944,506,880 bytes free on its disk)": a full disk's words.
    warehouse = warehouse_in(tmp_path)
    done = run_cli(
        "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse),
        env={"BRAINTRUST_API_KEY": emulator.api_key}, file_size_limit=200 * 1024,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.rstrip().endswith(
        "; this process may write files of at most 204,800 bytes (its file-size limit, `ulimit -f`)"
    )
