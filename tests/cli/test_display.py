"""Names and values from the API are shown as written: not as rich markup, not as terminal control codes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rich.console import Console

from connector.display import counted
from connector.emulator import Emulator, FaultRule
from connector.rich_progress import RichProgress
from tests.helpers import CLI, cli_env, run_cli

# Rich would refuse `[/]` (nothing to close) and take `[bold]` as markup; ESC `[31m` recolours a terminal,
# and so does the one-byte CSI of C1 (U+009B); DEL erases.
NAME = "x[/]y[bold]\x1b[31mz\x9b2J\x7f"
SHOWN = "x[/]y[bold]\\x1b[31mz\\x9b2J\\x7f"


def test_names_and_values_are_shown_as_written(emulator: Emulator, tmp_path: Path) -> None:
    project = emulator.store.create_project("p")
    dataset = emulator.store.create_dataset(project["id"], NAME)
    emulator.store.insert("dataset", dataset["id"], [{"id": "r1", "input": NAME}])
    env = cli_env(emulator, tmp_path)
    commands = [
        ["projects"],
        # These two name the object by its key, whose stand-ins replace such characters (and its id).
        ["sync", "--objects", "datasets"],
        ["status"],
        ["sql", "--format", "table", "SELECT input->>'$' AS \"[/]\" FROM dataset_records"],
    ]
    for command in commands:
        done = run_cli(*command, env=env)
        assert done.returncode == 0, (command, done.stderr)
        assert not {"\x1b", "\x9b", "\x7f"} & set(done.stdout + done.stderr)
        if command[0] in ("sync", "status"):
            assert dataset["id"] in done.stdout.replace("\n", "").replace("│", "").replace(" ", "")
        else:
            cells = done.stdout.replace("\n", "").replace("│", "").replace(" ", "")
            assert SHOWN in cells, (command, done.stdout)


def test_a_warning_quoting_the_api_escapes_its_control_characters(emulator: Emulator, tmp_path: Path) -> None:
    project = emulator.store.create_project("p")
    dataset = emulator.store.create_dataset(project["id"], "d")
    emulator.store.insert("dataset", dataset["id"], [{"id": "r1"}])
    env = cli_env(emulator, tmp_path)
    assert run_cli("sync", "--objects", "datasets", env=env).returncode == 0
    emulator.store.delete("dataset", dataset["id"])
    # Whether the unlisted dataset was deleted, the API cannot say: the warning quotes its answer.
    route = f"^/v1/dataset/{dataset['id']}$"
    emulator.faults.add(FaultRule(kind="status", route=route, status=422, body=NAME, times=None))
    done = run_cli("sync", "--objects", "datasets", "--reconcile", env=env)
    assert done.returncode == 0, done.stderr
    assert SHOWN in done.stderr
    assert "\x1b" not in done.stderr


def test_an_error_quoting_the_api_escapes_its_control_characters(emulator: Emulator) -> None:
    emulator.faults.add(FaultRule(kind="status", route="/v1/project", status=422, body=NAME, times=None))
    env = {"BRAINTRUST_API_URL": emulator.url, "BRAINTRUST_API_KEY": emulator.api_key}
    for debug in ((), ("--debug",)):
        done = run_cli(*debug, "projects", env=env)
        assert done.returncode == 1
        assert SHOWN in done.stderr and "\x1b" not in done.stderr


def test_a_table_cell_keeps_its_line_break(tmp_path: Path, emulator: Emulator) -> None:
    project = emulator.store.create_project("p")
    emulator.store.insert("project_logs", project["id"], [{"id": "r1", "input": "first\nsecond"}])
    env = cli_env(emulator, tmp_path)
    assert run_cli("sync", "--objects", "logs", env=env).returncode == 0
    done = run_cli("sql", "--format", "table", "SELECT input->>'$' AS text FROM project_logs", env=env)
    lines = [line for line in done.stdout.splitlines() if "first" in line or "second" in line]
    assert len(lines) == 2 and "\\x0a" not in done.stdout


def test_csv_tells_empty_text_from_a_missing_value_as_duckdb_writes_them(
    tmp_path: Path, emulator: Emulator
) -> None:
    project = emulator.store.create_project("p")
    emulator.store.insert("project_logs", project["id"], [{"id": "r1", "input": ""}, {"id": "r2"}])
    env = cli_env(emulator, tmp_path)
    assert run_cli("sync", "--objects", "logs", env=env).returncode == 0
    text, cr = "input->>'$' AS text FROM project_logs", "'x' || chr(13) || 'y' AS cr"
    # Both were an empty cell, and a lone missing value was `""`: empty text, read back.
    shown = {
        f"SELECT id, {text} ORDER BY id": 'id,text\nr1,""\nr2,\n',
        f"SELECT {text} WHERE id = 'r2'": "text\n\n",
        f"SELECT {text} WHERE id = 'r1'": 'text\n""\n',
        # A carriage return alone was left unquoted, and so was a line feed in a row holding "".
        f"SELECT {cr}, chr(10) AS lf, {text} WHERE id = 'r1'": 'cr,lf,text\n"x\ry","\n",""\n',
        f"SELECT {cr}, {text} WHERE id = 'r2'": 'cr,text\n"x\ry",\n',
    }
    for query, csv in shown.items():
        # As bytes: text mode would read a carriage return as a line break.
        done = subprocess.run(
            [*CLI, "sql", "--format", "csv", query], env={**os.environ, **env}, capture_output=True
        )
        assert (done.returncode, done.stdout) == (0, csv.encode()), query


def test_a_progress_bar_shows_a_name_as_written() -> None:
    console = Console(force_terminal=True, record=True, width=200)
    with RichProgress(console) as progress:
        task = progress.task(f"sync {NAME}", 10)
        task.advance(rows=5, pages=1)
        task.close()
    shown = console.export_text()
    assert f"sync {SHOWN}" in shown


def test_a_json_error_to_a_reader_gone_away_is_no_traceback(tmp_path: Path) -> None:
    # `bt-sync status --json | head -0`: the error document meets a closed pipe.
    command = [*CLI, "status", "--json"]
    env = {**os.environ, "BT_SYNC_PARQUET": ""}  # refused: the command fails before its summary
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(command, env=env, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    assert done.returncode == 2
    assert (
        done.stderr
        == "bt-sync: error: invalid setting: BT_SYNC_PARQUET: is empty: give a path (or --no-parquet)\n"
    )


def test_a_table_tells_a_missing_value_from_empty_text(tmp_path: Path, emulator: Emulator) -> None:
    project = emulator.store.create_project("p")
    emulator.store.insert("project_logs", project["id"], [{"id": "r1", "input": ""}, {"id": "r2"}])
    env = cli_env(emulator, tmp_path)
    assert run_cli("sync", "--objects", "logs", env=env).returncode == 0
    query = "SELECT id, input->>'$' AS text FROM project_logs ORDER BY id"
    done = run_cli("sql", "--format", "table", query, env=env)
    assert done.returncode == 0, done.stderr
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in done.stdout.splitlines()]
    # Both were a blank cell.
    assert [row for row in cells if row[0] in ("r1", "r2")] == [["r1", ""], ["r2", "NULL"]], done.stdout


def test_a_count_of_exactly_one_names_one_thing() -> None:
    cases = [(1, "rows"), (0, "rows"), (1_500, "rows"), (1, "batches"), (2, "batches"), (1, "retries")]
    cases += [(0, "retries"), (1, "project_scores"), (1, "row versions"), (1, "invalid rows")]
    assert [counted(count, plural) for count, plural in cases] == [
        "1 row",
        "0 rows",
        "1,500 rows",
        "1 batch",
        "2 batches",
        "1 retry",
        "0 retries",
        "1 project_score",
        "1 row version",
        "1 invalid row",
    ]
