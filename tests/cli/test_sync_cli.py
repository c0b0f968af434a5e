"""`bt-sync sync`, `status` and `sql` as users and schedulers run them: summaries, exits, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from connector.cli.app import PIPE_WIDTH
from connector.config import WarehouseSettings
from connector.destinations.parquet_tree import ParquetTree
from connector.emulator import Emulator, FaultRule, ListQuery
from tests.helpers import (
    CLI,
    cli_env,
    cli_in_process,
    cli_warehouse_args,
    free_port,
    iceberg_in,
    one_line,
    query,
    run_cli,
    sync,
    warehouse_in,
)

# Runs the command line, then prints, last on stderr, how long DuckDB's allocator keeps freed pages.
ALLOCATOR_PROBE = """
import atexit, ctypes, sys

def decay() -> None:
    import _duckdb
    allocator, value = ctypes.CDLL(_duckdb.__file__), ctypes.c_ssize_t()
    size = ctypes.c_size_t(ctypes.sizeof(value))
    allocator.duckdb_je_mallctl(b"opt.dirty_decay_ms", ctypes.byref(value), ctypes.byref(size), None, 0)
    print(value.value, file=sys.stderr)

atexit.register(decay)
from connector.cli import main
main()
"""


def test_json_summary_status_and_sql(
    demo_emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    done = run_cli("sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["catalog"]["projects"] == 3 and len(summary["objects"]) == 7
    status = run_cli("status", *cli_warehouse_args(warehouse)[:4], "--json")
    states = json.loads(status.stdout)
    assert status.returncode == 0 and {s["name"] for s in states} >= {"support-bot", "support-bot/baseline"}
    assert all(s["version"] and s["rows"] for s in states)
    counted = run_cli(
        "sql",
        *cli_warehouse_args(warehouse)[:4],
        "SELECT count(*) AS n FROM experiment_events",
        "--format",
        "json",
    )
    assert json.loads(counted.stdout) == [{"n": 138}]
    csv = run_cli(
        "sql",
        *cli_warehouse_args(warehouse)[:4],
        "SELECT id, scores FROM experiment_events ORDER BY id LIMIT 2",
    )
    assert csv.returncode == 0 and csv.stdout.splitlines()[0] == "id,scores"
    where = cli_warehouse_args(warehouse)[:4]

    # How values are shown, and what a query may read: the command's own doing, seen in this process
    # (the four commands above are new processes; each more would cost 0.6 s of imports).
    def sql(*args: str) -> subprocess.CompletedProcess[str]:
        return cli_in_process(capfd, "sql", *args)

    # Times DuckDB holds and Python cannot, late in a result: shown as DuckDB's text for them, in every
    # format. They stopped the output there, with a one-line error, after 20,000 rows had been written.
    late = (
        "SELECT i, CASE i WHEN 20000 THEN TIMESTAMPTZ '0001-01-01 00:00:00+00' - INTERVAL 1 DAY "
        "WHEN 20001 THEN 'infinity' ELSE TIMESTAMPTZ '2024-01-01 00:00:00+00' END AS t, "
        "CASE WHEN i = 20002 THEN DATE '12000-01-01' END AS d FROM range(20003) AS r(i) ORDER BY i"
    )
    shown = {
        "table": "more rows (use --format csv or json for every row)\n",  # the table shows the first rows
        "csv": (
            "20000,0001-12-31 (BC) 00:00:00+00,\n20001,infinity,\n"
            "20002,2024-01-01 00:00:00+00:00,12000-01-01\n"
        ),
        "json": '{"i":20002,"t":"2024-01-01T00:00:00+00:00","d":"12000-01-01"}\n]\n',
    }
    for output, tail in shown.items():
        done = sql(*where, late, "--format", output)
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.endswith(tail)
    # Nanoseconds, which Python's `datetime` drops (a traceback), as DuckDB writes them.
    nanoseconds = "SELECT '2020-01-01 01:02:03.123456789'::TIMESTAMP_NS AS t"
    done = sql(*where, nanoseconds, "--format", "csv")
    assert (done.returncode, done.stdout, done.stderr) == (0, "t\n2020-01-01 01:02:03.123456789\n", "")
    # Integers and times as Python writes them (a fraction of zero left out, UTC as +00:00), though CSV
    # writes them in Arrow: the text of a whole result's 200,000 rows took 10.6 s through Python, 3.6 s so.
    scalars = (
        "SELECT TIMESTAMPTZ '2024-01-01 12:00:00+00' AS whole, "
        "TIMESTAMPTZ '2024-01-01 12:00:00.5+00' AS half, TIMESTAMP '0999-12-31 23:59:59' AS early, "
        "18446744073709551615::UBIGINT AS big, -5::TINYINT AS small, NULL::BIGINT AS none, "
        "'infinity'::TIMESTAMPTZ AS forever, 2.0 AS two"
    )
    done = sql(*where, scalars, "--format", "csv")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "whole,half,early,big,small,none,forever,two\n"
        "2024-01-01 12:00:00+00:00,2024-01-01 12:00:00.500000+00:00,0999-12-31 23:59:59,"
        "18446744073709551615,-5,,infinity,2.0\n"
    )
    # And in JSON as orjson writes them, with text that needs escapes beside text that does not.
    done = sql(
        *where, f"{scalars}, true AS yes, 'plain' AS t, chr(1) || '\"\\' AS escaped", "--format", "json"
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        '[\n{"whole":"2024-01-01T12:00:00+00:00","half":"2024-01-01T12:00:00.500000+00:00",'
        '"early":"0999-12-31T23:59:59","big":18446744073709551615,"small":-5,"none":null,'
        '"forever":"infinity","two":2.0,"yes":true,"t":"plain","escaped":"\\u0001\\"\\\\"}\n]\n'
    )
    # In a list, such times stop the query with one line.
    early = "TIMESTAMPTZ '0001-01-01 00:00:00+00' - INTERVAL 1 DAY"
    for value in (early, "TIMESTAMP_NS '2020-01-01 00:00:00.123456789'"):
        done = sql(*where, f"SELECT [{value}] AS t", "--format", "json")
        # Failed at its first row: no `[` left on stdout, which is no JSON.
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr.startswith("bt-sync: error: a value of the result cannot be shown (")
        assert done.stderr.endswith("): cast it to VARCHAR in the query\n") and "pandas" not in done.stderr
    # Lists or structs nested deeper than Arrow takes (64 levels): one line naming the cure, which works.
    deep_list: object = 1
    deep_struct: object = 1
    for _ in range(70):
        deep_list, deep_struct = [deep_list], {"a": deep_struct}
    deep = {"[" * 70 + "1" + "]" * 70: deep_list, "{'a': " * 70 + "1" + "}" * 70: deep_struct}
    for sql_value, value in deep.items():
        args = (*where, "--format", "json")
        done = sql(f"SELECT {sql_value} AS x", *args)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr.startswith("bt-sync: error: the result cannot be read (")
        assert done.stderr.endswith("): cast the deeply nested column to JSON in the query\n")
        cured = sql(f"SELECT {sql_value}::JSON AS x", *args)
        assert (cured.returncode, cured.stderr) == (0, ""), cured.stderr
        assert json.loads(cured.stdout) == [{"x": value}]
    # Read-only over the tables' files, and no other file of the machine; the tables' own files read.
    tree = f"{warehouse.tables_root}/project_logs/*/*.parquet"
    # Beside the tables is where the DuckDB file and the state directory usually are.
    beside = Path(warehouse.tables_root).parent / "beside.txt"
    beside.write_text("private")
    sources = {
        "read_text('/etc/hostname')": False,
        f"read_text('{beside}')": False,
        f"read_parquet('{tree}')": True,
    }
    for source, allowed in sources.items():
        done = sql(*where, f"SELECT count(*) FROM {source}")
        assert done.returncode == (0 if allowed else 1), done.stderr
        assert allowed or done.stderr.startswith("bt-sync: error: a query reads the synced tables only: ")


def sync_objects(emulator: Emulator, warehouse: WarehouseSettings, objects: str) -> None:
    """Sync the emulator's `objects` (`--objects`) into `warehouse` through the command line."""
    args = ("sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", objects)
    assert run_cli(*args, env={"BRAINTRUST_API_KEY": emulator.api_key}).returncode == 0


def test_the_summary_counts_one_object_in_the_singular(emulator: Emulator, tmp_path: Path) -> None:
    project = emulator.store.create_project("p")
    emulator.store.create_experiment(project["id"], "e")
    emulator.store.create_dataset(project["id"], "d1")
    emulator.store.create_dataset(project["id"], "d2")
    done = run_cli("sync", env=cli_env(emulator, tmp_path))
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("synced ")]
    listed = "1 project, 1 experiment, 2 datasets, 0 prompts, 0 functions, 0 project_scores, 0 project_tags"
    assert re.fullmatch(rf"synced {listed} in [0-9.]+s \(\d+ requests, 0 retries\)", line), line


def test_sql_writes_no_file_runs_a_query_ending_in_a_comment_and_fails_midway_in_one_line(
    demo_emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    where = cli_warehouse_args(warehouse)[:4]

    # How the command reads the SQL text is checked in this process (each new one would cost 0.6 s of
    # imports); a refusal, an ending and a failure midway are also checked as a process prints them.
    def sql(text: str, *options: str) -> subprocess.CompletedProcess[str]:
        return cli_in_process(capfd, "sql", *where, text, *options)

    rows = sql("SELECT count(*) AS n FROM project_logs", "--format", "csv").stdout
    tables = Path(warehouse.tables_root)
    files = sorted(tables.rglob("*.parquet"))
    # EXPLAIN ANALYZE runs what it explains: it wrote into the tables' directory, over their files too;
    # then through checks of where DuckDB's tokens put the explained statement (at byte offsets, and read
    # otherwise than its parser reads `$a$` and U+3000).
    refused = (
        "bt-sync: error: EXPLAIN ANALYZE runs what it explains: the tables are read-only here; use EXPLAIN\n"
    )
    for target in (tables / "evil.csv", files[-1]):
        copy = f"COPY (SELECT 'SELECT 1 --' AS x LIMIT 0) TO '{target}' (FORMAT parquet)"
        for explain in (
            f"EXPLAIN ANALYZE {copy}",
            f"/* x */ EXPLAIN /* y */ ANALYSE {copy}",
            f"EXPLAIN (ANALYZE, FORMAT json) {copy}",
            f"EXPLAIN/*é*/ANALYZE {copy}",
            f"EXPLAIN ANALYZE\u3000COPY (SELECT\u3000$a$ ) SELECT 1 /* $a$ AS x) TO '{target}' (FORMAT csv)"
            " -- */",
        ):
            done = sql(explain)
            assert (done.returncode, done.stderr) == (1, refused), explain
        assert sql(f"EXPLAIN {copy}").returncode == 0  # plain EXPLAIN runs nothing
    done = run_cli("sql", *where, f"EXPLAIN ANALYZE {copy}")
    assert (done.returncode, done.stdout, done.stderr) == (1, "", refused)
    assert not (tables / "evil.csv").exists() and sorted(tables.rglob("*.parquet")) == files
    assert sql("SELECT count(*) AS n FROM project_logs", "--format", "csv").stdout == rows
    assert sql("EXPLAIN SELECT count(*) FROM project_logs").returncode == 0
    # DuckDB takes a statement's `;` followed by a comment; wrapped in bt-sync's query, it was an error.
    endings = ("; -- note", ";\n/* note */\n", " -- note;", " ;")
    for text in [f"SELECT {value} AS a{end}" for value in ("1", "';'", "'é'") for end in endings]:
        done = sql(text, "--format", "csv")
        assert (done.returncode, done.stderr) == (0, ""), text
        assert done.stdout.splitlines()[1] in ("1", ";", "é")
    done = run_cli("sql", *where, "SELECT 'é' AS a; -- note", "--format", "csv")
    assert (done.returncode, done.stdout, done.stderr) == (0, "a\né\n", "")
    # A row that fails as it is read, far into the result: one line, as one that fails before.
    failing = "SELECT CASE WHEN i = 250000 THEN ('x' || i)::INT ELSE i END AS v FROM range(300000) AS r(i)"
    done = run_cli("sql", *where, failing, "--format", "csv")
    assert done.returncode == 1
    assert done.stderr == (
        "bt-sync: error: the query failed: Conversion Error: Could not convert string 'x250000' to INT32\n"
    )
    # DuckDB's hint at what a misspelt table meant, on its second line, is kept on the one line.
    done = sql("SELECT count(*) FROM project_log")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "bt-sync: error: the query failed: Catalog Error: Table with name project_log does not exist! "
        'Did you mean "project_logs"?\n',
    )
    # An error whose first line ends in `:` says why on the lines after: cut there, it said nothing.
    done = sql("SELECT current_setting('s3_secret_access_key')")
    (line,) = done.stderr.splitlines()
    assert done.returncode == 1 and line.startswith(
        "bt-sync: error: the query failed: An error occurred while trying to automatically install the "
        "required extension 'httpfs: "
    )
    assert len(line) > 140


