"""No-change syncs of many small objects whose last writes are an hour old, timed per code tree.

`python -m benchmarks.settled_objects [--objects 200] [SOURCE_TREE ...]`: each tree (a checkout's root,
`git archive <commit> | tar -x -C DIR`; the installed code when none is given) syncs its own warehouse
once, then three times with nothing changed upstream, the trees' runs interleaved, against one
emulator. Prints each sync's wall time, requests and pages. Not part of `make bench`: a measurement of
the incremental read's cutoff (`benchmarks/analysis.md`, the fifty-sixth session).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connector.api.xact import xact_for_time
from connector.emulator import Emulator

ROWS_AN_OBJECT = 20
NO_CHANGE_SYNCS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("trees", nargs="*", type=Path)
    args = parser.parse_args()
    trees: list[Path | None] = list(args.trees) or [None]
    with (
        tempfile.TemporaryDirectory() as scratch,
        Emulator(xact_start=xact_for_time(time.time() - 3600)) as api,
    ):
        project = api.store.create_project("settled")
        for number in range(args.objects):
            experiment = api.store.create_experiment(project["id"], f"e{number}")
            rows = [{"id": f"r{row}", "input": row} for row in range(ROWS_AN_OBJECT)]
            api.store.insert("experiment", experiment["id"], rows)
        for label in ["first", *(f"no change {n + 1}" for n in range(NO_CHANGE_SYNCS))]:
            for index, tree in enumerate(trees):
                print(label, tree or "installed", _sync(api, Path(scratch) / str(index), tree), flush=True)


def _sync(api: Emulator, warehouse: Path, tree: Path | None) -> str:
    env = {**os.environ, "BRAINTRUST_API_KEY": api.api_key}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    where = ["--duckdb", str(warehouse / "w.duckdb"), "--parquet", str(warehouse / "pq")]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "sync", "--api-url", api.url, *where,
         "--state-dir", str(warehouse / "state"), "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=warehouse.parent,  # not a tree's root
    )  # fmt: skip
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout)
    pages = sum(synced["pages"] for synced in summary["objects"])
    return f"{wall:.1f} s, {summary['requests']} requests, {pages} pages"


if __name__ == "__main__":
    main()
