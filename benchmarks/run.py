"""Run every benchmark case and write `results.jsonl` and `RESULTS.md`.

`python -m benchmarks.run [--rows 200000,1000000] [--quick] [--tools bt-sync,iceberg,floor,dlt,sdk]`

Per table size: one emulator process is seeded with that many generated log
rows (and an experiment with the same rows), then each case runs as a fresh
process, measured from outside by `benchmarks.measure`: bt-sync as its command
line with default settings, each peer as a command (`benchmarks.cases`). The
cases: bt-sync's and the floor's full sync of the project logs, three times each,
interleaved; dlt's; bt-sync's into Iceberg; then the usual hourly change upstream
(new rows, feedback on recent ones) and both destinations' incremental syncs;
the SDK, bt-sync and the floor on the experiment. On the first size only: the
push cases (bt-sync's and the floor's twice each, interleaved; the SDK's) and
`bt-sync --help`.
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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.cases import REQUIRES, CaseSpec, Counts
from benchmarks.emulator_process import EXPERIMENT, PROJECT, EmulatorProcess
from benchmarks.report import (
    FULL,
    FULL_REPEATS,
    HELP_REPEATS,
    HOURLY,
    PUSH,
    PUSH_REPEATS,
    STARTUP,
    TOOL_NAMES,
    analysis_text,
    render,
)
from benchmarks.result import Result
from benchmarks.subjects import btsync
from benchmarks.workload import recent_change, write_push_file

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_ROWS = (200_000, 1_000_000)
QUICK_ROWS = (20_000,)
DEFAULT_PUSH_ROWS = 200_000
CHANGE_FRACTION = 0.01
CASE_TIMEOUT_S = 1800.0
TOOLS = ("bt-sync", "iceberg", "floor", "dlt", "sdk")


@dataclass(frozen=True)
class Target:
    """An emulator object a case works on, and how many live rows it should end up with."""

    object_type: str
    object_id: str
    object_name: str
    live_rows: int


@dataclass(frozen=True)
class Command:
    """A case as a command line, and how to read what it did from its stdout."""

    argv: list[str]
    counts: Callable[[str], Counts]


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
        _say(f"{rows:,} rows: seeding the emulator")
        with EmulatorProcess(rows, api_key, self.workdir / "emulator.log") as emulator:
            seeded = emulator.seeded
            logs = Target("project_logs", seeded.project_id, PROJECT, seeded.logs_rows)
            experiment = Target("experiment", seeded.experiment_id, EXPERIMENT, seeded.experiment_rows)
            duckdb_dir = iceberg_dir = None
            for repeat in range(FULL_REPEATS):
                duckdb_dir = self.sync(emulator, rows, FULL, logs, f"btsync-logs-{repeat}", repeat=repeat)
                self.peer(emulator, rows, FULL, "floor", "floor.fetch", logs, repeat=repeat)
            self.peer(emulator, rows, FULL, "dlt", "dlt.fetch", logs)
            iceberg_dir = self.sync(emulator, rows, FULL, logs, "iceberg-logs", tool="iceberg")
            self.hourly_change(emulator, rows, logs, duckdb_dir, iceberg_dir)
            self.peer(emulator, rows, FULL, "sdk", "sdk.fetch", experiment)
            self.sync(emulator, rows, FULL, experiment, "btsync-experiment")
            self.peer(emulator, rows, FULL, "floor", "floor.fetch", experiment)
            if push_rows:
                push_file = write_push_file(self.workdir / "push.jsonl", push_rows)
                for repeat in range(PUSH_REPEATS):
                    for tool in ("bt-sync", "as-checked", "floor"):
                        self.push(emulator, rows, tool, push_rows, push_file, repeat=repeat)
                self.push(emulator, rows, "sdk", push_rows, push_file)
                self.startup(emulator, rows)

    def hourly_change(
        self,
        emulator: EmulatorProcess,
        rows: int,
        logs: Target,
        duckdb_dir: Path | None,
        iceberg_dir: Path | None,
    ) -> None:
        """The usual hourly change upstream (new traces, feedback on recent ones); each destination syncs it.

        The change is picked from the DuckDB destination's tables, so it needs that destination's full sync.
        """
        if duckdb_dir is None or not (duckdb_dir / btsync.DUCKDB_FILE).exists():
            return
        seeded = emulator.seeded
        changed = recent_change(
            seeded.url,
            emulator.api_key,
            seeded.project_id,
            duckdb_dir / btsync.DUCKDB_FILE,
            "project_logs",
            CHANGE_FRACTION,
        )
        after = replace(logs, live_rows=logs.live_rows + round(logs.live_rows * CHANGE_FRACTION))
        self.sync(emulator, rows, HOURLY, after, duckdb_dir.name, work_rows=changed)
        if iceberg_dir is not None:
            self.sync(emulator, rows, HOURLY, after, iceberg_dir.name, work_rows=changed, tool="iceberg")

    def sync(
        self,
        emulator: EmulatorProcess,
        size: int,
        case: str,
        target: Target,
        directory: str,
        *,
        tool: str = "bt-sync",
        work_rows: int | None = None,
        repeat: int = 0,
    ) -> Path | None:
        """`bt-sync sync` of the target into the named directory (full if new); returns the directory."""
        if tool not in self.tools:
            return None
        spec = self._spec(emulator, target, self._dir(size, directory))
        command = Command(
            btsync.sync_command(spec, iceberg=tool == "iceberg"), lambda out: btsync.sync_counts(spec, out)
        )
        self.measure(emulator, self._result(size, case, tool, target, work_rows, repeat), spec, command)
        return Path(spec.workdir)

    def push(
        self, emulator: EmulatorProcess, size: int, tool: str, rows: int, push_file: Path, *, repeat: int = 0
    ) -> None:
        """A push of the file's `rows` rows into a new dataset, by bt-sync's command line or a peer.

        `tool` "as-checked" is bt-sync's command line sending each batch once it is checked.
        """
        target = Target("dataset", "", f"push-{tool}-{repeat}", rows)
        try:
            if tool not in ("bt-sync", "as-checked"):
                self.peer(
                    emulator, size, PUSH, tool, f"{tool}.push", target, push_file=push_file, repeat=repeat
                )
            elif "bt-sync" in self.tools:
                spec = self._spec(emulator, target, self._dir(size, f"{tool}-push-{repeat}"), push_file)
                command = Command(
                    btsync.push_command(spec, validate_first=tool == "bt-sync"), btsync.push_counts
                )
                self.measure(emulator, self._result(size, PUSH, tool, target, repeat=repeat), spec, command)
        finally:
            # Every push then meets the emulator as the first did, whatever the order of the cases.
            emulator.drop_dataset(target.object_name)

    def peer(
        self,
        emulator: EmulatorProcess,
        size: int,
        case: str,
        tool: str,
        subject: str,
        target: Target,
        *,
        push_file: Path | None = None,
        repeat: int = 0,
    ) -> None:
        """A peer's case, as `python -m benchmarks.cases SUBJECT SPEC`; skipped if its package is missing."""
        if tool not in self.tools:
            return
        result = self._result(size, case, tool, target, repeat=repeat)
        required = REQUIRES.get(subject)
        if required is not None and importlib.util.find_spec(required) is None:
            result.status = "skipped"
            result.reason = (
                f"`{required}` is not installed (install the bench extra: pip install -e '.[bench]')"
            )
            self._record(result)
            return
        spec = self._spec(
            emulator, target, self._dir(size, f"{tool}-{target.object_type}-{repeat}"), push_file
        )
        argv = [sys.executable, "-m", "benchmarks.cases", subject, json.dumps(asdict(spec))]
        self.measure(emulator, result, spec, Command(argv, _last_line_counts))

    def startup(self, emulator: EmulatorProcess, size: int) -> None:
        """`bt-sync --help`, the fastest of a few runs: what starting the command line costs."""
        if "bt-sync" not in self.tools:
            return
        spec = self._spec(emulator, Target("cli", "", "", 0), self._dir(size, "startup"))
        runs = []
        for _ in range(HELP_REPEATS):
            result = self._result(size, STARTUP, "bt-sync", Target("cli", "", "", 0))
            self.measure(
                emulator, result, spec, Command(btsync.help_command(), lambda _: Counts()), record=False
            )
            runs.append(result)
        self._record(min(runs, key=lambda r: r.wall_s if r.wall_s is not None else float("inf")))

    def measure(
        self,
        emulator: EmulatorProcess,
        result: Result,
        spec: CaseSpec,
        command: Command,
        *,
        record: bool = True,
    ) -> None:
        """Run the command under `benchmarks.measure` and fill in `result`."""
        workdir = Path(spec.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        measured_file, output_file = workdir / f"measured-{token}.json", workdir / f"stdout-{token}.txt"
        _say(f"{result.size:,} rows: {result.case} · {result.object} · {result.tool}")
        emulator.reset_stats()
        result.load_before = round(os.getloadavg()[0], 2)
        launcher = [sys.executable, "-m", "benchmarks.measure", str(measured_file), str(output_file), "--"]
        completed = subprocess.run(
            [*launcher, *command.argv],
            cwd=REPO_ROOT,
            env=_case_env(spec),
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
        )
        measured = json.loads(measured_file.read_text()) if measured_file.exists() else {}
        if completed.returncode or measured.get("returncode", 1):
            result.status = "failed"
            lines = completed.stderr.strip().splitlines()
            result.reason = lines[-1] if lines else f"exit status {measured.get('returncode')}"
        else:
            result.wall_s, result.cpu_s = measured["wall_s"], measured["cpu_s"]
            result.rss_peak_mb = measured["rss_peak_mb"]
            counts = command.counts(output_file.read_text())
            for field in fields(Counts):
                setattr(result, field.name, getattr(counts, field.name))
            result.rows_per_s = round(result.work_rows / result.wall_s, 1) if result.wall_s else None
            stats = emulator.stats()
            result.server_requests = sum(stats["requests"].values())
            counter = "rows_inserted" if result.object == "dataset" else "rows_served"
            result.server_rows = sum(stats[counter].values())
        if record:
            self._record(result)

    def _spec(
        self, emulator: EmulatorProcess, target: Target, workdir: Path, push_file: Path | None = None
    ) -> CaseSpec:
        return CaseSpec(
            api_url=emulator.seeded.url,
            api_key=emulator.api_key,
            object_type=target.object_type,
            object_id=target.object_id,
            project_name=PROJECT,
            object_name=target.object_name,
            workdir=str(workdir),
            push_file=None if push_file is None else str(push_file),
        )

    def _result(
        self,
        size: int,
        case: str,
        tool: str,
        target: Target,
        work_rows: int | None = None,
        repeat: int = 0,
    ) -> Result:
        return Result(
            run=self.run_id,
            size=size,
            object=target.object_type,
            case=case,
            tool=TOOL_NAMES[tool],
            status="ok",
            work_rows=target.live_rows if work_rows is None else work_rows,
            expected_rows=target.live_rows,
            repeat=repeat,
        )

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


def _last_line_counts(output: str) -> Counts:
    lines = output.strip().splitlines()
    return Counts(**json.loads(lines[-1])) if lines else Counts()


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
