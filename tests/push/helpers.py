"""Helpers shared by the push tests: test files in every format, and ways to compare what landed."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connector.cli import main
from connector.emulator import Emulator, ListQuery
from tests.helpers import CLI, query, sync, warehouse_in

PROJECT, DATASET = "push-tests", "golden"


class RecordingProgress:
    """Records each task's description, total and advanced rows and batches.

    An advance counts toward the task started last: tasks open at once (checking and sending) share it.
    """

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []

    def task(self, description: str, total_rows: int | None = None, unit: str = "pages") -> RecordingProgress:
        self.tasks.append({"description": description, "total": total_rows, "rows": 0, "batches": 0})
        return self

    def advance(self, rows: int = 0, pages: int = 0) -> None:
        self.tasks[-1]["rows"] += rows
        self.tasks[-1]["batches"] += pages

    def close(self) -> None:
        self.tasks[-1]["closed"] = True


def inserts(emulator: Emulator) -> int:
    """Rows the emulator has been sent in insert requests, in every dataset."""
    return sum(emulator.stats.rows_inserted.values())


def dataset_id(emulator: Emulator) -> str:
    (dataset,) = emulator.store.list_objects("dataset", ListQuery(project_name=PROJECT, name=DATASET))
    return str(dataset["id"])


def synced_rows(emulator: Emulator, tmp_path: Path) -> list[dict[str, Any]]:
    """Sync the emulator into a fresh DuckDB file with bt-sync and read the dataset's rows back."""
    synced = warehouse_in(tmp_path, "synced")
    sync(emulator, synced)
    rows = query(
        synced,
        "SELECT id, input, expected, metadata, tags FROM dataset_records WHERE dataset_id = ?",
        [dataset_id(emulator)],
    )

    def decoded(text: str | None) -> Any:
        return None if text is None else orjson.loads(text)

    return [
        {"id": id_, "input": decoded(i), "expected": decoded(e), "metadata": decoded(m), "tags": tags}
        for id_, i, e, m, tags in rows
    ]


def same_rows(pushed: list[dict[str, Any]], file_query: str, tmp_path: Path) -> None:
    """Assert the pushed events equal, as a multiset, the rows `file_query` selects from the file."""
    events = tmp_path / "pushed.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in pushed))
    with duckdb.connect() as con:
        columns = "{id: 'VARCHAR', input: 'JSON', expected: 'JSON', metadata: 'JSON', tags: 'VARCHAR[]'}"
        con.execute(f"CREATE TABLE pushed AS SELECT * FROM read_json('{events}', columns = {columns})")
        con.execute(f"CREATE TABLE source AS {file_query}")
        columns = [row[0] for row in con.execute("DESCRIBE source").fetchall()]
        listed = ", ".join(columns)
        assert con.execute("SELECT count(*) FROM source").fetchone() == (len(pushed),)
        missing = con.execute(
            f"SELECT {listed} FROM source EXCEPT ALL SELECT {listed} FROM pushed"
        ).fetchall()
        extra = con.execute(f"SELECT {listed} FROM pushed EXCEPT ALL SELECT {listed} FROM source").fetchall()
    assert (missing, extra) == ([], [])


def write_csv(path: Path, rows: int, start: int = 0) -> Path:
    lines = ["id,input,expected,metadata,tags,note"]
    for n in range(start, start + rows):
        value = f'{{""n"": {n}, ""q"": ""what is {n}?""}}' if n % 2 else f'plain, ""quoted""\nline ü {n}'
        lines.append(f'row-{n},"{value}",answer {n},"{{""source"": ""s{n % 3}""}}","t{n % 2},all",ignored')
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


CSV_AS_EVENTS = """
    SELECT id,
           CASE WHEN left(input, 1) IN ('{{', '[') THEN json(input) ELSE to_json(input) END AS input,
           to_json(expected) AS expected,
           json(metadata) AS metadata,
           string_split(tags, ',') AS tags
    FROM read_csv('{path}', all_varchar = true, header = true)
"""


def write_parquet(path: Path, rows: int) -> Path:
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "input": [{"k": n % 5, "text": f"question {n}"} for n in range(rows)],
            "expected": [None if n % 4 == 0 else f"answer {n}" for n in range(rows)],
            "metadata": [{"score": n / 10} for n in range(rows)],
            "tags": [["a", f"g{n % 3}"] for n in range(rows)],
        }
    )
    pq.write_table(table, path, row_group_size=max(1, rows // 3))
    return path


PARQUET_AS_EVENTS = """
    SELECT id::VARCHAR AS id, to_json(input) AS input,
           CASE WHEN expected IS NOT NULL THEN to_json(expected) END AS expected,
           to_json(metadata) AS metadata, tags
    FROM read_parquet('{path}')
"""


def jsonl_rows(rows: int) -> list[dict[str, Any]]:
    inputs: list[Any] = ["text", {"a": [1, 2], "b": None}, 42, [1, "x"], {"nested": {"deep": True}}]
    return [
        {"input": inputs[n % 5], "expected": {"n": n}, "metadata": {"i": n, "src": "jsonl"}, "tags": ["j"]}
        for n in range(rows)
    ]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | bytes]) -> Path:
    """A JSON Lines file (gzipped for `.gz`) of `rows`; a row given as bytes is written as it is."""
    data = b"".join(
        (row if isinstance(row, bytes) else orjson.dumps(row, option=orjson.OPT_SORT_KEYS)) + b"\n"
        for row in rows
    )
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


JSONL_AS_EVENTS = """
    SELECT input, expected, metadata, tags FROM read_json('{path}', format = 'newline_delimited',
        columns = {{input: 'JSON', expected: 'JSON', metadata: 'JSON', tags: 'VARCHAR[]'}})
"""


def run_cli(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run `bt-sync push ARGS` in this process; return the exit code, stdout and stderr."""
    argv = ["bt-sync", "push", *args, "--api-url", emulator.url, "--api-key", emulator.api_key]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [*argv, "--state-dir", str(tmp_path / "state")])
        with pytest.raises(SystemExit) as exited:
            main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def push_process(emulator: Emulator, path: Path, state: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [*CLI, "push", str(path)]
    command += [
        "--project",
        "p",
        "--dataset",
        "d",
        "--api-url",
        emulator.url,
        "--state-dir",
        str(state),
        *extra,
    ]
    env = os.environ | {"BRAINTRUST_API_KEY": emulator.api_key}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path.cwd())


def acked_batches(state: Path) -> int:
    for checkpoint in (state / "push").glob("*.json"):
        try:
            saved: dict[str, Any] = orjson.loads(checkpoint.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        return int(saved["acked_below"]) + len(saved["acked"])
    return 0
