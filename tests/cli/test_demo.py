"""`bt-sync demo` runs the whole loop, ending with a dataset curated from the demo logs by `push --sql`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import duckdb as duckdb_module
import pytest

from connector.cli.demo import CURATION_DATASET, CURATION_SQL, DEMO_MARKER
from connector.config import WarehouseSettings
from tests.helpers import one_line, query, run_cli


@pytest.mark.slow
def test_the_demo_curates_a_dataset_and_syncs_it_back(tmp_path: Path) -> None:
    duckdb, parquet = tmp_path / "data" / "demo.duckdb", tmp_path / "data" / "demo-parquet"
    # What a demo of an earlier bt-sync left at the default paths, unmarked: the demo replaces it.
    (parquet / "project_logs").mkdir(parents=True)
    (parquet / "project_logs" / "stale.parquet").write_bytes(b"stale")
    (tmp_path / "data" / "demo-parquet-state" / "staging").mkdir(parents=True)
    views_of_the_demo(duckdb, parquet)
    done = run_cli("demo", timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "7. Curate a dataset from the logs (bt-sync push --sql)" in done.stdout
    # The demo's last table: the curated dataset, its records, and how many link back to a span.
    (records, linked) = re.findall(rf"│ {CURATION_DATASET} +│ (\d+) +│ (\d+) +│", done.stdout)[-1]
    demo = WarehouseSettings(duckdb_path=duckdb, parquet_root=str(parquet))
    ((curated,),) = query(demo, f"SELECT count(*) FROM ({CURATION_SQL})")
    assert int(records) == int(linked) == curated > 0
    assert not (parquet / "project_logs" / "stale.parquet").exists()
    assert (parquet / DEMO_MARKER).exists()  # so a demo at other paths is replaced too
    # Its closing hint runs as pasted into a shell where the demo ran (it named `.venv/bin/bt-sync`, the
    # checkout's, and its paths unquoted).
    (hint,) = re.findall(r"^Try: (.*)$", done.stdout, flags=re.MULTILINE)
    tried = subprocess.run(["sh", "-c", hint], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (tried.returncode, tried.stdout.splitlines()[0]) == (0, "count_star()"), tried.stderr


def views_of_the_demo(duckdb: Path, parquet: Path) -> None:
    """A DuckDB file holding only a view of the tree at `parquet`, as an earlier demo's (or sync's) does."""
    (parquet / "projects").mkdir(parents=True, exist_ok=True)
    with duckdb_module.connect(str(duckdb)) as views_only:
        views_only.execute(f"COPY (SELECT 1 AS id) TO '{parquet}/projects/data.parquet'")
        views_only.execute(
            f"CREATE VIEW projects AS SELECT * FROM read_parquet('{parquet}/projects/data.parquet')"
        )


def a_synced_warehouse(root: Path) -> None:
    """The layout of a real sync's Parquet root: what only its marker tells from a demo's."""
    (root / "project_logs" / "project_id=p").mkdir(parents=True)
    (root / "project_logs" / "project_id=p" / "part-000000.parquet").write_text("rows")


@pytest.mark.parametrize(
    "given",
    [
        "--duckdb",
        "--duckdb, an empty directory",
        "--duckdb, a text file",
        "--duckdb with a table",
        "--duckdb of a sync",
        "--parquet",
        "--parquet of a sync",
        "scratch",
    ],
)
def test_the_demo_touches_nothing_at_paths_an_earlier_demo_did_not_write(tmp_path: Path, given: str) -> None:
    duckdb, parquet = tmp_path / "demo.duckdb", tmp_path / "demo-parquet"
    mine = {
        "--duckdb": duckdb,
        "--duckdb, an empty directory": duckdb,
        "--duckdb, a text file": duckdb,
        "--duckdb with a table": duckdb,
        "--duckdb of a sync": duckdb,
        "--parquet": parquet,
        "--parquet of a sync": parquet,
        "scratch": tmp_path / "demo-parquet-state",
    }[given]
    if given == "--duckdb with a table":
        with duckdb_module.connect(str(duckdb)) as database:
            database.execute("CREATE TABLE revenue AS SELECT 1 AS amount")
    elif given == "--duckdb of a sync":
        # The analysts' file of a warehouse synced elsewhere; the demo's Parquet root is an earlier demo's.
        views_of_the_demo(duckdb, tmp_path / "warehouse")
        parquet.mkdir()
        (parquet / DEMO_MARKER).write_text("")
    elif given == "--parquet of a sync":
        a_synced_warehouse(parquet)
    elif given == "--duckdb, an empty directory":
        duckdb.mkdir()
    elif given == "--duckdb, a text file":
        duckdb.write_text("mine")
    else:
        mine.mkdir()
        (mine / "notes.txt").write_text("mine")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    done = run_cli("demo", "--duckdb", str(duckdb), "--parquet", str(parquet))
    assert done.returncode == 2 and done.stderr.startswith("bt-sync: error: ")
    said = {
        "--duckdb of a sync": "holds bt-sync's views of another Parquet tree",
        # "holds what the demo did not write", of an empty directory too.
        "--duckdb": "is a directory: name a DuckDB file in it",
        "--duckdb, an empty directory": "is a directory: name a DuckDB file in it",
        "--duckdb, a text file": "is another kind of file, not a DuckDB database",
    }.get(given, "holds what")
    assert f"{mine} {said}" in done.stderr
    if (
        given == "--duckdb of a sync"
    ):  # its remedy was an earlier demo's --parquet alone, which it has none of
        assert done.stderr.endswith(
            ": give another --duckdb (or, where an earlier demo wrote the file, "
            "rather than a sync, that demo's --parquet)\n"
        )
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_demo_touches_nothing_more_than_its_layout_at_its_default_paths(tmp_path: Path) -> None:
    # Unmarked directories are taken for a demo's at the default paths, but only holding its layout.
    parquet = tmp_path / "data" / "demo-parquet"
    parquet.mkdir(parents=True)
    (parquet / "notes.txt").write_text("mine")
    done = run_cli("demo", cwd=tmp_path)
    assert done.returncode == 2
    assert "--parquet data/demo-parquet holds what the demo did not write" in done.stderr
    assert (parquet / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--duckdb", "a*.duckdb"], "invalid setting: --duckdb: "),
        (["--parquet", "."], "--parquet '.': give a directory the demo may (re)create"),
        (["--parquet", ".."], "--parquet '..': give a directory the demo may (re)create"),
    ],
)
def test_a_demo_refused_for_its_settings_removes_nothing(tmp_path: Path, flags: list[str], says: str) -> None:
    earlier = tmp_path / "demo-parquet"
    earlier.mkdir()
    (earlier / DEMO_MARKER).write_text("")
    (earlier / "projects").mkdir()
    done = run_cli("demo", "--parquet", str(earlier), *flags, cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith(f"bt-sync: error: {says}")
    assert (earlier / "projects").is_dir()
