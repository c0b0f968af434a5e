"""bt-sync's DuckDB databases print nothing to stdout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_statement_over_two_seconds_prints_no_progress_bar_to_a_stdout_that_is_a_file() -> None:
    # DuckDB's bar went into the CSV or JSON `bt-sync sql` wrote to a file: a statement of 3-4 s here.
    script = (
        "from connector.duckdb_connect import connect\n"
        "con = connect()\n"
        "print(con.execute('SELECT count(*) FROM range(1500000000) t(i) WHERE i % 7 = 3').fetchone()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == "214285714\n"


def test_every_duckdb_database_of_bt_sync_is_opened_quiet() -> None:
    opened_otherwise = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("connector", "pipelines")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "duckdb_connect.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "duckdb.connect(" in line
    ]
    assert opened_otherwise == []
