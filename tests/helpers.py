"""Helpers shared by the tests: run a sync in-process or as the real CLI, and read the tables back.

Every test that syncs runs the real connector against the real emulator over
HTTP, into real Parquet files (or Iceberg tables) read back through DuckDB.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import socket
import subprocess
import sys
import threading
from contextlib import closing
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from connector.api.client import BraintrustClient
from connector.config import ApiSettings, DestinationKind, WarehouseSettings
from connector.destinations.base import ObjectRef, StagedParts, SyncState
from connector.destinations.file_size import FILES_PER_OBJECT
from connector.emulator import Emulator, FaultRule, ListQuery
from connector.sync.run import SyncOptions, SyncSummary, run_sync
from connector.sync.stage import PageStager
from connector.sync.staging import ObjectStaging
from connector.wiring import open_destination
from schemas.kinds import CATALOG_TABLES, EVENT_KINDS, EVENT_STREAMS, PROJECT
from schemas.tables import EventStream

# Every fault the emulator injects that a client must survive by retrying, read path or write path.
RETRIED_FAULTS = [
    FaultRule(kind="status", status=429, retry_after="0"),
    FaultRule(kind="status", status=429, retry_after="Thu, 01 Jan 1970 00:00:00 GMT"),
    FaultRule(kind="status", status=500),
    FaultRule(kind="status", status=502),
    FaultRule(kind="status", status=503),
    FaultRule(kind="status", status=504),
    FaultRule(kind="status", status=408),
    FaultRule(kind="slow", delay_s=1.2),
    FaultRule(kind="drop"),
    FaultRule(kind="truncate"),
]

assert PROJECT.events is not None
LOGS: EventStream = PROJECT.events
# A project's logs, for tests that stage and merge without an emulator.
LOGS_REF = ObjectRef(LOGS, "object", "project", "bot")
# A reconcile's bound that deletes whatever a full read did not meet, however new (`merge`).
EVERY_XACT = 2**64 - 1


def logs_state(version: int | None) -> SyncState:
    """The state of `LOGS_REF`'s object at `version`, as a sync hands it to a destination's `merge`."""
    return SyncState(
        object_type=LOGS.object_type, object_id=LOGS_REF.object_id, name=LOGS_REF.name,
        project_id=LOGS_REF.project_id, table_name=LOGS.table, version=version, synced_at=datetime.now(UTC),
    )  # fmt: skip


CLI = [sys.executable, "-m", "connector.cli"]
EVENT_TABLES = {stream.table: stream.key_column for stream in EVENT_STREAMS.values()}
_EVENT_ORDER = {table: f"{key}, id" for table, key in EVENT_TABLES.items()}


def warehouse_in(directory: Path, name: str = "w") -> WarehouseSettings:
    """Settings of a DuckDB destination under `directory`."""
    return WarehouseSettings(
        duckdb_path=directory / f"{name}.duckdb",
        parquet_root=str(directory / f"{name}-parquet"),
        state_dir=directory / f"{name}-state",
    )


def iceberg_in(
    directory: Path, name: str = "ice", *, catalog: str | None = None, warehouse: str | None = None
) -> WarehouseSettings:
    """Settings of an Iceberg destination: a SQLite catalog and a warehouse under `directory` by default."""
    return WarehouseSettings(
        destination=DestinationKind.ICEBERG,
        iceberg_catalog=catalog or f"sqlite:///{directory / f'{name}-catalog.db'}",
        iceberg_warehouse=warehouse or str(directory / f"{name}-warehouse"),
        state_dir=directory / f"{name}-state",
    )


def warehouse_of(destination: str, directory: Path) -> WarehouseSettings:
    """Settings of a `duckdb` or an `iceberg` destination under `directory` (a test parametrized by both)."""
    return iceberg_in(directory) if destination == "iceberg" else warehouse_in(directory)


def hourly_change(emulator: Emulator, project_id: str, new_rows: int, updated_rows: int) -> None:
    """New traces, plus user feedback on rows among the newest few percent (the usual hourly pattern)."""
    live = sorted(emulator.store.live_rows("project_logs", project_id), key=lambda row: row["created"])
    chosen = random.Random(3).sample(live[-len(live) * 3 // 100 :], updated_rows)
    emulator.store.generate_logs(project_id, new_rows, update_fraction=0.0, rng_seed=2)
    emulator.store.insert(
        "project_logs",
        project_id,
        [{"id": row["id"], "_is_merge": True, "scores": {"thumbs": 1}} for row in chosen],
    )


def fast_client(emulator: Emulator, **settings: Any) -> BraintrustClient:
    """A client of `emulator` whose retries back off for milliseconds, not seconds."""
    return BraintrustClient(
        ApiSettings(api_url=emulator.url, api_key=emulator.api_key, backoff_initial_s=0.01, **settings)
    )


def fetches_served(emulator: Emulator) -> int:
    """Fetch requests the emulator was asked for, of every object (since its stats were reset)."""
    return sum(n for (_, route), n in emulator.stats.requests.items() if route.endswith("fetch"))


def fetches_ahead_done() -> None:
    """Wait for the pages an interrupted read was fetching ahead: one reaching the emulator later would
    meet the faults and counts of what the test does next."""
    for fetching in threading.enumerate():
        if fetching.name.startswith("bt-sync-fetch"):
            fetching.join()


def sync(
    emulator: Emulator, settings: WarehouseSettings, timeout_s: float = 60.0, **options: Any
) -> SyncSummary:
    """A sync in this process (no overlap window unless given), with fast retries."""
    with fast_client(emulator, timeout_s=timeout_s) as client:
        destination = open_destination(settings, prepare=False)  # `run_sync` prepares it
        return run_sync(client, destination, SyncOptions(**{"overlap_s": 0} | options))


def query(settings: WarehouseSettings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a query over the synced tables, as a fresh reader sees them."""
    with open_destination(settings, prepare=False).reader() as con:
        return con.execute(sql, params or []).fetchall()


