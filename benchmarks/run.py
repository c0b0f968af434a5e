"""Run every benchmark case and write `results.jsonl` and `RESULTS.md`.

`python -m benchmarks.run [--rows 200000,1000000] [--quick] [--tools bt-sync,floor,dlt,sdk]`

Per table size: one emulator process is seeded with that many generated log
rows (and an experiment with the same rows), then each case runs in a fresh
subprocess against it: bt-sync's full sync, the floor and dlt on the project
logs; a 1% change upstream, then bt-sync's incremental sync; bt-sync's full
sync into Iceberg, then 1% new rows and updates of recent ones, and both
destinations' incremental syncs; the SDK, bt-sync and the floor on the
experiment. The push cases (bt-sync, the floor, the SDK) run once, on the first size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.cases import REQUIRES, CaseSpec
from benchmarks.emulator_process import EXPERIMENT, PROJECT, EmulatorProcess
from benchmarks.report import analysis_text, render
from benchmarks.result import Result
from benchmarks.subjects.btsync import DUCKDB_FILE
from benchmarks.workload import change_rows, recent_change, write_push_file

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_ROWS = (200_000, 1_000_000)
QUICK_ROWS = (20_000,)
DEFAULT_PUSH_ROWS = 200_000
CHANGE_FRACTION = 0.01
RECENT_CASE = "incremental sync (new rows, recent updates)"
CASE_TIMEOUT_S = 1800.0
TOOLS = ("bt-sync", "iceberg", "floor", "dlt", "sdk")
# Variants of a tool, run when the tool is.
VARIANT_OF = {"bt-sync+parquet": "bt-sync"}
# Display names, in table order.
TOOL_NAMES = {
    "bt-sync": "bt-sync",
    "bt-sync+parquet": "bt-sync (DuckDB + Parquet)",
    "iceberg": "bt-sync (Iceberg)",
    "floor": "floor (httpx + orjson)",
    "dlt": "dlt rest_api",
    "sdk": "braintrust SDK",
}


@dataclass(frozen=True)
class Target:
    """An emulator object a case works on, and how many live rows it should end up with."""

    object_type: str
    object_id: str
    object_name: str
    live_rows: int


class Bench:
    """One benchmark run: where results go and which tools take part."""

    def __init__(self, out_dir: Path, workdir: Path, tools: Sequence[str]) -> None:
        self.run_id = datetime.now(UTC).isoformat(timespec="seconds")
        self.out_dir = out_dir
        self.workdir = workdir
        self.tools = tuple(tools)
        self.results: list[Result] = []
        self.results_file = out_dir / "results.jsonl"
        self.results_file.write_text("")

    def size(self, rows: int, push_rows: int | None) -> None:
        """Seed an emulator with `rows` rows and run every case against it."""
        api_key = f"bench-{secrets.token_hex(8)}"
        log = self.workdir / "emulator.log"
        _say(f"{rows:,} rows: seeding the emulator")
        with EmulatorProcess(rows, api_key, log) as emulator:
            seeded = emulator.seeded
            logs = Target("project_logs", seeded.project_id, PROJECT, seeded.logs_rows)
            experiment = Target("experiment", seeded.experiment_id, EXPERIMENT, seeded.experiment_rows)
            btsync_dir = self._dir(rows, "btsync-logs")
            self.case(emulator, rows, "full sync", "bt-sync", "btsync.sync", logs, btsync_dir)
            self.case(emulator, rows, "full sync", "floor", "floor.fetch", logs)
            self.case(emulator, rows, "full sync", "dlt", "dlt.fetch", logs)
            if "bt-sync" in self.tools and (btsync_dir / DUCKDB_FILE).exists():
                changed = change_rows(
                    seeded.url,
                    api_key,
                    seeded.project_id,
                    btsync_dir / DUCKDB_FILE,
                    "project_logs",
                    CHANGE_FRACTION,
                )
                self.case(
                    emulator,
                    rows,
                    "incremental sync",
                    "bt-sync",
                    "btsync.sync",
                    logs,
                    btsync_dir,
                    work_rows=changed,
                )
            self.recent_change_cases(emulator, rows, logs, btsync_dir)
            self.case(emulator, rows, "full sync", "sdk", "sdk.fetch", experiment)
            self.case(emulator, rows, "full sync", "bt-sync", "btsync.sync", experiment)
            self.case(emulator, rows, "full sync", "floor", "floor.fetch", experiment)
            if push_rows:
                push_file = write_push_file(self.workdir / "push.jsonl", push_rows)
                for tool, subject in (
                    ("bt-sync", "btsync.push"),
                    ("floor", "floor.push"),
                    ("sdk", "sdk.push"),
                ):
                    dataset = Target("dataset", "", f"push-{tool}", push_rows)
                    self.case(emulator, rows, "push", tool, subject, dataset, push_file=push_file)

    def recent_change_cases(
        self, emulator: EmulatorProcess, rows: int, logs: Target, btsync_dir: Path
    ) -> None:
        """Iceberg's full sync; then new rows and updates of recent ones, and both destinations' syncs.

        The usual hourly change of a log touches the newest rows: both destinations rewrite the files
        holding them, and the bytes written (in each case's detail) follow the change.
        """
        if "iceberg" not in self.tools:
            return
        iceberg_dir = self._dir(rows, "iceberg-logs")
        self.case(emulator, rows, "full sync", "iceberg", "btsync.sync_iceberg", logs, iceberg_dir)
        if not (btsync_dir / DUCKDB_FILE).exists():
            return
        seeded = emulator.seeded
        changed = recent_change(
            seeded.url,
            emulator.api_key,
            seeded.project_id,
            btsync_dir / DUCKDB_FILE,
            "project_logs",
            CHANGE_FRACTION,
        )
        new_total = replace(logs, live_rows=logs.live_rows + round(logs.live_rows * CHANGE_FRACTION))
        self.case(
            emulator, rows, RECENT_CASE, "bt-sync", "btsync.sync", new_total, btsync_dir, work_rows=changed
        )
        self.case(
            emulator,
            rows,
            RECENT_CASE,
            "iceberg",
            "btsync.sync_iceberg",
            new_total,
            iceberg_dir,
            work_rows=changed,
        )

    def case(
        self,
        emulator: EmulatorProcess,
        size: int,
        case: str,
        tool: str,
        subject: str,
        target: Target,
        workdir: Path | None = None,
        *,
        work_rows: int | None = None,
        push_file: Path | None = None,
    ) -> None:
        """Run one case in a fresh subprocess and record its result."""
        if VARIANT_OF.get(tool, tool) not in self.tools:
            return
        result = Result(
            run=self.run_id,
            size=size,
            object=target.object_type,
            case=case,
            tool=TOOL_NAMES[tool],
            status="ok",
            work_rows=target.live_rows if work_rows is None else work_rows,
            expected_rows=target.live_rows,
        )
        required = REQUIRES.get(subject)
        if required is not None and importlib.util.find_spec(required) is None:
            result.status = "skipped"
            result.reason = (
                f"`{required}` is not installed (install the bench extra: pip install -e '.[bench]')"
            )
            self._record(result)
            return
        workdir = workdir or self._dir(size, f"{tool}-{target.object_type}")
        workdir.mkdir(parents=True, exist_ok=True)
        spec = CaseSpec(
            case=case,
            subject=subject,
            api_url=emulator.seeded.url,
            api_key=emulator.api_key,
            object_type=target.object_type,
            object_id=target.object_id,
            project_name=PROJECT,
            object_name=target.object_name,
            workdir=str(workdir),
            result_file=str(workdir / f"result-{secrets.token_hex(4)}.json"),
            push_file=None if push_file is None else str(push_file),
        )
        _say(f"{size:,} rows: {case} · {target.object_type} · {TOOL_NAMES[tool]}")
        emulator.reset_stats()
        result.load_before = round(os.getloadavg()[0], 2)
        self._measure(spec, result, emulator)
        self._record(result)

    def _measure(self, spec: CaseSpec, result: Result, emulator: EmulatorProcess) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.cases", json.dumps(asdict(spec))],
            cwd=REPO_ROOT,
            env=_case_env(spec),
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
        )
        if completed.returncode != 0:
            result.status = "failed"
            lines = (completed.stderr or completed.stdout).strip().splitlines()
            result.reason = lines[-1] if lines else f"exit status {completed.returncode}"
            return
        measured: dict[str, Any] = json.loads(Path(spec.result_file).read_text())
        for key, value in measured.items():
            setattr(result, key, value)
        result.rows_per_s = round(result.work_rows / result.wall_s, 1) if result.wall_s else None
        stats = emulator.stats()
        result.server_requests = sum(stats["requests"].values())
        counter = "rows_inserted" if spec.object_type == "dataset" else "rows_served"
        result.server_rows = sum(stats[counter].values())

    def _record(self, result: Result) -> None:
        self.results.append(result)
        with self.results_file.open("a") as out:
            out.write(json.dumps(asdict(result)) + "\n")
        if result.status != "ok":
            _say(f"  {result.status}: {result.reason}")
        else:
            _say(
                f"  {result.wall_s:.2f} s wall, {result.cpu_s:.2f} s CPU, "
                f"{result.rss_peak_mb:.0f} MB peak RSS"
            )

    def _dir(self, size: int, name: str) -> Path:
        return self.workdir / str(size) / name


def _case_env(spec: CaseSpec) -> dict[str, str]:
    return {
        **os.environ,
        "BRAINTRUST_APP_URL": spec.api_url,
        "BRAINTRUST_API_URL": spec.api_url,
        "BRAINTRUST_API_KEY": spec.api_key,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_DATA_DIR": str(Path(spec.workdir) / "dlt-data"),
    }


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(
    sizes: Sequence[int],
    *,
    push_rows: int,
    tools: Sequence[str] = TOOLS,
    out_dir: Path = BENCH_DIR,
    keep_workdir: bool = False,
) -> list[Result]:
    """Run the benchmark at each table size; write `results.jsonl` and `RESULTS.md` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bt-sync-bench-"))
    started = time.monotonic()
    try:
        bench = Bench(out_dir, workdir, tools)
        for index, rows in enumerate(sizes):
            bench.size(rows, push_rows if index == 0 else None)
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    (out_dir / "RESULTS.md").write_text(render(bench.results, analysis_text(BENCH_DIR / "analysis.md")))
    _say(f"done in {elapsed / 60:.1f} min: {out_dir / 'RESULTS.md'}")
    return bench.results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", help="table sizes, comma-separated (default 200000,1000000)")
    parser.add_argument(
        "--push-rows", type=int, help=f"rows in the pushed file (default {DEFAULT_PUSH_ROWS})"
    )
    parser.add_argument("--quick", action="store_true", help="one small size (20,000 rows), for a quick look")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="which of bt-sync,iceberg,floor,dlt,sdk to run"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where results.jsonl and RESULTS.md go")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the DuckDB files the cases wrote")
    args = parser.parse_args(argv)
    sizes = (
        [int(n) for n in args.rows.split(",")]
        if args.rows
        else list(QUICK_ROWS if args.quick else DEFAULT_ROWS)
    )
    push_rows = args.push_rows if args.push_rows is not None else min(DEFAULT_PUSH_ROWS, sizes[0])
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}: use {','.join(TOOLS)}")
    run(sizes, push_rows=push_rows, tools=tools, out_dir=args.out, keep_workdir=args.keep_workdir)


if __name__ == "__main__":
    main()