def test_sql_runs_a_pivot_that_finds_its_own_columns_and_still_refuses_what_it_is_made_of(
    demo_emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    where = cli_warehouse_args(warehouse)[:4]
    # Without `IN (...)`, DuckDB runs a PIVOT as two statements: an ENUM of the values found, made in
    # the command's own in-memory database, then the SELECT. It was refused as not one SELECT.
    two_values = "(SELECT 'a' AS k, 1 AS v UNION ALL SELECT 'b', 2) ON k USING sum(v)"
    for pivot in (
        f"PIVOT {two_values}",
        f"SELECT * FROM (PIVOT {two_values}); -- note",
        f"PIVOT {two_values} -- x",
    ):
        done = cli_in_process(capfd, "sql", *where, pivot, "--format", "csv")
        assert (done.returncode, done.stdout, done.stderr) == (0, "a,b\n1,2\n", ""), pivot
    # Explained, it was refused as not one SELECT.
    analyzed = "PIVOT (SELECT 'analyze' AS k, 1 AS v) ON k USING sum(v)"
    for explained in (
        f"EXPLAIN PIVOT {two_values}",
        f"/* plan */ explain\nPIVOT {two_values};",
        f"EXPLAIN {analyzed}",
    ):
        done = cli_in_process(capfd, "sql", *where, explained, "--format", "csv")
        assert (done.returncode, done.stderr) == (0, ""), explained
        assert done.stdout.startswith("explain_key,explain_value\nphysical_plan,"), done.stdout
    # What DuckDB also runs as two statements, whose statement looks the same: each writes.
    target = Path(warehouse.tables_root) / "pivot.csv"
    writes = [
        f"COPY (PIVOT {two_values}) TO '{target}'",
        f"CREATE TABLE t AS PIVOT {two_values}",
        f"INSERT INTO t PIVOT {two_values}",
        f"EXPLAIN COPY (PIVOT {two_values}) TO '{target}'",
        "CREATE TYPE k AS ENUM ('a')",
    ]
    for statement in writes:
        done = cli_in_process(capfd, "sql", *where, statement)
        assert (done.returncode, done.stdout, done.stderr) == (
            1,
            "",
            "bt-sync: error: give exactly one SELECT statement: the tables are read-only here\n",
        ), statement
    for statement in (
        f"EXPLAIN ANALYZE COPY (PIVOT {two_values}) TO '{target}'",
        f"EXPLAIN ANALYZE PIVOT {two_values}",
    ):
        done = cli_in_process(capfd, "sql", *where, statement)
        assert done.returncode == 1 and done.stderr.startswith("bt-sync: error: EXPLAIN ANALYZE runs"), (
            statement
        )
    assert not target.exists()
    # A PIVOT runs its source twice: profiling turned on by the first run wrote the second's profile over
    # a commit record, and every later query and sync failed. A query changes no setting.
    record = next(Path(warehouse.tables_root).glob("project_logs/*/_sync_state.json"))
    kept = record.read_bytes()
    profiled = f"SELECT * FROM enable_profiling(format := 'json', save_location := '{record}'), projects"
    for query_text in (f"PIVOT ({profiled}) ON name USING count(*)", profiled):
        done = cli_in_process(capfd, "sql", *where, query_text)
        assert done.returncode == 1 and "lock" in done.stderr and done.stderr.count("\n") == 1, query_text
    assert record.read_bytes() == kept


def test_sql_shows_a_value_of_megabytes_in_a_table_by_its_first_characters_saying_so(
    demo_emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    # Rich measured each of its characters: seconds and hundreds of megabytes to print a few lines, and a
    # value without a blank was cut to one line while one with blanks was printed whole.
    sync_objects(demo_emulator, warehouse, "logs")
    where = cli_warehouse_args(warehouse)[:4]
    query = (
        "SELECT repeat('\u8a9e', 2000000) AS word, repeat('a ', 600) AS text, "
        "repeat(chr(10), 100000) AS lines, 'short' AS s"
    )
    done = cli_in_process(capfd, "sql", *where, query, "--format", "table")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == (
        "3 values cut at 1,000 characters or 50 lines, ending in … (use --format csv or json for them whole)"
    )
    cells = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert cells == "\u8a9e" * 1000 + "…"
    assert len(done.stdout) < 20_000 and len(lines) < 70
    # A column's name too, which a PIVOT makes of a value.
    named = cli_in_process(capfd, "sql", *where, "SELECT 1 AS " + "k" * 5000, "--format", "table")
    assert named.stdout.splitlines()[-1].startswith("1 value cut at 1,000 characters")
    assert len(named.stdout) < 5000


def test_sql_shows_numbers_as_numbers_and_maps_as_objects_at_any_depth(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync_objects(demo_emulator, warehouse, "logs")
    query = (
        "SELECT sum(i)::HUGEINT AS h, 1.50::DECIMAL(5, 2) AS d, MAP {1: 2} AS m, {'s': MAP {'a': 1}} AS st, "
        "[MAP {{'k': 1}: 'x'}] AS l, '123'::VARINT AS big, 7::VARIANT AS v, {'VARIANT': 1} AS f, "
        "MAP {'nan'::DOUBLE: 1, 'inf'::DOUBLE: 2, 0.5: 3} AS fk, MAP {DATE '2020-01-02': 1} AS dk, "
        "0.1::FLOAT AS fl, true AS t, ['nan'::DOUBLE, '-inf'::DOUBLE, 1.5] AS fv, "
        "[0.1::FLOAT, 'inf'::FLOAT] AS ff, {'x': MAP {'y': 0.3::FLOAT}} AS sf, "
        "union_value(m := MAP {'a': 0.1::FLOAT})::UNION(m MAP(VARCHAR, FLOAT), n INTEGER) AS u, "
        "{'l': [union_value(m := MAP {'b': 1})::UNION(m MAP(VARCHAR, INTEGER), n INTEGER)]} AS nu "
        "FROM range(3) AS r(i)"
    )
    shown = {
        # A MAP of integer keys was a traceback; a HUGEINT and a DECIMAL were text, a VARINT Python bytes
        # (b'\x80…'), and a map inside a struct or a list (key, value) pairs. A FLOAT was its double
        # (0.10000000149011612), alone and nested, and CSV wrote a boolean as Python's `True`. NaN and
        # infinity in a list were null in CSV, like a missing value; JSON has no other form for them.
        # A map in a union was its pairs, in a union column and in one inside a struct or list.
        "json": (
            '[\n{"h":3,"d":1.50,"m":{"1":2},"st":{"s":{"a":1}},"l":[{"{\\"k\\":1}":"x"}],"big":"123",'
            '"v":"7","f":{"VARIANT":1},"fk":{"nan":1,"inf":2,"0.5":3},"dk":{"2020-01-02":1},"fl":0.1,'
            '"t":true,"fv":[null,null,1.5],"ff":[0.1,null],"sf":{"x":{"y":0.3}},"u":{"a":0.1},'
            '"nu":{"l":[{"b":1}]}}\n]\n'
        ),
        "csv": (
            'h,d,m,st,l,big,v,f,fk,dk,fl,t,fv,ff,sf,u,nu\n3,1.50,"{""1"":2}","{""s"":{""a"":1}}","[{""{\\""k\\"":1}"":""x""}]",'
            '123,7,"{""VARIANT"":1}","{""nan"":1,""inf"":2,""0.5"":3}","{""2020-01-02"":1}",0.1,true,"[nan,-inf,1.5]",'
            '"[0.1,inf]","{""x"":{""y"":0.3}}","{""a"":0.1}","{""l"":[{""b"":1}]}"\n'
        ),
    }
    for output, expected in shown.items():
        done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], query, "--format", output)
        assert (done.returncode, done.stderr, done.stdout) == (0, "", expected)
    # The table showed Python's reprs: [(1, 2)], [[('b', 2)]].
    nested = (
        "SELECT MAP {1: 2} AS m, [MAP {'b': 2}] AS l, scores, 0.1::FLOAT AS fl, [0.1::FLOAT] AS ff, is_root "
        "FROM project_logs WHERE scores IS NOT NULL AND is_root"
    )
    done = run_cli("sql", *cli_warehouse_args(warehouse)[:4], f"{nested} LIMIT 1", "--format", "table")
    assert done.returncode == 0 and '{"1":2}' in done.stdout and '[{"b":2}]' in done.stdout
    assert "(" not in done.stdout and "True" not in done.stdout and "0.10000" not in done.stdout
    assert " 0.1 " in done.stdout and " [0.1] " in done.stdout and " true " in done.stdout


def test_objects_names_catalog_kinds_on_the_command_line(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    args = ("sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse))
    # Each --objects adds its kinds.
    done = run_cli(*args, "--objects", "prompts", "--objects", "project_tags", "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # The projects are listed to find the definitions, but no event object is read.
    assert summary["objects"] == []
    assert summary["catalog"]["prompts"] == 2 and summary["catalog"]["project_tags"] == 3
    # Said in its line alone: it printed a table's headers over no row.
    said = run_cli(*args, "--objects", "prompts", env=env)
    assert said.returncode == 0 and said.stdout.startswith("synced 3 projects, 2 prompts in "), said.stdout
    counted = run_cli(
        "sql",
        *cli_warehouse_args(warehouse)[:4],
        "SELECT (SELECT count(*) FROM prompts) AS prompts, (SELECT count(*) FROM project_tags) AS tags",
        "--format",
        "json",
    )
    assert json.loads(counted.stdout) == [{"prompts": 2, "tags": 3}]


def test_sql_keeps_repeated_columns_and_shows_values_as_duckdb_writes_them(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync_objects(demo_emulator, warehouse, "prompts")
    # A join's `SELECT *` repeats names; Python would print a BLOB and an INTERVAL as its own reprs.
    select = (
        "SELECT p.id, q.id, 3 AS id_1, '\\x00ab'::BLOB AS b, INTERVAL 3 DAY AS i, "
        # Arrow would drop the offset, and wrap the number around to -1.
        "'12:00:00+02'::TIMETZ AS t, '340282366920938463463374607431768211455'::UHUGEINT AS u, "
        # Python would read the end of the day as midnight.
        "TIME '24:00:00' AS e FROM prompts p JOIN prompts q USING (id) ORDER BY p.id LIMIT 1"
    )
    shown = {
        output: run_cli("sql", *cli_warehouse_args(warehouse)[:4], select, "--format", output)
        for output in ("csv", "json", "table")
    }
    assert all(done.returncode == 0 for done in shown.values()), shown
    header, row = shown["csv"].stdout.split("\n")[:2]
    assert header == "id,id_1,id_1_1,b,i,t,u,e"
    first_id = row.split(",")[0]
    most = str(2**128 - 1)
    assert row == f"{first_id},{first_id},3,\\x00ab,3 days,12:00:00+02,{most},24:00:00"
    assert json.loads(shown["json"].stdout) == [
        {
            "id": first_id,
            "id_1": first_id,
            "id_1_1": 3,
            "b": "\\x00ab",
            "i": "3 days",
            "t": "12:00:00+02",
            "u": most,
            "e": "24:00:00",
        }
    ]
    assert "id_1_1" in shown["table"].stdout and "3 days" in shown["table"].stdout


def test_sql_runs_while_a_sync_is_running(demo_emulator: Emulator, warehouse: WarehouseSettings) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    assert (
        run_cli("sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), env=env).returncode
        == 0
    )
    syncing = subprocess.Popen(
        [*CLI, "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), "--full"],
        env={**__import__("os").environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    answers = []
    while syncing.poll() is None or not answers:
        done = run_cli(
            "sql", *cli_warehouse_args(warehouse)[:4], "SELECT count(*) FROM project_logs", "--format", "csv"
        )
        answers.append((done.returncode, done.stdout.splitlines()[-1] if done.stdout else done.stderr))
    assert syncing.wait() == 0
    assert all(code == 0 and value == "1130" for code, value in answers), answers


@pytest.mark.parametrize(
    ("api", "key", "args", "exit_code", "says"),
    [
        ("emulator", "wrong", [], 1, "rejected the API key"),
        ("closed port", None, [], 1, "is unavailable"),
        ("emulator", None, ["--project", "nope"], 2, "no project named"),
        (
            "emulator",
            "wrong",
            [
                *("--destination", "iceberg"),
                *("--iceberg-catalog", "sqlite:///{w}/c.db", "--iceberg-warehouse", "{w}/i"),
            ],
            1,
            "rejected the API key",
        ),
    ],
)
def test_a_sync_the_api_refuses_writes_nothing(
    emulator: Emulator, tmp_path: Path, api: str, key: str | None, args: list[str], exit_code: int, says: str
) -> None:
    # A first sync that fails there left an empty warehouse, which `status` and `sql` then answered from.
    url = emulator.url if api == "emulator" else f"http://127.0.0.1:{free_port()}"
    warehouse = tmp_path / "w"
    # The duckdb destination's files, unless the args choose another.
    paths = (
        []
        if "--destination" in args
        else ["--duckdb", f"{warehouse}/b.duckdb", "--parquet", f"{warehouse}/pq"]
    )
    paths += ["--state-dir", f"{warehouse}/st"]
    env = {"BRAINTRUST_API_KEY": key or emulator.api_key, "BT_SYNC_MAX_ATTEMPTS": "1"}
    args = [arg.replace("{w}", str(warehouse)) for arg in args]
    done = run_cli("sync", "--api-url", url, *paths, *args, env=env)
    assert done.returncode == exit_code and says in one_line(done.stderr)
    assert not warehouse.exists()


@pytest.mark.parametrize(
    ("in_the_way", "says"),
    [
        ("st", "--state-dir {w}/st/x: {w}/st is not a directory"),
        ("link", "--state-dir {w}/link/x: {w}/link is a link to {w}/gone, which does not exist"),
        ("loop", "--state-dir {w}/loop/x: {w}/loop leads into a loop of symbolic links"),
        ("b.duckdb", "--duckdb {w}/b.duckdb/x is a directory: name a DuckDB file in it"),
        ("file", "--duckdb {w}/file/b.duckdb: {w}/file is a file where a directory is needed"),
    ],
)
def test_a_state_dir_or_duckdb_file_the_sync_cannot_use_is_refused_before_it_writes(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], in_the_way: str, says: str
) -> None:
    where = tmp_path / "w"
    where.mkdir()
    state_dir, duckdb_file = f"{where}/st/x", f"{where}/b.duckdb"
    if in_the_way == "st":
        (where / "st").write_text("a file")
    elif in_the_way == "link":
        (where / "link").symlink_to(where / "gone")
        state_dir = f"{where}/link/x"
    elif in_the_way == "loop":
        (where / "loop").symlink_to(where / "loop")
        state_dir = f"{where}/loop/x"
    elif in_the_way == "file":
        (where / "file").write_text("a file")
        duckdb_file = f"{where}/file/b.duckdb"
    else:
        (where / "b.duckdb" / "x").mkdir(parents=True)
        duckdb_file += "/x"
    paths = ["--duckdb", duckdb_file, "--parquet", f"{where}/pq", "--state-dir", state_dir]
    done = cli_in_process(capfd, "sync", "--api-url", emulator.url, *paths, env={"BRAINTRUST_API_KEY": "k"})
    assert (done.returncode, done.stderr) == (2, f"bt-sync: error: {says.format(w=where)}\n")
    assert [path.name for path in where.iterdir()] == [in_the_way]  # nothing written beside it


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        ("sync", "BT_SYNC_STATE_DIR"),
        ("sync", "BT_SYNC_DUCKDB"),
        ("sync", "BT_SYNC_DUCKDB_PATH"),
        ("push", "BT_SYNC_STATE_DIR"),
    ],
)
def test_a_path_set_by_a_variable_is_named_by_it_when_refused(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], command: str, variable: str
) -> None:
    # Named `--state-dir` (`--duckdb`), a flag given nowhere.
    (tmp_path / "file").write_text("a file")
    given = f"{tmp_path}/file" if variable == "BT_SYNC_STATE_DIR" else f"{tmp_path}/file/w.duckdb"
    env = {"BRAINTRUST_API_KEY": "k", variable: given, "BT_SYNC_PARQUET": f"{tmp_path}/pq"}
    if variable != "BT_SYNC_STATE_DIR":
        env["BT_SYNC_STATE_DIR"] = f"{tmp_path}/st"
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "a", "input": 1}\n')
    pushed = [str(rows), "--project", "p", "--dataset", "d"] if command == "push" else []
    done = cli_in_process(capfd, command, *pushed, "--api-url", emulator.url, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"bt-sync: error: {variable} {given}: "), done.stderr


@pytest.mark.parametrize(
    ("command", "flag", "path"),
    [
        ("sync", "--state-dir", "/proc/st"),
        ("sync", "--duckdb", "/proc/d/w.duckdb"),
        ("sync", "--parquet", "/proc/pq"),
        ("demo", "--duckdb", "/proc/w.duckdb"),
        ("demo", "--parquet", "/proc/pq"),
    ],
)
def test_a_path_where_nothing_can_be_made_is_refused_before_anything_is_asked_or_written(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], command: str, flag: str, path: str
) -> None:
    # As root every directory says it is writable (`os.access`), /proc too: the sync wrote the catalog's
    # tables, then failed each object (exit 1); the demo started its emulator, then failed on the file.
    paths = {"--duckdb": f"{tmp_path}/w.duckdb", "--parquet": f"{tmp_path}/pq"}
    if command == "sync":
        paths["--state-dir"] = f"{tmp_path}/st"
    paths[flag] = path
    api = ["--api-url", emulator.url] if command == "sync" else []
    args = [part for pair in paths.items() for part in pair]
    done = cli_in_process(capfd, command, *api, *args, env={"BRAINTRUST_API_KEY": emulator.api_key})
    assert done.returncode == 2
    assert done.stderr.startswith(f"bt-sync: error: {flag} {path}: cannot create or write in /proc (")
    assert list(tmp_path.iterdir()) == []
    assert not emulator.stats.requests


@pytest.mark.parametrize("command", ["sync", "demo"])
def test_a_duckdb_file_name_too_long_for_the_files_beside_it_is_refused_before_anything_is_written(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], command: str
) -> None:
    # A name of 238-248 characters fits, its views' temporary file (`.<name>.<8 hex>.tmp.wal`) not: "File
    # name too long" of that hidden file, exit 1, once the catalog's tables were written (and an orphaned
    # journal set aside takes 29 more).
    name = "w" * 238 + ".duckdb"
    api = ["--api-url", emulator.url] if command == "sync" else []
    args = ["--duckdb", f"{tmp_path}/{name}", "--parquet", f"{tmp_path}/pq"]
    args += ["--state-dir", f"{tmp_path}/st"] if command == "sync" else []
    done = cli_in_process(capfd, command, *api, *args, env={"BRAINTRUST_API_KEY": emulator.api_key})
    assert (done.returncode, done.stderr) == (
        2,
        f"bt-sync: error: --duckdb {tmp_path}/{name}: its name is 245 bytes long, and bt-sync writes files "
        "beside it whose names are 29 longer, past the 255 this file system allows: give a name of at most "
        "226 bytes\n",
    )
    assert list(tmp_path.iterdir()) == []
    assert not emulator.stats.requests


def test_a_duckdb_file_name_no_file_can_have_is_refused_as_a_setting(tmp_path: Path) -> None:
    name = "w" * 252 + ".duckdb"
    # Looking at it failed with the system's words, exit 1: "File name too long: www…".
    done = run_cli("status", "--duckdb", f"{tmp_path}/{name}", "--parquet", f"{tmp_path}/pq")
    assert (done.returncode, done.stderr) == (
        2,
        f"bt-sync: error: --duckdb {tmp_path}/{name}: its name is 259 bytes long, past the 255 this file "
        "system allows: give a name of at most 255 bytes\n",
    )


@pytest.mark.parametrize(
    ("command", "duckdb", "parquet", "says"),
    [
        ("sync", "wh", "wh/tables", "--parquet {w}/wh/tables is inside --duckdb {w}/wh, which names a file"),
        ("demo", "d", "d/pq", "--parquet {w}/d/pq is inside --duckdb {w}/d, which names a file"),
        (
            "sync",
            "q/projects",
            "q",
            "--duckdb {w}/q/projects lies where the tables' directory {w}/q keeps projects",
        ),
        (
            "sync",
            "q/_bt_sync/x.duckdb",
            "q",
            "--duckdb {w}/q/_bt_sync/x.duckdb lies where the tables' directory",
        ),
    ],
)
def test_a_duckdb_file_and_a_parquet_root_one_inside_the_other_are_refused_before_anything_is_written(
    emulator: Emulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    command: str,
    duckdb: str,
    parquet: str,
    says: str,
) -> None:
    # The tree was written, making the DuckDB file's path a directory; then "Is a directory; move it away"
    # (exit 1), of a directory the sync had just made.
    api = ["--api-url", emulator.url] if command == "sync" else []
    state = ["--state-dir", f"{tmp_path}/st"] if command == "sync" else []
    done = cli_in_process(capfd, command, *api, "--duckdb", f"{tmp_path}/{duckdb}",
                          "--parquet", f"{tmp_path}/{parquet}", *state,
                          env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"bt-sync: error: {says.format(w=tmp_path)}"), done.stderr
    assert list(tmp_path.iterdir()) == []
    assert not emulator.stats.requests


@pytest.mark.parametrize(("command", "through_a_link"), [("sync", False), ("sync", True), ("demo", False)])
def test_one_path_as_both_the_duckdb_file_and_the_parquet_root_is_refused_before_anything_is_written(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], command: str, through_a_link: bool
) -> None:
    # The tree was written there, then the file could not be ("Is a directory"), exit 1; the demo's emulator
    # had started.
    where = tmp_path / "wh"
    named = tmp_path / "link" if through_a_link else where
    if through_a_link:
        named.symlink_to(where)
    api = ["--api-url", emulator.url] if command == "sync" else []
    done = cli_in_process(capfd, command, *api, "--duckdb", str(named), "--parquet", f"{where}/",
                          env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2,
        f"bt-sync: error: --duckdb and --parquet both name {named}: the DuckDB file goes beside the tables' "
        "directory, not in its place: give each a path of its own\n",
    )
    assert [path.name for path in tmp_path.iterdir()] == (["link"] if through_a_link else [])


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["sync", "--api-url", "{url}", *["{warehouse}"]],
            {"BRAINTRUST_API_KEY": "wrong"},
            "rejected the API key",
        ),
        (
            ["sync", "--api-url", "{url}"],
            {"BRAINTRUST_API_KEY": ""},
            "No Braintrust API key: set BRAINTRUST_API_KEY or pass --api-key.",
        ),
        (
            ["sync", "--api-url", "ftp://x"],
            {},
            "invalid setting: --api-url: must start with http",
        ),
        # Quoted, or from an env file: a directory named `~` was made where the command ran.
        (
            ["status", "--duckdb", "~/bt/w.duckdb"],
            {},
            "invalid setting: --duckdb: '~/bt/w.duckdb' starts with ~, which only a shell expands "
            "(unquoted): give the home directory's path ($HOME)",
        ),
        # A SQLite catalog's file: `./~/c.db`, `./$CATALOG` made, a catalog of each working directory's.
        (
            ["status"],
            {"BT_SYNC_DESTINATION": "iceberg", "BT_SYNC_ICEBERG_CATALOG": "sqlite:///~/c.db"},
            "invalid setting: BT_SYNC_ICEBERG_CATALOG: '~/c.db' starts with ~, which only a shell expands",
        ),
        (
            ["status"],
            {"BT_SYNC_DESTINATION": "iceberg", "BT_SYNC_ICEBERG_CATALOG": "sqlite:///$CATALOG"},
            "invalid setting: BT_SYNC_ICEBERG_CATALOG: '$CATALOG' starts with $CATALOG, a variable no shell",
        ),
        (
            ["status"],
            {"BT_SYNC_DESTINATION": "iceberg", "BT_SYNC_ICEBERG_CATALOG": "sqlite+pysqlite:///~/c.db"},
            "(unquoted): give the home directory's path ($HOME); an absolute path takes four slashes, "
            "sqlite+pysqlite:////home/me/c.db",
        ),
        # From an env file, which expands nothing: directories named `$HOME` held the warehouse.
        (
            ["status"],
            {"BT_SYNC_DUCKDB": "$HOME/bt/x.duckdb"},
            "invalid setting: BT_SYNC_DUCKDB: '$HOME/bt/x.duckdb' starts with $HOME, a variable no shell "
            "expanded (an env file's value?): give the path it stands for",
        ),
        (
            ["status", "--parquet", "${{HOME}}/pq"],  # `{` doubled: the arguments are formatted
            {},
            "invalid setting: --parquet: '${HOME}/pq' starts with ${HOME}, a variable no shell expanded",
        ),
        (
            ["push", "a.csv", "--project", "p", "--dataset", "d", "--state-dir", "%USERPROFILE%/st"],
            {},
            "invalid setting: --state-dir: '%USERPROFILE%/st' starts with %USERPROFILE%, a variable",
        ),
        # A slash short of a URI: a local directory named `s3:` held the warehouse, exit 0.
        (
            ["status"],
            {"BT_SYNC_PARQUET": "s3:/analytics/bt"},
            "invalid setting: BT_SYNC_PARQUET: 's3:/analytics/bt' starts like a URI without the two slashes "
            "after s3:: write 's3://analytics/bt' (./s3:/analytics/bt for a local name that starts so)",
        ),
        (
            ["status", "--parquet", "GS:bucket/bt"],
            {},
            "without the two slashes after GS:: write 'GS://bucket/bt'",
        ),
        # No bucket, or a web address: pyarrow's words ("Path cannot start with a separator"), exit 1.
        (
            ["status", "--parquet", "s3://"],
            {},
            "invalid setting: --parquet: 's3://' names no bucket: write s3://",
        ),
        (
            ["status"],
            {"BT_SYNC_DESTINATION": "iceberg", "BT_SYNC_ICEBERG_WAREHOUSE": "https://example.com/wh"},
            "invalid setting: BT_SYNC_ICEBERG_WAREHOUSE: 'https://example.com/wh' is a web address",
        ),
        # The URL and the key swapped: the key was quoted back.
        (
            ["projects"],
            {"BRAINTRUST_API_URL": "sk-live-s3cr3tkey", "BRAINTRUST_API_KEY": "http://127.0.0.1:9"},
            "BRAINTRUST_API_URL: must start with http:// or https://, got 17 characters with no host's dot, "
            "port or path (not shown: an API key given as the URL?)",
        ),
        (["sync", "--api-url", "{url}", "--objects", "logz"], {}, "--objects"),
        (
            ["sync", "--api-url", "{url}", "--project", "nope"],
            {},
            "no project named or with id nope (projects: none); one deleted or renamed upstream is no longer "
            "listed: name the projects that are",
        ),
        # A space at an end showed as nothing: "no project named or with id pp (projects: …, pp)".
        (
            ["sync", "--api-url", "{url}", "--project", " pp"],
            {},
            "no project named or with id ' pp' (projects",
        ),
        (["sync", "--api-url", "{url}", "--duckdb", "/proc/forbidden/w.duckdb"], {}, "/proc/forbidden"),
        # Its lock files and deletions: it failed naming a lock file, in the system's words alone.
        (
            ["maintain", "--parquet", "/proc/forbidden/pq"],
            {},
            "--parquet /proc/forbidden/pq: cannot create or write in /proc (",
        ),
        (
            ["sync", "--api-url", "{url}", "--duckdb", "{corrupt}"],
            {},
            "is another kind of file, not a DuckDB database",
        ),
        (
            ["sync", "--api-url", "{url}", "--objects", "prompts", "--duckdb", "{corrupt}/w.duckdb"],
            {},
            "corrupt.duckdb is a file where a directory is needed",
        ),
        # The same for the tables' directory, which the tree writes under the file's path.
        (
            ["sync", "--api-url", "{url}", "--objects", "prompts", "--parquet", "{corrupt}/pq"],
            {},
            "corrupt.duckdb is a file where a directory is needed",
        ),
        # DuckDB would read them as wildcards: no file found, or other files.
        (
            ["sync", "--api-url", "{url}", "--parquet", "/tmp/team[a]/pq"],
            {},
            "invalid setting: --parquet: the path /tmp/team[a]/pq holds [ and ], which DuckDB reads as a "
            "wildcard",
        ),
        (["status", "--duckdb", "/tmp/what?/w.duckdb"], {}, "--duckdb: the path /tmp/what?/w.duckdb holds ?"),
        # DuckDB wrote the file under `a\b` as `a/b`, and read `\` in a pattern as an escape.
        (
            ["sync", "--api-url", "{url}", "--parquet", "/tmp/back\\slash/pq"],
            {},
            "--parquet: the path /tmp/back\\slash/pq holds \\, which DuckDB reads as a wildcard or an escape",
        ),
        (["status", "--duckdb", "/tmp/a\\b.duckdb"], {}, "--duckdb: the path /tmp/a\\b.duckdb holds \\"),
        # Every attempt made, in milliseconds rather than the default backoff's 10 s.
        (["sync", "--api-url", "http://127.0.0.1:9"], {"BT_SYNC_BACKOFF_INITIAL_S": "0.01"}, "unavailable"),
        (["sync", "--api-url", "{url}", "--timeout", "-1"], {}, "timeout"),
        (["sync", "--api-url", "http://"], {}, "invalid setting: --api-url: names no host: 'http://'"),
        (["projects", "--api-url", "http://exa mple.com"], {}, "invalid setting: --api-url: holds a space"),
        # An Iceberg destination from the environment took the command away from the files named, silently.
        (
            ["sync", "--api-url", "{url}", "--duckdb", "w.duckdb", "--parquet", "pq"],
            {"BT_SYNC_DESTINATION": "iceberg"},
            "invalid setting: --duckdb and --parquet name the duckdb destination's files, but the "
            "destination is iceberg (--destination, BT_SYNC_DESTINATION): pass --destination duckdb",
        ),
        (
            ["status", "--no-parquet"],
            {"BT_SYNC_DESTINATION": "iceberg"},
            "invalid setting: --no-parquet names the duckdb destination's files",
        ),
        # push has no --destination flag, which the remedy named.
        (
            ["push", "--sql", "SELECT 1 AS id", "--project", "p", "--dataset", "d", "--duckdb", "w.duckdb"],
            {"BT_SYNC_DESTINATION": "iceberg"},
            "invalid setting: --duckdb names the duckdb destination's files, but the destination is iceberg "
            "(BT_SYNC_DESTINATION): set BT_SYNC_DESTINATION to duckdb (or unset it), or leave out --duckdb",
        ),
        (
            ["projects", "--api-url", "http://127.0.0.1:99999"],
            {},
            "--api-url: is not a URL (Port out of range",
        ),
        # Durations no clock or socket can wait for.
        (
            ["sync", "--api-url", "{url}", "--timeout", "inf"],
            {},
            "--timeout: Input should be a finite number",
        ),
        (["sync", "--api-url", "{url}"], {"BT_SYNC_TIMEOUT": "1e300"}, "BT_SYNC_TIMEOUT"),
        (
            ["projects", "--api-url", "{url}"],
            {"BT_SYNC_BACKOFF_MAX_S": "1e300"},
            "invalid setting: BT_SYNC_BACKOFF_MAX_S: Input should be less than or equal to 3600",
        ),
        (
            ["projects", "--api-url", "{url}"],
            {"BT_SYNC_BACKOFF_INITIAL_S": "1e10"},
            "invalid setting: BT_SYNC_BACKOFF_INITIAL_S: Input should be less than or equal to 3600",
        ),
        (
            ["projects", "--api-url", "{url}"],
            {"BT_SYNC_MAX_ATTEMPTS": "100000000000"},
            "invalid setting: BT_SYNC_MAX_ATTEMPTS: Input should be less than or equal to 1000",
        ),
        (
            ["sync", "--api-url", "{url}", "--overlap-seconds", "inf"],
            {},
            "--overlap-seconds: Input should be a finite",
        ),
        (
            ["sync", "--api-url", "{url}", "--lock-wait", "nan"],
            {},
            "--lock-wait: Input should be a finite number",
        ),
        (
            ["sync", "--api-url", "{url}", "--timeout", "nan"],
            {},
            "--timeout: Input should be a finite number",
        ),
        # A key no header can carry: httpx's refusal would quote it.
        (["sync", "--api-url", "{url}"], {"BRAINTRUST_API_KEY": "ab\ns3cr3t"}, "holds a control character"),
        (["projects", "--api-url", "{url}", "--api-key", "ключs3cr3t"], {}, "holds a non-ASCII character"),
        # An unset variable in `BT_SYNC_PARQUET=$ROOT` must not point the views at new, empty tables.
        (["sync", "--api-url", "{url}"], {"BT_SYNC_PARQUET": ""}, "BT_SYNC_PARQUET: is empty"),
        (["sync", "--parquet", "pq", "--no-parquet"], {}, "--parquet and --no-parquet exclude each other"),
        # The second flag was taken for the first one's value: a status of tables in `./--no-parquet`.
        (
            ["status", "--parquet", "--no-parquet"],
            {},
            "--parquet: '--no-parquet' looks like an option, not its value",
        ),
        (
            ["status", "--duckdb", "--parquet", "pq"],
            {},
            "--duckdb: '--parquet' looks like an option, not its value",
        ),
        # `--json` was sent as the key (a 401): the key is not quoted, since it may be one.
        (
            ["projects", "--api-key", "--json"],
            {},
            "invalid setting: --api-key is followed by an option, not by a key: give a key after it",
        ),
        (
            ["status", "--parquet", "n\udcffu/pq"],
            {},
            "invalid setting: --parquet: 'n\\xffu/pq' is not UTF-8",
        ),
        (["sync", "--state-dir", "s\udcff"], {}, "invalid setting: --state-dir: 's\\xff' is not UTF-8"),
        # httpx's refusal was a traceback.
        (
            ["projects", "--api-url", "http://127.0.0.1:9/\udcff"],
            {},
            "invalid setting: --api-url: 'http://127.0.0.1:9/\\xff' is not UTF-8",
        ),
        (["projects"], {"BRAINTRUST_API_URL": "http://a\udcff"}, "BRAINTRUST_API_URL: 'http://a\\xff'"),
        (["projects", "--api-key", "K\udcff"], {}, "invalid setting: --api-key: holds a non-ASCII character"),
        (
            [
                "status",
                "--destination",
                "iceberg",
                "--iceberg-catalog",
                "{catalog}",  # a file: a catalog in memory is refused
                "--iceberg-namespace",
                " ",
            ],
            {},
            "invalid setting: --iceberg-namespace: ' ' has an empty part",
        ),
        (
            ["status"],
            {"BT_SYNC_DESTINATION": "iceberg", "BT_SYNC_ICEBERG_NAMESPACE": "a..b"},
            "BT_SYNC_ICEBERG_NAMESPACE: 'a..b' has an empty part",
        ),
        (
            ["status"],
            {"BT_SYNC_DESTINATION": "iceberg", "BT_SYNC_ICEBERG_NAMESPACE": "analytics. bt"},
            "BT_SYNC_ICEBERG_NAMESPACE: starts with a blank (U+0020): give the namespace without it",
        ),
        (
            ["emulator", "--seed", "bench:99999999999999999999"],
            {},
            "--seed: bench:N holds at most 100,000,000",
        ),
        (["emulator", "--api-key", " "], {}, "invalid setting: --api-key: is empty"),
        # `--host "$HOST"`, the variable unset: it listened on every interface.
        (["emulator", "--host", ""], {}, "invalid setting: --host: is empty: give an address"),
        (["emulator", "--host", "0.0.0.0 "], {}, "invalid setting: --host: '0.0.0.0 ' starts or ends with a"),
        # DuckDB read `~st` as the home directory's path with `st` glued on; Python made `./~st`.
        (["maintain", "--state-dir", "~st"], {}, "invalid setting: --state-dir: '~st' starts with ~"),
        (
            ["status"],
            {
                "BT_SYNC_DESTINATION": "iceberg",
                "BT_SYNC_ICEBERG_CATALOG": "sqlite:///c.db",
                "BT_SYNC_ICEBERG_WAREHOUSE": "~/wh",
            },
            "invalid setting: BT_SYNC_ICEBERG_WAREHOUSE: '~/wh' starts with ~",
        ),
        # The other path flags refused them: `./~/st` and `st ` were made where the command ran.
        (
            ["emulator", "--state", "~/x"],
            {},
            "invalid setting: --state: '~/x' starts with ~, which only a shell",
        ),
        (
            ["push", "a.csv", "--project", "p", "--dataset", "d", "--state-dir", "st "],
            {},
            "invalid setting: --state-dir: ends with a blank (U+0020): give the path without it",
        ),
        (
            [
                "push",
                "a.csv",
                "--project",
                "p",
                "--dataset",
                "d",
                "--on-error",
                "skip",
                "--rejects",
                "~/r.jsonl",
            ],
            {},
            "invalid setting: --rejects: '~/r.jsonl' starts with ~",
        ),
        (["status", "--duckdb", " "], {}, "--duckdb: is empty"),
        # A DuckDB file named `wh` was made where a directory was meant; a rejects file too.
        (["sync", "--duckdb", "wh/"], {}, "invalid setting: --duckdb: 'wh/' ends with /, so it names a"),
        (["status"], {"BT_SYNC_DUCKDB": "wh/"}, "invalid setting: BT_SYNC_DUCKDB: 'wh/' ends with /, so it"),
        (["status", "--duckdb", "wh/."], {}, "invalid setting: --duckdb: 'wh/.' ends with ., so it names a"),
        (
            ["push", "a.csv", "--project", "p", "--dataset", "d", "--on-error", "skip", "--rejects", "r/"],
            {},
            "invalid setting: --rejects: 'r/' ends with /, so it names a directory: give a file's path",
        ),
        (["sync", "--api-url", "{url}"], {"BT_SYNC_BACKOFF_MAX_S": "-1"}, "BT_SYNC_BACKOFF_MAX_S: Input"),
        (
            ["maintain", "--retain-hours", "1e12"],
            {},
            "invalid setting: --retain-hours: must be between 0 and 878,400",
        ),
        (["maintain", "--retain-hours", "nan"], {}, "must be between 0 and 878,400 hours, got nan"),
        # A table's name, or a kind in the singular: the kind meant, named.
        (
            ["sync", "--objects", "project_logs,experiment"],
            {},
            "got 'project_logs,experiment' (for project_logs give logs; for experiment give experiments)",
        ),
        (["sync", "--objects", "traces"], {}, "project_scores, project_tags; got 'traces'"),
        # Beyond the bound by less than its shown digits: shown as given, not rounded into the range.
        (["maintain", "--retain-hours", "878400.4"], {}, "must be between 0 and 878,400 hours, got 878400.4"),
        (["maintain", "--retain-hours", "878401"], {}, "must be between 0 and 878,400 hours, got 878,401"),
        (["maintain", "--retain-hours", "1e300"], {}, "must be between 0 and 878,400 hours, got 1e+300"),
        # Credentials in the API's URL are never shown, however it fails.
        (
            ["sync", "--api-url", "http://user:s3cr3t@127.0.0.1:9"],
            {},
            "--api-url: holds credentials ('http://***@127.0.0.1:9'): give the API key on its own",
        ),
        (
            ["sync", "--api-url", "http://127.0.0.1:9/?api_key=s3cr3t"],
            {},
            "--api-url: holds a query or a fragment: give the API's base URL alone, not "
            "http://127.0.0.1:9/?api_key=***",
        ),
        (["sync", "--api-url", "ftp://user:s3cr3t@host"], {}, "got 'ftp://***@host'"),
        (
            [
                "sync",
                "--api-url",
                "{url}",
                "--parquet",
                "s3://AKIAKEY:s3cr3t/x@bucket/p?endpoint_override=127.0.0.1:9&scheme=http",
            ],
            {},
            "s3://***@bucket",
        ),
        # A library's message that quotes the credentials without the URI's scheme hides them too.
        *(
            (
                [
                    "sync",
                    "--api-url",
                    "{url}",
                    "--destination",
                    "iceberg",
                    "--iceberg-catalog",
                    "{catalog}",  # a file: a catalog in memory is refused
                    "--iceberg-warehouse",
                    warehouse,
                ],
                {},
                shown,
            )
            for warehouse, shown in (
                ("s3://AKIAKEY:s3cr3tpw@bucket/p", "bucket name: '***@bucket'"),
                ("s3://AKIAKEY:s3cr3tpw/x@bucket/p", "bucket name: 'AKIAKEY:***'"),
            )
        ),
        # SQLAlchemy reads a catalog's password up to the `@`, a `?` included: shown in full, it was.
        *(
            (
                ["status", "--destination", "iceberg", "--iceberg-catalog", catalog],
                {"BT_SYNC_ICEBERG_WAREHOUSE": "w"},
                shown,
            )
            for catalog, shown in (
                ("postgresql+psycopg://bt:pw?s3cr3t@127.0.0.1:9/db", "catalog postgresql+psycopg://***@127"),
                ("postgresql+psycopg://bt:pw@127.0.0.1:port/db", "is not a valid URI (its port is not a"),
                ("postgresql+pg8000://bt:s3cr3t@127.0.0.1:9/db", "needs the Python module pg8000, which is"),
            )
        ),
        (["sql", "SELECT * FROM no_such_table"], {}, "run `bt-sync sync` first"),
        (["sql", "DROP TABLE project_logs"], {}, "one SELECT"),
        (["sql", "SELEC 1"], {}, "syntax"),
        (["sql", "/* nothing */ "], {}, "the query is empty"),
        (["sql", "--", "--debug"], {}, "the query is empty"),  # a value, not the option
        (["sync", "--api-url", "http://user@127.0.0.1:9"], {}, "--api-url: holds credentials"),
        (["sync"], {"BRAINTRUST_API_URL": "http://127.0.0.1:9/#v1"}, "BRAINTRUST_API_URL: holds a query or"),
        (
            ["status", "--duckdb", "w\udcff.duckdb"],
            {},
            "invalid setting: --duckdb: 'w\\xff.duckdb' is not UTF-8",
        ),
        # Bytes the shell passed that are not UTF-8.
        (["sql", "SELECT '\udcff'"], {}, "the query is not UTF-8 text (at character 9)"),
    ],
)
def test_errors_are_one_line_without_traceback_or_secrets(
    emulator: Emulator,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"this is not a duckdb file" * 100)
    values = {"url": emulator.url, "corrupt": str(corrupt), "catalog": f"sqlite:///{tmp_path}/catalog.db"}
    full_env = {
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_DUCKDB": str(tmp_path / "w.duckdb"),
        "BT_SYNC_PARQUET": str(tmp_path / "pq"),
        "BT_SYNC_STATE_DIR": str(tmp_path / "state"),
        "BT_SYNC_TIMEOUT": "5",
    } | env
    # In this process: the line is the command's own (`main`), which the tests above and below also see
    # printed by a new process, whose start-up would cost each case 0.6 s more.
    done = cli_in_process(capfd, *(a.format(**values) for a in args if a != "{warehouse}"), env=full_env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    if lines[0].startswith("bt-sync: error: invalid setting: "):
        assert done.returncode == 2  # README: as a bad flag does
    assert "Traceback" not in done.stderr
    assert emulator.api_key not in done.stderr + done.stdout
    assert "s3cr3t" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        # A project named `--full` was looked for, and `--full` was not given.
        (["sync", "--project", "--full"], "Error: --project is followed by the option --full, not by its"),
        (["sync", "--objects", "--json"], "Error: --objects is followed by the option --json, not by its"),
        (["emulator", "--host", "--port", "0"], "Error: --host is followed by the option --port, not by its"),
        (["emulator", "--api-key", "--port", "0"], "--api-key is followed by an option, not by a key"),
    ],
)
def test_an_option_given_where_a_value_was_due_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], args: list[str], refused: str
) -> None:
    env = {"BT_SYNC_DUCKDB": str(tmp_path / "w.duckdb"), "BT_SYNC_STATE_DIR": str(tmp_path / "state")}
    done = cli_in_process(capfd, *args, env=env)
    assert done.returncode == 2 and refused in done.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_projects_given_as_one_list_are_told_to_be_given_one_by_one(
    demo_emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # As `--objects` takes `logs,datasets`: "no project named or with id support-bot,rag-search", and the
    # remedy of a project deleted or renamed upstream.
    env = cli_env(demo_emulator, tmp_path)
    for listed in ("support-bot,rag-search", "support-bot, rag-search"):
        done = cli_in_process(capfd, "sync", "--project", listed, env=env)
        assert done.returncode == 2 and done.stderr.endswith(
            "; --project takes one project: give it once for each (--project support-bot "
            "--project rag-search)\n"
        ), done.stderr


def test_an_object_s_partition_key_given_as_project_is_told_to_name_its_project(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # As `status` and Dagster's partitions name objects; the message blamed a deletion or a rename upstream.
    for project, dataset in (("support-bot", "golden"), ("x/y", "z")):
        emulator.store.create_dataset(emulator.store.create_project(project)["id"], dataset)
    env = cli_env(emulator, tmp_path)
    for key, project in (("support-bot/golden", "support-bot"), ("x/y/z", "x/y")):
        done = cli_in_process(capfd, "sync", "--project", key, env=env)
        assert done.returncode == 2 and done.stderr.endswith(
            f"; {key!r} names an object of the project {project!r}, as `bt-sync status` and Dagster's "
            f"partitions do: --project takes a project (--project {project}, and --objects for the kinds)\n"
        ), done.stderr


def test_an_experiment_s_or_a_dataset_s_id_given_as_project_is_told_to_name_its_project(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = emulator.store.create_project("support-bot")
    experiment = emulator.store.create_experiment(project["id"], "baseline")
    dataset = emulator.store.create_dataset(project["id"], "golden")
    env = cli_env(emulator, tmp_path)
    for found, kind, option in ((experiment, "experiment", "experiments"), (dataset, "dataset", "datasets")):
        done = cli_in_process(capfd, "sync", "--project", found["id"], env=env)
        assert done.returncode == 2 and done.stderr == (
            f"bt-sync: error: no project named or with id {found['id']} (projects: support-bot); "
            f"{found['id']} is the id of the {kind} support-bot/{found['name']}: --project takes a project "
            f"(--project support-bot --objects {option})\n"
        ), done.stderr
    # An id of nothing is told what any unknown project is.
    done = cli_in_process(capfd, "sync", "--project", "00000000-0000-0000-0000-000000000000", env=env)
    assert done.returncode == 2 and "one deleted or renamed upstream is no longer listed" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["projects"],
            {"BT_SYNC_TIMEOUT_S": "soon"},
            "BT_SYNC_TIMEOUT_S: Input should be a valid number, unable to parse string as a number",
        ),
        (
            ["projects", "--timeout", "-1"],
            {"BT_SYNC_TIMEOUT_S": "soon"},
            "--timeout: Input should be greater",
        ),
        (["status"], {"BT_SYNC_DUCKDB_PATH": "/tmp/a*"}, "BT_SYNC_DUCKDB_PATH: the path /tmp/a* holds *"),
    ],
)
def test_an_invalid_setting_is_named_by_the_alias_that_gave_it(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    # Named by the flag the command line did not give (`--timeout`). Only these variables: the main
    # names (`BT_SYNC_TIMEOUT`) win over the aliases.
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "BRAINTRUST_API_KEY": "k"}
    done = subprocess.run([*CLI, *args], env=clean | env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith(f"bt-sync: error: invalid setting: {expected}")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("other_name", "meant_first"),
    [
        ("bt_sync_duckdb", False),
        ("bt_sync_duckdb", True),
        # The prefix and the field's name as written, which pydantic-settings read when told to match case
        # (and alone: BT_SYNC_DUCKDB wins over it).
        ("BT_SYNC_duckdb_path", None),
    ],
)
def test_a_variable_spelt_in_another_case_is_not_read_whichever_comes_first(
    demo_emulator: Emulator, tmp_path: Path, other_name: str, meant_first: bool | None
) -> None:
    # `bt_sync_duckdb`, left by an env-file loader, overrode BT_SYNC_DUCKDB when it came later in the
    # environment: a scheduled sync wrote another warehouse, exit 0.
    meant = {} if meant_first is None else {"BT_SYNC_DUCKDB": str(tmp_path / "meant.duckdb")}
    other = {other_name: str(tmp_path / "other.duckdb")}
    env = {
        **{
            name: value for name, value in os.environ.items() if not name.upper().startswith("BT_SYNC_DUCKDB")
        },
        "BRAINTRUST_API_URL": demo_emulator.url,
        "BRAINTRUST_API_KEY": demo_emulator.api_key,
        **(meant | other if meant_first else other | meant),
    }
    done = subprocess.run(
        [*CLI, "sync", "--objects", "prompts", "--parquet", str(tmp_path / "tables")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"bt-sync: warning: {other_name} is not read: variable names are case-sensitive, and bt-sync reads "
        f"{other_name.upper()}\n"
    )
    written = "meant.duckdb" if meant else "data/braintrust.duckdb"  # or the default
    assert [path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.duckdb")] == [written]


def test_status_lists_objects_renamed_since_their_sync_in_the_order_of_their_names_now(
    demo_emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    sync(demo_emulator, warehouse)
    (rag,) = demo_emulator.store.list_objects("project", ListQuery(name="rag-search"))
    demo_emulator.store.patch("project", rag["id"], {"name": "a-search"})
    sync(demo_emulator, warehouse, kinds=frozenset({"prompts"}))  # the catalog tables list the new name
    where = cli_warehouse_args(warehouse)[:4]
    table = cli_in_process(capfd, "status", *where).stdout
    logs = [line.split("│")[2].strip() for line in table.splitlines() if "│ project_logs" in line]
    assert logs == ["a-search", "doc-summarizer", "support-bot"]
    listed = json.loads(cli_in_process(capfd, "status", *where, "--json").stdout)
    (renamed,) = [s for s in listed if s["object_id"] == rag["id"]]
    # `name` as sync_state keeps it (the last sync of the object was before the rename), the key as now.
    assert (renamed["name"], renamed["partition_key"]) == ("rag-search", "a-search")


def folded_rows(table: str, leading: int) -> list[list[str]]:
    """The rows of a table as printed, each cell folded onto more lines joined again; a row starts on the
    line whose column `leading` is filled."""
    rows: list[list[str]] = []
    body = table.split("┡", 1)[1].split("└", 1)[0].splitlines()[1:]  # below the header, above the bottom
    for cells in ([cell.strip() for cell in line.split("│")[1:-1]] for line in body):
        if cells[leading]:
            rows.append(cells)
        else:  # the folded rest of the row above
            rows[-1] = [f"{a}{b}" for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def test_the_sync_summary_shows_long_object_names_whole(
    emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    # Two names differing at their ends, past the table's width: both were cut to the same `xxx…`.
    project = emulator.store.create_project("p")
    names = ["x" * 149 + end for end in "yz"]
    for name in names:
        dataset = emulator.store.create_dataset(project["id"], name)
        emulator.store.insert("dataset", dataset["id"], [{"id": "r", "input": 1}])
    table = cli_in_process(
        capfd, "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", "datasets",
        env={"BRAINTRUST_API_KEY": emulator.api_key},
    ).stdout  # fmt: skip
    rows = folded_rows(table, leading=0)  # a row's table starts it
    assert sorted(row[1] for row in rows) == [f"p/{name}" for name in names]
    assert "…" not in table and max(map(len, table.splitlines())) <= PIPE_WIDTH


@pytest.mark.parametrize("command", ["sync", "projects"])
def test_a_narrow_terminal_folds_counts_and_names_rather_than_cut_them(
    emulator: Emulator,
    warehouse: WarehouseSettings,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    # At 60 columns the sync's counts showed as `30…` and `projects`' names as `golden-questi…`.
    project = emulator.store.create_project("support-bot")
    dataset = emulator.store.create_dataset(project["id"], "golden-questions-for-review")
    emulator.store.insert(
        "dataset", dataset["id"], [{"id": f"r{n}", "input": n} for n in range(123_456 % 1_000)]
    )
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    where = [*cli_warehouse_args(warehouse), "--objects", "datasets"] if command == "sync" else []
    shown = cli_in_process(
        capfd, command, "--api-url", emulator.url, *where, env={"BRAINTRUST_API_KEY": emulator.api_key}
    ).stdout
    table = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # a terminal's styles
    assert "…" not in table and max(map(len, table.splitlines())) <= 60
    # One row, each of its cells joined again from the lines it folded onto.
    lines = [line.split("│")[1:-1] for line in table.split("┡", 1)[1].split("└", 1)[0].splitlines()[1:]]
    row = ["".join(cell.strip() for cell in column) for column in zip(*lines, strict=True)]
    if command == "sync":
        assert row[:2] == ["dataset_records", "support-bot/golden-questions-for-review"]
        assert row[4:6] == ["456", "456"], row  # row versions fetched, inserted
    else:
        assert (row[0], row[3]) == ("support-bot", "golden-questions-for-review")


def test_the_sync_summary_names_objects_whose_names_read_alike_by_their_keys(
    emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    # `x/y`'s experiment `z` and `x`'s `y/z`: both shown as `x/y/z`, where `status` names them apart.
    made = [
        emulator.store.create_experiment(emulator.store.create_project(project)["id"], name)
        for project, name in (("x/y", "z"), ("x", "y/z"))
    ]
    for experiment in made:
        emulator.store.insert("experiment", experiment["id"], [{"id": "r", "input": 1}])
    failing = made[0]["id"]
    emulator.faults.add(FaultRule(kind="status", status=400, route=f"{failing}/fetch", times=None))
    done = cli_in_process(
        capfd, "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", "experiments",
        env={"BRAINTRUST_API_KEY": emulator.api_key},
    )  # fmt: skip
    shown = sorted(row[1] for row in folded_rows(done.stdout, leading=0))
    assert shown == sorted(f"x/y/z~{experiment['id']}" for experiment in made)
    # The failure's line too.
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"bt-sync: error: 1 of 2 objects failed (experiment_events 'x/y/z~{failing}': "
    )
    # The summary's last line, which a log of stdout alone keeps: it said "synced …" and no more.
    last = done.stdout.rstrip().splitlines()[-1]
    assert last.startswith("synced 2 projects, 2 experiments in ") and last.endswith(
        "; 1 of 2 objects failed (not synced)"
    )


@pytest.mark.parametrize("as_json", [False, True])
def test_a_sync_whose_objects_fail_each_for_its_own_reason_ends_with_a_bounded_line(
    emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str], as_json: bool
) -> None:
    # Each reason names its object's URL, so none was said once for many: 301 objects made a 38 KB line,
    # and a name of 5,000 characters was in it whole.
    project = emulator.store.create_project("p")
    long_name = "n" * 5_000
    for name in [long_name, *(f"e{n}" for n in range(6))]:
        experiment = emulator.store.create_experiment(project["id"], name)
        emulator.store.insert("experiment", experiment["id"], [{"id": "r", "input": 1}])
    emulator.faults.add(FaultRule(kind="status", status=400, route="/fetch", times=None))
    done = cli_in_process(
        capfd, "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", "experiments",
        *(["--json"] if as_json else []), env={"BRAINTRUST_API_KEY": emulator.api_key},
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("bt-sync: error: 7 of 7 objects failed (experiment_events ")
    where = "the JSON summary's `error`" if as_json else "the table above"
    assert line.endswith(f"; and 4 more objects: {where} gives each one's reason)")
    assert line.count("was rejected (HTTP 400)") == 3
    assert long_name not in line and len(line) < 1_000
    if as_json:
        errors = [o["error"] for o in json.loads(done.stdout)["objects"]]
        assert len(errors) == 7 and all("was rejected (HTTP 400)" in error for error in errors)


def test_a_failed_sync_s_line_gives_first_the_reason_of_the_most_objects(
    emulator: Emulator, warehouse: WarehouseSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    # Three objects' own failures, then the API down for the others: the line named the three alone.
    project = emulator.store.create_project("p")
    for n in range(9):
        experiment = emulator.store.create_experiment(project["id"], f"e{n}")
        emulator.store.insert("experiment", experiment["id"], [{"id": "r", "input": 1}])
    emulator.faults.add(FaultRule(kind="status", status=400, route="/fetch", times=3))
    emulator.faults.add(FaultRule(kind="status", status=503, route="/fetch", times=None))
    done = cli_in_process(
        capfd, "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", "experiments",
        env={"BRAINTRUST_API_KEY": emulator.api_key, "BT_SYNC_MAX_ATTEMPTS": "1"},
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    first = line.removeprefix("bt-sync: error: 9 of 9 objects failed (experiment_events ")
    assert re.match(r"'p/e\d' and 3 more: not tried: the API was unavailable", first), line


@pytest.mark.parametrize("terminal_columns", [None, 70])
def test_status_shows_each_key_id_and_time_whole(
    demo_emulator: Emulator,
    warehouse: WarehouseSettings,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    terminal_columns: int | None,
) -> None:
    # Written to a file or a pipe (whatever `COLUMNS` a process inherited), the table was cut to 140
    # columns, its keys and ids ending in `…`; on a terminal narrower than them, they fold onto more lines.
    monkeypatch.setenv("COLUMNS", str(terminal_columns or 80))
    if terminal_columns is not None:
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    sync(demo_emulator, warehouse)
    where = cli_warehouse_args(warehouse)[:4]
    table = re.sub(
        r"\x1b\[[0-9;]*m", "", cli_in_process(capfd, "status", *where).stdout
    )  # a terminal's styles
    rows = folded_rows(table, leading=3)  # a row's count of rows starts it
    shown = {(key, object_id, time) for _, key, object_id, _, _, _, time in rows}
    listed = json.loads(cli_in_process(capfd, "status", *where, "--json").stdout)
    assert len(rows) == len(listed) >= 7 and "…" not in table
    assert shown == {
        (
            s["partition_key"],
            s["object_id"],
            datetime.fromisoformat(s["synced_at"]).isoformat(timespec="seconds"),
        )
        for s in listed
    }
    assert max(map(len, table.splitlines())) <= (terminal_columns or PIPE_WIDTH)


def test_status_and_maintain_of_a_place_nothing_was_synced_into_say_so(tmp_path: Path) -> None:
    nowhere = ("--duckdb", str(tmp_path / "none.duckdb"), "--parquet", str(tmp_path / "none"), "--json")
    note = (
        f"bt-sync: note: no object was synced into {tmp_path}/none.duckdb (tables in {tmp_path}/none) yet: "
        "run `bt-sync sync` first, or give this command the sync's warehouse settings "
        "(--duckdb / --parquet, or the iceberg ones)\n"
    )
    # A DuckDB warehouse reads no Iceberg setting: a leftover empty one is no error.
    done = run_cli("status", *nowhere, env={"BT_SYNC_ICEBERG_NAMESPACE": ""})
    assert (done.returncode, json.loads(done.stdout)) == (0, [])
    assert done.stderr == note
    # A path that starts with `--`, given with `=`: the value, not a flag given after an empty one.
    done = run_cli("status", "--duckdb=--w.duckdb", "--no-parquet", "--json", cwd=tmp_path)
    assert (done.returncode, json.loads(done.stdout)) == (0, [])
    assert done.stderr.startswith("bt-sync: note: no object was synced into --w.duckdb (tables in ")
    # `maintain` said only "maintained 11 tables", of a warehouse that does not exist.
    done = run_cli("maintain", *nowhere)
    maintained = json.loads(done.stdout)
    assert (done.returncode, maintained["tables"], maintained["files_deleted"], done.stderr) == (
        0,
        0,
        0,
        note,
    )
    # In words, what the Parquet tree does: it said "0 snapshots expired, 0 small files merged into 0" too.
    done = run_cli("maintain", *nowhere[:-1])
    assert done.stdout == "maintained 0 tables: 0 files no longer needed deleted (0 bytes)\n"
    # A retention given for a destination that has none: its "files_deleted": 0 said nothing of why.
    done = run_cli("maintain", *nowhere, "--retain-hours", "0")
    assert (done.returncode, done.stderr) == (
        0,
        "bt-sync: warning: --retain-hours is for Iceberg: the Parquet tree deletes the versions it replaced "
        "an hour after, whatever it says\n" + note,
    )
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("destination", ["duckdb", "iceberg"])
def test_status_of_a_warehouse_whose_syncs_synced_no_object_says_so_not_that_no_sync_ran_there(
    demo_emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str], destination: str
) -> None:
    # It told the user to run `bt-sync sync`, or that the settings were not the sync's, after a sync given
    # exactly these settings.
    warehouse = iceberg_in(tmp_path, "w") if destination == "iceberg" else warehouse_in(tmp_path, "w")
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    where = cli_warehouse_args(warehouse)
    synced = cli_in_process(
        capfd, "sync", "--api-url", demo_emulator.url, *where, "--objects", "prompts", env=env
    )
    assert synced.returncode == 0, synced.stderr
    done = cli_in_process(capfd, "status", *where[:-2], "--json")  # all but `--state-dir`
    assert (done.returncode, json.loads(done.stdout)) == (0, [])
    assert done.stderr.startswith("bt-sync: note: no log, experiment or dataset was synced into ")
    assert done.stderr.endswith(
        " yet: the syncs there found none (no project), synced catalog kinds only (--objects prompts, say) "
        "or failed (their errors say why)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--state-dir", ""],
        ["sync", "--duckdb", " "],
        ["sql", "--duckdb", "", "SELECT 1"],
        ["status", "--duckdb", ""],
        ["maintain", "--state-dir", ""],
        ["emulator", "--state", "", "--port", "0"],
        ["demo", "--duckdb", ""],
        ["push", "{file}", "--project", "p", "--dataset", "d", "--state-dir", ""],
        ["push", "{file}", "--project", "p", "--dataset", "d", "--on-error", "skip", "--rejects", ""],
        ["push", "--sql-file", "", "--project", "p", "--dataset", "d"],
    ],
)
def test_an_empty_path_flag_is_refused_not_taken_for_the_current_directory(
    tmp_path: Path, args: list[str]
) -> None:
    # What `--state-dir "$DIR"` gives with `DIR` unset: the command's own directory would take the files.
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "input": 1}\n')
    flag = next(args[at - 1] for at, arg in enumerate(args) if not arg.strip())
    done = run_cli(
        *(arg.replace("{file}", "rows.jsonl") for arg in args),
        env={"BRAINTRUST_API_KEY": "key", "BRAINTRUST_API_URL": "http://127.0.0.1:9"},
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"bt-sync: error: invalid setting: {flag}: is empty: give a path"
    assert [path.name for path in tmp_path.iterdir()] == ["rows.jsonl"]


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "BT_SYNC_DUCKDB",
            "w.duckdb\n",
            "ends with a line break: give the path without it (a value read from",
        ),
        ("BT_SYNC_PARQUET", "pq\r\n", "ends with a line break"),
        ("BT_SYNC_STATE_DIR", "st ", "ends with a blank (U+0020): give the path without it"),
        ("BT_SYNC_PARQUET", "\tpq", "starts with a blank (U+0009)"),
        ("BRAINTRUST_API_URL", "http://127.0.0.1:9\n", "ends with a line break: give the URL without it"),
        ("BRAINTRUST_API_URL", "", "is empty: give the API's URL"),
        ("BT_SYNC_ICEBERG_WAREHOUSE", "iw\n", "ends with a line break: give the URI or path without it"),
        ("BT_SYNC_ICEBERG_CATALOG", "sqlite:///c.db\n", "ends with a line break"),
    ],
)
def test_a_setting_read_from_a_files_last_line_is_refused_naming_its_blank(
    tmp_path: Path, variable: str, value: str, said: str
) -> None:
    # A Kubernetes secret's or an env file's value: the paths made `w.duckdb\n` and `pq\n` beside the ones
    # meant, exit 0, where no later command looked; the URL's line break was called "a space", an empty URL
    # "0 characters with no host's dot".
    env = {"BRAINTRUST_API_KEY": "key", variable: value}
    done = run_cli("sync", "--json", env=env, cwd=tmp_path, timeout=30)
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["error"].startswith(f"invalid setting: {variable}: {said}")
    assert list(tmp_path.iterdir()) == []


def test_no_parquet_wins_over_an_empty_parquet_variable(tmp_path: Path) -> None:
    # "BT_SYNC_PARQUET: is empty: give a path (or --no-parquet)", to a command given --no-parquet.
    env = {"BT_SYNC_PARQUET": "", "BT_SYNC_DESTINATION": "duckdb\n"}  # the name read from a file, too
    done = run_cli(
        "status", "--duckdb", "w.duckdb", "--no-parquet", "--json", env=env, cwd=tmp_path, timeout=30
    )
    assert (done.returncode, json.loads(done.stdout)) == (0, []), done.stderr


def test_a_storage_uri_s_scheme_is_taken_in_any_case_and_a_file_uri_names_this_machine() -> None:
    # pyarrow knows `s3` alone: `S3://b/x` failed every command with "Unrecognized filesystem type";
    # `file://localhost/x` was written into `./localhost/x`. HDFS takes its host from its settings.
    settings = WarehouseSettings(parquet_root="S3://b/x", iceberg_warehouse="GS://b/wh")
    assert (settings.parquet_root, settings.iceberg_warehouse) == ("s3://b/x", "gs://b/wh")
    settings = WarehouseSettings(parquet_root="file://localhost/srv/bt", iceberg_warehouse="hdfs:///wh")
    assert (settings.parquet_root, settings.iceberg_warehouse) == ("file:///srv/bt", "hdfs:///wh")
    with pytest.raises(
        ValueError, match="'file://nas/bt' names another machine: a file URI names this one's"
    ):
        WarehouseSettings(parquet_root="file://nas/bt")


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_output_holds_the_error_of_a_flag_given_before_or_after_it(tmp_path: Path, where: str) -> None:
    flags = ["--state-dir", "", "--json"] if where == "after" else ["--json", "--state-dir", ""]
    done = run_cli("sync", *flags, env={"BRAINTRUST_API_KEY": "key"}, cwd=tmp_path, timeout=30)
    assert (done.returncode, json.loads(done.stdout)) == (
        2,
        {"error": "invalid setting: --state-dir: is empty: give a path", "exit_code": 2},
    )


def test_a_sync_into_a_duckdb_file_showing_another_parquet_root_is_refused(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    env = {"BRAINTRUST_API_URL": demo_emulator.url, "BRAINTRUST_API_KEY": demo_emulator.api_key}
    views = tmp_path / "w.duckdb"
    first = run_cli(
        "sync", "--duckdb", str(views), "--parquet", str(tmp_path / "a"), "--objects", "logs", env=env
    )
    assert first.returncode == 0, first.stderr
    analysts = WarehouseSettings(duckdb_path=views, parquet_root=str(tmp_path / "a"))
    before = query(analysts, "SELECT count(*) FROM project_logs")
    commands = (["sync", "--objects", "datasets"], ["status"], ["sql", "SELECT count(*) FROM project_logs"])
    for elsewhere in (["--no-parquet"], ["--parquet", str(tmp_path / "b")]):
        for command in commands:
            # A query or a status would answer from the other root's tables: none, or another warehouse's.
            done = run_cli(*command, "--duckdb", str(views), *elsewhere, env=env)
            # Exit 2, as a setting given wrong: the root it shows was not named.
            assert (done.returncode, done.stdout) == (2, ""), command
            shows = f"{views} shows the tables of another Parquet root, {tmp_path / 'a'}, not "
            assert shows in one_line(done.stderr)
        with duckdb.connect(str(views), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM project_logs").fetchall() == before
    assert not (tmp_path / "b").exists()
    assert not Path(f"{views}.tables").exists()
    # A root whose path holds a quote, which the views' SQL doubles: only what followed it was named.
    quoted, elsewhere_dir = tmp_path / "it's here", tmp_path / "other"
    quoted_views = tmp_path / "q.duckdb"
    synced = run_cli(
        "sync", "--duckdb", str(quoted_views), "--parquet", str(quoted), "--objects", "prompts", env=env
    )
    assert synced.returncode == 0, synced.stderr
    done = run_cli("status", "--duckdb", str(quoted_views), "--parquet", str(elsewhere_dir), env=env)
    assert f"another Parquet root, {quoted}, not {elsewhere_dir}" in one_line(done.stderr)
    # The other way: synced with --no-parquet, then given a root.
    beside = tmp_path / "beside.duckdb"
    assert (
        run_cli("sync", "--duckdb", str(beside), "--no-parquet", "--objects", "prompts", env=env).returncode
        == 0
    )
    done = run_cli("status", "--duckdb", str(beside), "--parquet", str(tmp_path / "a"), env=env)
    assert f"another Parquet root, {beside}.tables (where --no-parquet keeps them), not" in one_line(
        done.stderr
    )
    # Moved with its tables beside its old name: "give the --parquet (or --no-parquet) it was synced with"
    # named none that works.
    moved = beside.rename(tmp_path / "moved.duckdb")
    done = run_cli("status", "--duckdb", str(moved), "--no-parquet", env=env)
    assert f"give --parquet {beside}.tables to use them, or another --duckdb file" in one_line(done.stderr)
    done = run_cli("status", "--duckdb", str(moved), "--parquet", f"{beside}.tables", env=env)
    assert done.returncode == 0, done.stderr


def test_unprefixed_settings_change_nothing(demo_emulator: Emulator, warehouse: WarehouseSettings) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key, "TIMEOUT_S": "0.000001", "MAX_ATTEMPTS": "0"}
    done = run_cli("sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), "--json", env=env)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def slow_project(emulator: Emulator) -> str:
    """The id of a project with 20 log rows, whose first fetch takes a second to answer."""
    project_id: str = emulator.store.create_project("slow")["id"]
    emulator.store.generate_logs(project_id, 20, update_fraction=0.0, rng_seed=1)
    emulator.faults.add(FaultRule(kind="slow", delay_s=1.0, route=f"{project_id}/fetch"))
    return project_id


@pytest.mark.parametrize(
    ("env", "flags", "times_out"),
    [
        ({"BT_SYNC_TIMEOUT": "0.3"}, [], True),
        ({}, ["--timeout", "0.3"], True),
        ({"BT_SYNC_TIMEOUT": "5"}, [], False),
        ({"BT_SYNC_TIMEOUT": "0.3"}, ["--timeout", "5"], False),  # the flag outranks the environment
    ],
)
def test_the_timeout_setting_bounds_each_response(
    emulator: Emulator,
    slow_project: str,
    warehouse: WarehouseSettings,
    capfd: pytest.CaptureFixture[str],
    env: dict[str, str],
    flags: list[str],
    times_out: bool,
) -> None:
    settings = {"BRAINTRUST_API_KEY": emulator.api_key, "BT_SYNC_MAX_ATTEMPTS": "1"} | env
    # In this process: which setting wins is the command's own reading; the next test sees a timeout
    # printed by a new process.
    done = cli_in_process(
        capfd, "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", "logs", *flags,
        env=settings,
    )  # fmt: skip
    if times_out:
        # The API timing out is transient: the run stops (to be retried later) with one line naming the call.
        assert done.returncode == 1
        (line,) = done.stderr.strip().splitlines()
        assert f"/v1/project_logs/{slow_project}/fetch failed after 1 attempt (" in line, line
        assert "ReadTimeout: timed out" in line, line
        assert not warehouse.duckdb_path.exists() or not query(warehouse, "SELECT * FROM project_logs")
    else:
        assert done.returncode == 0, done.stderr
        assert query(warehouse, "SELECT project_id, count(*) FROM project_logs GROUP BY ALL") == [
            (slow_project, 20)
        ]


@pytest.mark.parametrize(
    ("command", "route"),
    [
        (["projects"], "/v1/project"),
        (["push", "{file}", "--project", "p", "--dataset", "d", "--state-dir", "{state}"], "/v1/project"),
    ],
)
def test_every_command_that_calls_the_api_takes_the_timeout_flag_and_debug_after_it(
    emulator: Emulator, tmp_path: Path, command: list[str], route: str
) -> None:
    emulator.faults.add(FaultRule(kind="slow", delay_s=1.0, route=f"^{route}$", method="GET"))
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "r1", "input": "q"}\n')
    done = run_cli(
        *(part.format(file=data, state=tmp_path / "state") for part in command),
        "--api-url", emulator.url, "--timeout", "0.3", "--debug",
        env={"BRAINTRUST_API_KEY": emulator.api_key, "BT_SYNC_MAX_ATTEMPTS": "1"},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"GET {route} failed after 1 attempt (last error: ReadTimeout" in done.stderr
    assert "Traceback" in done.stderr  # --debug, given after the command


@pytest.mark.parametrize("attempts", [2, 3])
def test_the_max_attempts_setting_counts_the_requests_on_a_retryable_status(
    emulator: Emulator, warehouse: WarehouseSettings, attempts: int
) -> None:
    project = emulator.store.create_project("unavailable")
    emulator.store.generate_logs(project["id"], 5, update_fraction=0.0, rng_seed=1)
    emulator.faults.add(FaultRule(kind="status", status=503, route="/fetch", times=None))
    env = {"BRAINTRUST_API_KEY": emulator.api_key, "BT_SYNC_MAX_ATTEMPTS": str(attempts)}
    done = run_cli(
        "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse), "--objects", "logs", env=env
    )
    fetches = sum(n for (_, route), n in emulator.stats.requests.items() if route == "project_logs.fetch")
    assert done.returncode == 1
    assert fetches == attempts
    assert f"failed after {attempts} attempts (last answer HTTP 503)" in done.stderr


@pytest.mark.parametrize(("users_setting", "decay_ms"), [(None, -1), ("dirty_decay_ms:2000", 2000)])
def test_a_sync_keeps_duckdb_s_freed_memory_unless_the_user_says_otherwise(
    demo_emulator: Emulator, warehouse: WarehouseSettings, users_setting: str | None, decay_ms: int
) -> None:
    env = os.environ | {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    env.pop("DUCKDB_JE_MALLOC_CONF", None)
    if users_setting is not None:
        env["DUCKDB_JE_MALLOC_CONF"] = users_setting
    command = [sys.executable, "-c", ALLOCATOR_PROBE, "sync", "--api-url", demo_emulator.url]
    command += [*cli_warehouse_args(warehouse), "--objects", "logs"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert query(warehouse, "SELECT count(*) FROM project_logs")[0][0] > 0
    # Set too late (after DuckDB loaded), the allocator would report its default, 1000 ms.
    assert int(done.stderr.splitlines()[-1]) == decay_ms


def test_json_output_is_one_document_the_summary_or_the_error(
    demo_emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path
) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key}
    project = demo_emulator.store.list_objects("project", ListQuery())[0]
    # One object the API refuses: the others sync, and the summary says which failed.
    demo_emulator.faults.add(FaultRule(kind="status", status=400, route=f"{project['id']}/fetch", times=None))
    partial = run_cli(
        "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), "--json", env=env
    )
    summary = json.loads(partial.stdout)
    assert partial.returncode == 1
    assert [o["status"] for o in summary["objects"]].count("failed") == 1
    # A failure before any summary: the error, as the scheduler's one document, and on stderr as ever.
    refused = run_cli(
        "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), "--json",
        env={"BRAINTRUST_API_KEY": "wrong"},
    )  # fmt: skip
    (line,) = refused.stderr.splitlines()
    assert json.loads(refused.stdout) == {"error": line.removeprefix("bt-sync: error: "), "exit_code": 1}
    assert "API key" in line or "401" in line, line
    bad = tmp_path / "bad.csv"
    bad.write_text("id,input\n,a\n")
    pushed = run_cli(
        "push", str(bad), "--project", "p", "--dataset", "d", "--id-column", "id", "--dry-run", "--json",
        "--state-dir", str(tmp_path / "push-state"),
    )  # fmt: skip
    assert (pushed.returncode, json.loads(pushed.stdout)) == (
        1,
        {
            "error": 'bad.csv row 1, column "id": empty id; every row needs a value in the id column',
            "exit_code": 1,
        },
    )


# A command of this test's own ending as a DuckDB statement ends when Ctrl-C reaches DuckDB itself (as
# when a sync stages a page): with DuckDB's own error, a plain RuntimeError, not KeyboardInterrupt.
INTERRUPTED_IN_DUCKDB = """
import sys
from connector.cli import app, run
from connector.cli.options import JsonOption

@app.command("stopped")
def stopped(as_json: bool = JsonOption) -> None:
    raise RuntimeError("Query interrupted")

sys.argv = ["bt-sync", "stopped", "--json"]
run()
"""


# Ctrl-C arriving while a finalizer runs, where Python discards exceptions ("Exception ignored in"),
# then a command that would finish with its summary.
INTERRUPTED_IN_A_FINALIZER = """
import gc, os, signal, sys, time
from connector.cli import app, run
from connector.cli.options import JsonOption

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # Python runs the handler between these steps: here, inside __del__
            pass

@app.command("finishes")
def finishes(as_json: bool = JsonOption) -> None:
    Finalized()
    gc.collect()
    time.sleep(3)  # the work that went on after the interrupt was swallowed
    print("finished")

sys.argv = ["bt-sync", "finishes", "--json"]
run()
"""


@pytest.mark.parametrize(
    "script", [INTERRUPTED_IN_DUCKDB, INTERRUPTED_IN_A_FINALIZER], ids=["caught by DuckDB", "in a finalizer"]
)
def test_ctrl_c_caught_by_duckdb_or_landing_in_a_finalizer_is_an_interruption(script: str) -> None:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    # In a finalizer, the command ran to its end and exited 0, after "Exception ignored in: ... __del__".
    assert (done.returncode, done.stderr) == (130, b"bt-sync: interrupted\n")
    assert json.loads(done.stdout) == {"error": "interrupted", "exit_code": 130}


# The console script, with Ctrl-C or SIGTERM arriving while the command line loads (as typer is imported).
INTERRUPTED_WHILE_LOADING = """
import builtins, os, sys
real_import = builtins.__import__

def importing(name, *args, **kwargs):
    if name == "typer":
        builtins.__import__ = real_import
        if os.environ["STOP"] == "SIGTERM":
            os.kill(os.getpid(), 15)  # SIGTERM: it killed the process silently
        else:
            raise KeyboardInterrupt
    return real_import(name, *args, **kwargs)

builtins.__import__ = importing
sys.argv = ["bt-sync", *sys.argv[1:]]
from connector.console import run
run()
"""


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_while_the_command_line_loads_is_an_interruption_not_a_traceback(
    as_json: bool, stop: str
) -> None:
    arguments = ["status", *(["--json"] if as_json else [])]
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_LOADING, *arguments],
        capture_output=True,
        timeout=60,
        env={**os.environ, "STOP": stop},
    )
    assert (done.returncode, done.stderr) == (130, b"bt-sync: interrupted\n")
    assert (json.loads(done.stdout) if as_json else done.stdout) == (
        {"error": "interrupted", "exit_code": 130} if as_json else b""
    )


def test_a_query_in_an_ascii_locale_is_read_as_the_utf8_it_is(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    # `LC_ALL=C` without Python's UTF-8 mode (a cron job's environment): Python hands every byte beyond
    # ASCII over escaped, and the query was refused as "not UTF-8 text".
    sync(demo_emulator, warehouse)
    ascii_locale = {"PATH": os.environ["PATH"], "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    command = [*CLI, "sql", *cli_warehouse_args(warehouse)[:4], "--format", "csv"]
    done = subprocess.run([*command, "SELECT 'é✓' AS x"], env=ascii_locale, capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "x\né✓\n".encode()), done.stderr
    # A push's query and dataset name too (the query ran, then its checkpoint failed: a traceback).
    push = [*CLI, "push", "--sql", "SELECT 'é' AS input", *cli_warehouse_args(warehouse), "--json"]
    api = {"BRAINTRUST_API_URL": demo_emulator.url, "BRAINTRUST_API_KEY": demo_emulator.api_key}
    done = subprocess.run(
        [*push, "--project", "p", "--dataset", "é✓"], env=ascii_locale | api, capture_output=True, timeout=60
    )
    assert (done.returncode, json.loads(done.stdout)["dataset"]) == (0, "é✓"), done.stderr
    (dataset,) = demo_emulator.store.list_objects("dataset", ListQuery(name="é✓"))
    assert [row["input"] for row in demo_emulator.store.live_rows("dataset", dataset["id"])] == ["é"]
    # A project's name to sync, and a column a push maps: "no project named" one the listing showed.
    project = demo_emulator.store.create_project("pé")
    demo_emulator.store.insert("project_logs", project["id"], [{"id": "r", "input": 1}])
    synced = [*CLI, "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse), "--json"]
    done = subprocess.run(
        [*synced, "--project", "pé", "--objects", "logs"],
        env=ascii_locale | api,
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, [o["name"] for o in json.loads(done.stdout)["objects"]]) == (0, ["pé"]), (
        done.stderr
    )
    columns = warehouse.state_dir.parent / "columns.csv"
    columns.write_text("id,é\n1,hello\n")
    mapped = [*CLI, "push", str(columns), "--project", "p", "--dataset", "d", "--input", "é", "--dry-run"]
    done = subprocess.run(mapped, env=ascii_locale, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # A path's bytes cannot be read so (files are opened by them): the locale is blamed, not the name
    # ("the name is not valid UTF-8; rename it").
    file = [*CLI, "push", "uni ☃.jsonl", "--project", "p", "--dataset", "d", "--dry-run"]
    done = subprocess.run(
        file, env=ascii_locale, capture_output=True, timeout=60, cwd=warehouse.state_dir.parent
    )
    assert (
        done.returncode == 2
        and b"its bytes are UTF-8, which this process's locale does not read" in done.stderr
    )
    # Bytes that are not UTF-8 are still refused.
    done = subprocess.run([*command, b"SELECT '\xff'"], env=ascii_locale, capture_output=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        1,
        b"bt-sync: error: the query is not UTF-8 text (at character 9)\n",
    )


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_stdout_that_is_not_utf8_shows_what_it_cannot_hold_escaped(
    emulator: Emulator, warehouse: WarehouseSettings, encoding: str
) -> None:
    # A traceback, exit 1, once the sync had committed (a scheduler alerting on a run that succeeded); the
    # `--json` document under latin-1 too, and an error's document under ascii.
    project = emulator.store.create_project("Prøject ☃")
    emulator.store.insert("project_logs", project["id"], [{"id": "r", "input": 1}])
    env = os.environ | {"PYTHONIOENCODING": encoding, "BRAINTRUST_API_KEY": emulator.api_key}
    sync_command = [*CLI, "sync", "--api-url", emulator.url, *cli_warehouse_args(warehouse)]
    done = subprocess.run(sync_command, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"Pr\\xf8ject \\u2603" in done.stdout or b"Pr\xf8ject \\u2603" in done.stdout
    done = subprocess.run([*sync_command, "--json"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stdout.isascii(), done.stderr
    assert json.loads(done.stdout)["objects"][0]["name"] == "Prøject ☃"
    missing = [*CLI, "push", "nö.jsonl", "--project", "p", "--dataset", "d", "--json"]
    done = subprocess.run(missing, env=env, capture_output=True, timeout=60)
    assert (done.returncode, json.loads(done.stdout)["error"]) == (1, "nö.jsonl: no such file"), done.stderr


@pytest.mark.parametrize("output", ["csv", "json", "table"])
def test_bt_sync_sql_stops_quietly_when_its_reader_closes_the_pipe(
    demo_emulator: Emulator, warehouse: WarehouseSettings, output: str
) -> None:
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))  # the table queried
    # Far more than a pipe holds (0.6-1.1 MB, where it holds 64 KiB), so the writes go on after the reader
    # has gone (`bt-sync sql … | head`). Not every column: rich took 7 s to lay out a table of them all.
    many = "SELECT id, input, output FROM project_logs, range(3)"
    querying = subprocess.Popen(
        [*CLI, "sql", "--format", output, *cli_warehouse_args(warehouse)[:4], many],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert querying.stdout is not None and querying.stderr is not None
    try:
        assert querying.stdout.readline()
        querying.stdout.close()
        querying.wait(timeout=60)
        err = querying.stderr.read()
    finally:
        querying.kill()
    # Click's own handling exited 1, silently.
    assert (querying.returncode, err) == (0, b"")


def test_a_table_printed_to_a_reader_that_left_shows_no_empty_error(
    demo_emulator: Emulator, warehouse: WarehouseSettings
) -> None:
    sync(demo_emulator, warehouse)
    listing = subprocess.Popen(
        [*CLI, "status", *cli_warehouse_args(warehouse)[:4]], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert listing.stdout is not None
    listing.stdout.close()  # long before the command prints
    try:
        _, err = listing.communicate(timeout=60)
    finally:
        listing.kill()
    # `sql`'s quiet stop, given to every command's table, printed "bt-sync: error: " and nothing else.
    assert err == b""


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["sync", "--json"], ["sync"]])
def test_a_command_whose_reader_left_ends_as_it_would_have(
    demo_emulator: Emulator, warehouse: WarehouseSettings, tmp_path: Path, command: list[str]
) -> None:
    # The logs only, the table whose new row the sync commits: all seven objects took a second more.
    sync(demo_emulator, warehouse, kinds=frozenset({"logs"}))
    (project,) = demo_emulator.store.list_objects("project", ListQuery(name="support-bot"))
    demo_emulator.store.insert("project_logs", project["id"], [{"id": "new"}])
    reader, writer = os.pipe()
    os.close(reader)  # `bt-sync sync | head -c 10`, the reader gone before the summary
    try:
        done = subprocess.run(
            [
                *CLI,
                *command,
                *(["--objects", "logs"] if command[0] == "sync" else []),
                *cli_warehouse_args(warehouse)[: 6 if command[0] == "sync" else 4],
            ],
            env={**os.environ, **cli_env(demo_emulator, tmp_path)},
            stdout=writer,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(writer)
    # Click and rich exited 1, saying nothing; the sync had committed.
    assert (done.returncode, done.stderr) == (0, b"")
    if command[0] == "sync":
        assert query(warehouse, "SELECT count(*) FROM project_logs WHERE id = 'new'") == [(1,)]


def test_a_duckdb_file_named_through_a_link_is_written_where_the_link_points(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "disk").mkdir()
    link = tmp_path / "w.duckdb"
    link.symlink_to(tmp_path / "disk" / "target.duckdb")  # the file is not there yet
    env = cli_env(demo_emulator, tmp_path) | {"BT_SYNC_DUCKDB": str(link)}
    assert run_cli("sync", "--objects", "logs", env=env).returncode == 0
    # Written in full and renamed over the link, the file replaced it: the other disk stayed empty.
    assert link.is_symlink() and (tmp_path / "disk" / "target.duckdb").is_file()
    done = run_cli("sql", "--duckdb", str(link), "SELECT count(*) > 0 AS synced FROM project_logs", env=env)
    assert done.stdout == "synced\ntrue\n"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for looping in (loop, loop / "w.duckdb"):  # in the file's name, or in a directory's
        tables = tmp_path / "looped"
        done = run_cli(
            "sync", "--objects", "logs", "--parquet", str(tables), env=env | {"BT_SYNC_DUCKDB": str(looping)}
        )
        refused = (
            f"bt-sync: error: BT_SYNC_DUCKDB {looping} leads into a loop of symbolic links: name a file\n"
        )
        # Refused once the tables' directory was written, exit 1: `sql` then read it as an empty warehouse.
        assert (done.returncode, done.stderr, tables.exists()) == (2, refused, False)
        assert loop.is_symlink()
    # As the tables' directory: a traceback.
    done = run_cli("status", "--duckdb", str(tmp_path / "w2.duckdb"), "--parquet", str(loop), env=env)
    assert (done.returncode, done.stderr) == (
        2,
        f"bt-sync: error: the tables' directory {loop} leads into a loop of symbolic links: name a "
        "directory\n",
    )


def test_a_duckdb_file_holding_a_table_of_its_own_is_refused_before_the_tables_are_written(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    mine, tables = tmp_path / "mine.duckdb", tmp_path / "tables"
    with duckdb.connect(str(mine)) as con:
        con.execute("CREATE TABLE notes AS SELECT 1 AS x")
    env = cli_env(demo_emulator, tmp_path)
    paths = ("--duckdb", str(mine), "--parquet", str(tables))
    done = run_cli("sync", "--objects", "logs", *paths, env=env)
    assert (done.returncode, "holds base table notes, which bt-sync did not make" in done.stderr) == (1, True)
    # The tables' directory was written first: `sql` answered 0 rows from it, exit 0.
    assert not tables.exists()
    done = run_cli("sql", *paths, "SELECT count(*) FROM project_logs", env=env)
    assert (done.returncode, done.stderr) == (
        1,
        f"bt-sync: error: no synced tables at {tables} yet: run `bt-sync sync` first\n",
    )
    with duckdb.connect(str(mine), read_only=True) as con:
        assert con.execute("SELECT x FROM notes").fetchall() == [(1,)]


def test_a_tables_directory_holding_another_programs_catalog_file_is_refused_untouched(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    (exports / "projects").mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 'a' AS name) TO '{exports}/projects/data.parquet'")
    before = sorted(exports.rglob("*"))
    env = cli_env(demo_emulator, tmp_path)
    for command in (("sync", "--objects", "logs"), ("status",), ("sql", "SELECT 1")):
        done = run_cli(*command, "--duckdb", str(tmp_path / "w.duckdb"), "--parquet", str(exports), env=env)
        # A sync wrote bt-sync's tree among the files, then failed binding its views to that one, blaming
        # the DuckDB file and the disk, run after run.
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"bt-sync: error: the tables' directory {exports} holds projects/data.parquet, which bt-sync did "
            "not write (not its columns, or not Parquet it can read; it writes them beside its _bt_sync "
            "directory): give --parquet a directory of its own, a new one or one bt-sync synced into (a "
            "file of its own that is damaged: delete it, and the next sync writes it again)\n"
        )
    assert sorted(exports.rglob("*")) == before and not (tmp_path / "w.duckdb").exists()


def test_with_no_parquet_the_rows_go_beside_the_file_a_link_names(
    demo_emulator: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "disk").mkdir()
    link = tmp_path / "w.duckdb"
    link.symlink_to(tmp_path / "disk" / "target.duckdb")
    env = cli_env(demo_emulator, tmp_path) | {"BT_SYNC_DUCKDB": str(link)}
    assert run_cli("sync", "--objects", "logs", "--no-parquet", env=env).returncode == 0
    # The link puts the warehouse on the other disk: its rows too, not only the views over them.
    assert (tmp_path / "disk" / "target.duckdb.tables" / "project_logs").is_dir()
    assert not (tmp_path / "w.duckdb.tables").exists()
    done = run_cli("sql", "--no-parquet", "SELECT count(*) > 0 AS synced FROM project_logs", env=env)
    assert done.stdout == "synced\ntrue\n"
    # A warehouse whose tables an earlier sync put beside the link keeps them there.
    (tmp_path / "old").mkdir()
    old = tmp_path / "old" / "w.duckdb"
    env = env | {"BT_SYNC_DUCKDB": str(old)}
    assert run_cli("sync", "--objects", "logs", "--no-parquet", env=env).returncode == 0
    old.rename(tmp_path / "disk" / "old.duckdb")
    old.symlink_to(tmp_path / "disk" / "old.duckdb")
    done = run_cli("sync", "--objects", "logs", "--no-parquet", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["objects"][0]["mode"] == "incremental"
    assert not (tmp_path / "disk" / "old.duckdb.tables").exists()


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["status"], 0),  # its note (nothing synced here) meets the closed pipe
        (["status", "--destination", "nope"], 2),
        (["status", "--json", "--destination", "nope"], 2),
    ],
)
def test_a_command_whose_stderr_reader_left_ends_as_it_would_have(
    tmp_path: Path, command: list[str], code: int
) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # `bt-sync … 2>&1 | head`, the reader gone
    try:
        done = subprocess.run(
            [*CLI, *command, "--duckdb", str(tmp_path / "w.duckdb"), "--parquet", str(tmp_path / "pq")],
            stdout=subprocess.PIPE,
            stderr=writer,
            timeout=60,
        )
    finally:
        os.close(writer)
    # It exited 1, and the --json error document was never printed.
    assert done.returncode == code
    if "--json" in command:
        assert json.loads(done.stdout)["exit_code"] == code


def test_a_command_whose_stderr_cannot_be_written_ends_as_it_would_have(
    tmp_path: Path, demo_emulator: Emulator
) -> None:
    # A scheduler's log volume full: a push whose rows were sent exited 1 with no `--json` document, its
    # warning (rows sharing an id) having met the full disk; `status`'s note made it exit 1 too.
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "input": 1}\n{"id": "a", "input": 2}\n')
    api = {"BRAINTRUST_API_URL": demo_emulator.url, "BRAINTRUST_API_KEY": demo_emulator.api_key}
    push = ["push", str(tmp_path / "rows.jsonl"), "--project", "p", "--dataset", "d", "--json"]
    push += ["--state-dir", str(tmp_path / "state")]
    status = ["status", "--json", "--duckdb", str(tmp_path / "w.duckdb"), "--parquet", str(tmp_path / "pq")]
    for command in (push, status):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [*CLI, *command], env=os.environ | api, stdout=subprocess.PIPE, stderr=full, timeout=60
            )
        assert done.returncode == 0, command
        summary = json.loads(done.stdout)
        if command is push:
            assert (summary["rows_sent"], len(summary["warnings"])) == (1, 1)
        else:
            assert summary == []


def test_a_command_started_with_stderr_closed_keeps_stdout_for_its_output(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "status", "--json", "--destination", "nope"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        timeout=60,
        preexec_fn=lambda: os.close(2),
    )
    # `print(file=None)` wrote the error line to stdout, ahead of the JSON document.
    assert done.returncode == 2 and json.loads(done.stdout)["exit_code"] == 2


def test_a_command_started_with_stdout_closed_says_so(tmp_path: Path) -> None:
    # The next file opened would have taken its descriptor, and a library's printing would land in it.
    done = subprocess.run(
        [*CLI, "status", "--duckdb", str(tmp_path / "w.duckdb")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert (done.returncode, done.stderr) == (
        2,
        "bt-sync: error: standard output is closed: redirect it to a file, or to /dev/null\n",
    )


# A JSON summary, a table, a sync's summary table and its closing line, a query's CSV and JSON.
@pytest.mark.parametrize(
    "command",
    [
        ["status", "--json"],
        ["status"],
        ["sync"],
        *(["sql", "--format", output, "SELECT * FROM project_logs"] for output in ("csv", "json")),
    ],
)
def test_a_summary_that_cannot_be_written_is_one_line(
    demo_emulator: Emulator, warehouse: WarehouseSettings, command: list[str]
) -> None:
    sync(demo_emulator, warehouse)
    flags = cli_warehouse_args(warehouse)
    if command[0] in ("status", "sql"):  # they take no --state-dir
        flags = flags[:4]
    api = {"BRAINTRUST_API_URL": demo_emulator.url, "BRAINTRUST_API_KEY": demo_emulator.api_key}
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*CLI, *command[:1], *flags, *command[1:]],
            env=os.environ | api,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    # The JSON error document met the same full disk: a second traceback. Then the message named no file,
    # as if the warehouse's disk were full; a table's still did.
    assert (done.returncode, done.stderr) == (
        1,
        "bt-sync: error: cannot write to standard output: No space left on device\n",
    )


# SIGTERM, as a scheduler stops a job, killed the command silently: no message, no `--json` document;
# SIGHUP, as a terminal closing sends, too (exit 129).
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_stops_a_runaway_query_of_bt_sync_sql(
    demo_emulator: Emulator, warehouse: WarehouseSettings, stop: signal.Signals
) -> None:
    sync(demo_emulator, warehouse)
    # Streamed through Arrow, a statement ran on for minutes after Ctrl-C: DuckDB did not look for it.
    endless = "SELECT count(*) FROM range(1000000000000) AS t(x) WHERE x % 7 = 3"
    querying = subprocess.Popen(
        [*CLI, "sql", *cli_warehouse_args(warehouse)[:4], endless],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2)  # well into the statement: the command starts in under a second
    querying.send_signal(stop)
    try:
        out, err = querying.communicate(timeout=30)
    finally:
        querying.kill()
    assert (querying.returncode, out, err) == (130, b"", b"bt-sync: interrupted\n")


def test_ctrl_c_that_duckdb_reports_as_its_own_error_is_an_interruption(
    demo_emulator: Emulator,
    warehouse: WarehouseSettings,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        # DuckDB's words, seen when Ctrl-C landed as it read the catalog's rows (it exited 1, "DuckDB: …").
        raise duckdb.InvalidInputException(
            "Invalid Input Error: exporting a stream from the object registered as 'catalog_rows' failed: "
            "KeyboardInterrupt:"
        )

    monkeypatch.setattr(ParquetTree, "write_catalog", interrupted)
    done = cli_in_process(capfd, "sync", "--api-url", demo_emulator.url, *cli_warehouse_args(warehouse),
                          env={"BRAINTRUST_API_KEY": demo_emulator.api_key})  # fmt: skip
    assert (done.returncode, done.stderr) == (130, "bt-sync: interrupted\n")


def test_a_socks_proxy_httpx_cannot_use_is_a_setting_error_not_a_traceback(demo_emulator: Emulator) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key, "ALL_PROXY": f"socks5://127.0.0.1:{free_port()}"}
    done = run_cli("projects", "--api-url", demo_emulator.url, "--json", env=env)
    reason = (
        "the environment sets a SOCKS proxy (ALL_PROXY, HTTPS_PROXY or HTTP_PROXY), which httpx reaches only "
        "with the socksio package: install it in bt-sync's environment (pip install socksio), or unset the "
        "proxy"
    )
    assert (done.returncode, json.loads(done.stdout)) == (2, {"error": reason, "exit_code": 2})
    assert done.stderr == f"bt-sync: error: {reason}\n"


@pytest.mark.parametrize(
    "proxy", ["socks4://127.0.0.1:9", "ftp://user:s3cr3tpw@127.0.0.1:9", " http://127.0.0.1:9"]
)
def test_a_proxy_of_a_scheme_httpx_cannot_use_is_a_setting_error_not_a_traceback(
    demo_emulator: Emulator, proxy: str
) -> None:
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key, "HTTP_PROXY": proxy, "NO_PROXY": "", "no_proxy": ""}
    done = run_cli("projects", "--api-url", demo_emulator.url, "--json", env=env)
    assert (done.returncode, json.loads(done.stdout)["exit_code"]) == (2, 2), done.stderr
    assert done.stderr.count("\n") == 1 and "is no proxy httpx can use" in done.stderr
    assert "s3cr3tpw" not in done.stderr


def test_an_unreachable_proxy_is_named_beside_the_api_it_stands_for(demo_emulator: Emulator) -> None:
    proxy = f"http://user:s3cr3tpw@127.0.0.1:{free_port()}"
    # Both spellings: the lowercase one wins where the environment has both.
    env = {"BRAINTRUST_API_KEY": demo_emulator.api_key, "HTTP_PROXY": proxy, "http_proxy": proxy}
    env["BT_SYNC_MAX_ATTEMPTS"] = "1"
    done = run_cli("projects", "--api-url", demo_emulator.url, env={**env, "NO_PROXY": "", "no_proxy": ""})
    # The API was up: only the proxy was not, and the message blamed the API alone.
    assert done.returncode == 1
    assert f"the API at {demo_emulator.url} (through the proxy http://***@127.0.0.1:" in done.stderr
    assert "s3cr3tpw" not in done.stderr
    bypassed = run_cli(
        "projects",
        "--api-url",
        demo_emulator.url,
        env={**env, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )
    assert bypassed.returncode == 0, bypassed.stderr
    # An entry naming the port too: the API is not reached through the proxy, and the message says so.
    down = f"http://127.0.0.1:{free_port()}"
    by_port = down.removeprefix("http://")
    done = run_cli("projects", "--api-url", down, env={**env, "NO_PROXY": by_port, "no_proxy": by_port})
    assert done.returncode == 1 and f"the API at {down} is unavailable" in done.stderr
    # An entry for a domain's subdomains (a leading dot): httpx bypasses the proxy for those alone, and
    # sent the request for the domain itself through it, which the message (after urllib's reading) hid.
    local = demo_emulator.url.replace("127.0.0.1", "localhost")
    done = run_cli(
        "projects", "--api-url", local, env={**env, "NO_PROXY": ".localhost", "no_proxy": ".localhost"}
    )
    assert (
        done.returncode == 1 and f"the API at {local} (through the proxy http://***@127.0.0.1:" in done.stderr
    )


def test_a_parquet_root_that_is_a_file_is_refused_before_the_api_is_asked(
    emulator: Emulator, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "pq"
    taken.write_text("a file of the user's")
    flags = (
        "--duckdb",
        str(tmp_path / "w.duckdb"),
        "--parquet",
        str(taken),
        "--state-dir",
        str(tmp_path / "s"),
    )
    done = cli_in_process(capfd, "sync", "--api-url", emulator.url, *flags,
                          env={"BRAINTRUST_API_KEY": emulator.api_key})  # fmt: skip
    # It failed (exit 1) once the API had answered, as the warehouse's failure.
    assert (done.returncode, done.stderr) == (
        2,
        f"bt-sync: error: the tables' directory {taken}: {taken} is a file where a directory is needed\n",
    )
    assert not emulator.stats.requests
    assert taken.read_text() == "a file of the user's"


@pytest.mark.parametrize(
    "command", [["status"], ["sql", "SELECT 1"], ["maintain"], ["sync", "--api-url", "http://127.0.0.1:9"]]
)
def test_a_duckdb_file_or_tables_directory_no_reader_can_use_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # A directory taken for the file, a file for the tables' directory: answered from the tables alone, or
    # "no object was synced", exit 0.
    (tmp_path / "dir.duckdb").mkdir()
    (tmp_path / "file").write_text("a file")
    with closing(sqlite3.connect(tmp_path / "lite.db")) as lite:
        lite.execute("CREATE TABLE t (a)")
    (tmp_path / "empty.duckdb").touch()
    (tmp_path / "text.duckdb").write_text("hello\n")
    (tmp_path / "rows.parquet").write_bytes(b"PAR1" + bytes(64))
    os.mkfifo(tmp_path / "pipe.duckdb")  # opened for its first bytes, it waited for a writer for good
    for paths, says in (
        (["--duckdb", f"{tmp_path}/dir.duckdb"], f"--duckdb {tmp_path}/dir.duckdb is a directory"),
        # DuckDB tried to download its sqlite extension for 10 s, then said so, never that it was SQLite.
        (
            ["--duckdb", f"{tmp_path}/lite.db"],
            f"--duckdb {tmp_path}/lite.db is a SQLite database, not a DuckDB database",
        ),
        # A sync refused them once the API had been asked and the tables' directory written, exit 1, the
        # Parquet file as "Cannot launch in-memory database in read-only mode".
        (
            ["--duckdb", f"{tmp_path}/empty.duckdb"],
            f"--duckdb {tmp_path}/empty.duckdb is an empty file, not a",
        ),
        (["--duckdb", f"{tmp_path}/text.duckdb"], f"--duckdb {tmp_path}/text.duckdb is another kind of file"),
        (["--duckdb", f"{tmp_path}/rows.parquet"], f"--duckdb {tmp_path}/rows.parquet is a Parquet file"),
        (["--duckdb", f"{tmp_path}/pipe.duckdb"], f"--duckdb {tmp_path}/pipe.duckdb is not a regular file"),
        (
            ["--duckdb", f"{tmp_path}/w.duckdb", "--parquet", f"{tmp_path}/file"],
            f"the tables' directory {tmp_path}/file: {tmp_path}/file is a file where a directory is needed",
        ),
    ):
        done = cli_in_process(capfd, command[0], *paths, *command[1:], env={"BRAINTRUST_API_KEY": "k"})
        assert done.returncode == 2 and done.stderr.startswith(f"bt-sync: error: {says}"), done.stderr
    assert not (tmp_path / "parquet").exists() and (tmp_path / "empty.duckdb").stat().st_size == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["projects", "--api-key=", "sk-s3cr3t-part"], "Got unexpected extra argument(s)"),
        (["sync", "--api-key", "sk-abc", "s3cr3t-part"], "Got unexpected extra argument(s)"),
        (
            ["push", "d.csv", "--project", "p", "--dataset", "d", "--api-key=sk-abc", "s3cr3t-part"],
            "Got unexpected extra argument(s)",
        ),
        # A part starting with `-`, taken for an option.
        (["sync", "--api-key", "sk-abc", "--s3cr3t-part"], "No such option"),
        (
            ["push", "d.csv", "--project", "p", "--dataset", "d", "--api-key", "sk-abc", "-s3cr3t"],
            "No such option",
        ),
    ],
)
def test_a_key_split_at_a_blank_is_not_quoted_as_extra_arguments(
    capfd: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    # An unquoted key holding a blank, or a blank after `=`: the words the command did not take were
    # printed, the key or part of it with them.
    done = cli_in_process(capfd, *args)
    assert done.returncode == 2
    assert f"{error}, not shown as it may be part of the key given to --api-key" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout
    # Without a key on the line, they are shown; so is `--api-key` given to a command without it.
    done = cli_in_process(capfd, "sync", "extra")
    assert (done.returncode, "Got unexpected extra argument(s) (extra)" in done.stderr) == (2, True)
    done = cli_in_process(capfd, "sql", "--api-key", "k", "SELECT 1")
    assert (done.returncode, "No such option: --api-key" in done.stderr) == (2, True)


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "sk-env-s3cr3t"],
        ["status", "sk-env-s3cr3t\n"],  # pasted from a file, its line end with it
        ["push", "d.csv", "sk-env-s3cr3t", "--project", "p", "--dataset", "d"],
        ["sql", "SELECT 1", "sk-env-s3cr3t"],
        ["sync", "--sk-env-s3cr3t"],
    ],
)
def test_the_environment_s_key_given_as_a_word_is_not_quoted_by_a_usage_error(
    capfd: pytest.CaptureFixture[str], args: list[str]
) -> None:
    # `bt-sync sync $KEY`: the word no parameter took was printed whole, the key in it.
    done = cli_in_process(capfd, *args, env={"BRAINTRUST_API_KEY": "sk-env-s3cr3t"})
    assert done.returncode == 2
    assert "s3cr3t" not in done.stderr + done.stdout
    assert "Got unexpected extra argument(s) (***" in done.stderr or "No such option: --***" in done.stderr


def test_a_key_split_at_a_blank_is_not_named_as_a_missing_file(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `push` takes the key's second half for its FILE: "s3cr3t-part: no such file" printed it.
    monkeypatch.chdir(tmp_path)
    done = cli_in_process(
        capfd, "push", "--api-key", "sk-abc", "s3cr3t-part", "--project", "p", "--dataset", "d"
    )
    assert done.returncode == 2, done.stderr
    assert "FILE: no such file, not shown as it is the word given after --api-key's value" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout
    # A file that is there is taken, wherever it stands; a missing one elsewhere on the line is named.
    (tmp_path / "rows.jsonl").write_text('{"input": 1}\n')
    args = ("--project", "p", "--dataset", "d", "--dry-run")
    done = cli_in_process(capfd, "push", "--api-key=sk-abc", "rows.jsonl", *args)
    assert (done.returncode, "1 of 1 row of rows.jsonl is valid" in done.stdout) == (0, True), done.stderr
    done = cli_in_process(capfd, "push", "absent.jsonl", "--api-key", "sk-abc", *args)
    assert (done.returncode, "absent.jsonl: no such file" in done.stderr) == (1, True), done.stderr