def synced_keys(settings: WarehouseSettings) -> dict[str, list[tuple[str, str, int]]]:
    """Every event table's (object, id, `_xact_id`), in order."""
    with open_destination(settings, prepare=False).reader() as con:
        return {
            table: con.execute(f"SELECT {key}, id, _xact_id FROM {table} ORDER BY ALL").fetchall()
            for table, key in EVENT_TABLES.items()
        }


def upstream_keys(emulator: Emulator) -> dict[str, list[tuple[str, str, int]]]:
    """What `synced_keys` must return: the emulator's live rows, newest versions."""
    keys: dict[str, list[tuple[str, str, int]]] = {}
    for kind in EVENT_KINDS:
        assert kind.events is not None
        objects = emulator.store.list_objects(kind.api_path, ListQuery())
        keys[kind.events.table] = sorted(
            (obj["id"], row["id"], int(row["_xact_id"]))
            for obj in objects
            for row in emulator.store.live_rows(kind.events.object_type, obj["id"])
        )
    return keys


def event_tables(settings: WarehouseSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every event table's rows but `_synced_at`, in key order."""
    return _each(settings, _EVENT_ORDER)


def fresh_sync_tables(emulator: Emulator, directory: Path) -> dict[str, list[tuple[Any, ...]]]:
    """`event_tables` of a fresh sync of everything into a new warehouse under `directory`: what any
    sequence of syncs, crashes and repairs must converge to."""
    reference = warehouse_in(directory, "reference")
    sync(emulator, reference)
    return event_tables(reference)


def all_tables(settings: WarehouseSettings) -> dict[str, list[tuple[Any, ...]]]:
    """`event_tables`, and every catalog table's rows but `_synced_at` in id order, through one reader.

    One: an Iceberg reader loads every table's snapshot, which costs a second or more over S3.
    """
    return _each(settings, {**_EVENT_ORDER, **{table.table: "id" for table in CATALOG_TABLES}})


def _each(settings: WarehouseSettings, order: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    with open_destination(settings, prepare=False).reader() as con:
        return {
            table: con.execute(f"SELECT * EXCLUDE (_synced_at) FROM {table} ORDER BY {by}").fetchall()
            for table, by in order.items()
        }


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    file_size_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `bt-sync ARGS` to completion (in `cwd`, default this directory) and capture its output; its files
    hold at most `file_size_limit` bytes, if given (`ulimit -f`)."""
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        preexec_fn=None if file_size_limit is None else partial(limit_file_size, file_size_limit),
    )


def limit_file_size(most_bytes: int) -> None:
    """Limit the size of the files this process writes to `most_bytes` (`ulimit -f`)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (most_bytes, resource.RLIM_INFINITY))


def cli_in_process(
    capture: pytest.CaptureFixture[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `bt-sync ARGS` in this process (`main`), captured as `run_cli` captures a new one's.

    For what a command says (its output, stderr, exit code), not for what only a process shows: it starts
    without the 0.6 s of a new interpreter's imports, and an exception the command does not handle is
    raised here, failing the test, where the process would print a traceback.
    """
    # Here, not at the top: the command line sets the allocator DuckDB reads as it loads, which the
    # tests' own imports load first.
    from connector.cli import main

    capture.readouterr()  # not what came before
    logger, pyiceberg, hook = logging.getLogger("bt_sync"), logging.getLogger("pyiceberg"), sys.excepthook
    handlers, level = list(logger.handlers), pyiceberg.level
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["bt-sync", *args])
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        try:
            main()
        except SystemExit as done:
            code = done.code
        else:
            code = 0
        finally:
            # What a command sets up for its process's life: its warnings' handler, on a stream now gone.
            logger.handlers[:], sys.excepthook = handlers, hook
            pyiceberg.setLevel(level)
    assert code is None or isinstance(code, int), code  # a text exit is printed by `run`, not `main`
    out, err = capture.readouterr()
    return subprocess.CompletedProcess([*CLI, *args], code or 0, out, err)


def run_installed(tool: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command line installed beside this Python (`dagster`, `dg`) to completion, output captured."""
    return subprocess.run(
        [str(Path(sys.executable).parent / tool), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def cli_env(emulator: Emulator, directory: Path) -> dict[str, str]:
    """The environment of a command line run against `emulator` with its warehouse in `directory`."""
    return {
        "BRAINTRUST_API_URL": emulator.url,
        "BRAINTRUST_API_KEY": emulator.api_key,
        "BT_SYNC_DUCKDB": str(directory / "w.duckdb"),
        "BT_SYNC_PARQUET": str(directory / "pq"),
        "BT_SYNC_STATE_DIR": str(directory / "state"),
    }


def one_line(stderr: str) -> str:
    """The one line a command printed on stderr, failing the test on a traceback or more lines."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


class SmallDisk:
    """A tmpfs of a few megabytes, mounted for one test (the tests run as root, here and in CI)."""

    def __init__(self, path: Path, megabytes: int) -> None:
        self.path = path
        path.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if mounted.returncode:
            pytest.fail(f"cannot mount a small tmpfs for the disk-full tests: {mounted.stderr.strip()}")

    def grow(self, megabytes: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={megabytes}m", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "--lazy", str(self.path)], check=False)


def cli_imports(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], frozenset[str]]:
    """Run `bt-sync ARGS` under `-X importtime`; return the finished run and every module it imported."""
    done = subprocess.run(
        [CLI[0], "-X", "importtime", *CLI[1:], *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    imported = (
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    )
    return done, frozenset(imported)


# The child's peak resident set size, read by a small launcher. Not read by this process: Linux starts a
# child's `ru_maxrss` at its parent's peak (carried across `exec`, and vfork shares the parent's memory
# until then), and this process holds the emulator's rows. Exact, unlike sampling the child's VmHWM
# from outside, which can miss a peak in the moments before it exits.
_PEAK_RSS_LAUNCHER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def cli_peak_rss_mib(*args: str, env: dict[str, str], timeout: float = 120) -> float:
    """Run `bt-sync ARGS` to completion and return its peak resident set size, in MiB."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_LAUNCHER, *CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout) / 1024


def start_cli_sync(
    emulator: Emulator, settings: WarehouseSettings, *extra: str, page_limit: int = 20
) -> subprocess.Popen[bytes]:
    """Start `bt-sync sync` as a real subprocess (to be killed)."""
    return subprocess.Popen(
        [*CLI, "sync", *cli_warehouse_args(settings), "--api-url", emulator.url,
         "--page-limit", str(page_limit), "--overlap-seconds", "0", "--json", *extra],
        env={**os.environ, "BRAINTRUST_API_KEY": emulator.api_key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def cli_warehouse_args(settings: WarehouseSettings) -> list[str]:
    """The `--duckdb/--parquet/--state-dir` flags naming `settings` (`--destination iceberg ...`: Iceberg)."""
    if settings.destination is DestinationKind.ICEBERG:
        return [
            "--destination",
            "iceberg",
            "--iceberg-catalog",
            str(settings.iceberg_catalog),
            "--iceberg-warehouse",
            str(settings.iceberg_warehouse),
            "--iceberg-namespace",
            settings.iceberg_namespace,
            "--state-dir",
            str(settings.state_dir),
        ]
    return [
        "--duckdb",
        str(settings.duckdb_path),
        "--parquet",
        settings.tables_root,
        "--state-dir",
        str(settings.state_dir),
    ]


def event(row_id: str, xact: int, output: Any = None) -> dict[str, Any]:
    """A log event of one span, as a fetch page carries it."""
    return {
        "id": row_id,
        "_xact_id": str(xact),
        "root_span_id": row_id,
        "created": "2025-06-02T09:00:00.000Z",
        "output": output,
    }


def staged(directory: Path, *pages: list[dict[str, Any]], cutoff: int | None = None) -> StagedParts:
    """Stage `pages` of `LOGS_REF` (in the order given) as one read does, and return its parts."""
    staging = ObjectStaging(directory, LOGS_REF)
    names: list[str] = []
    with closing(PageStager(LOGS, staging, [], ordered=True, oldest_xact=None, object_rows=0)) as stager:
        for events in pages:
            page = stager.stage(json.dumps({"events": events, "cursor": None}).encode(), cutoff)
            page.wait()
            names += page.parts
    return StagedParts(tuple(staging.directory / name for name in names), stager.ordered)


def small_files(
    monkeypatch: pytest.MonkeyPatch, *, min_rows: int, files_per_object: int = FILES_PER_OBJECT
) -> None:
    """Scale data files down to a few rows: `min_rows` at least, an object cut in `files_per_object`."""
    monkeypatch.setattr("connector.destinations.file_size.MIN_FILE_ROWS", min_rows)
    monkeypatch.setattr("connector.destinations.file_size.FILES_PER_OBJECT", files_per_object)


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
