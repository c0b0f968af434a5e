"""Helpers shared by the sync tests: run a sync in-process or as the real CLI, and read tables back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from connector.api.client import BraintrustClient
from connector.config import ApiSettings
from connector.destinations.load_parquet import ParquetSink
from connector.destinations.warehouse import Warehouse
from connector.emulator import Emulator
from connector.sync.run import SyncOptions, SyncSummary, run_sync
from schemas.tables import EVENT_STREAMS

CLI = [sys.executable, "-c", "from connector.cli import main; main()"]
EVENT_TABLES = {s.table: s.key_column for s in EVENT_STREAMS.values()}


def sync(
    emulator: Emulator, db: Path, parquet: Path | str | None = None, timeout_s: float = 60.0, **options: Any
) -> SyncSummary:
    """Run a sync in this process (no overlap window unless given), with fast retries."""
    settings = ApiSettings(
        api_url=emulator.url, api_key=emulator.api_key, backoff_initial_s=0.01, timeout_s=timeout_s
    )
    with BraintrustClient(settings) as client:
        sink = ParquetSink(str(parquet)) if parquet else None
        return run_sync(client, Warehouse(db), sink, SyncOptions(**{"overlap_s": 0} | options))


def start_cli_sync(
    emulator: Emulator, db: Path, parquet: Path, *, page_limit: int = 20, api_key: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `bt-sync sync` as a real subprocess (to be killed)."""
    return subprocess.Popen(
        [
            *CLI,
            "sync",
            "--api-url",
            emulator.url,
            "--duckdb",
            str(db),
            "--parquet",
            str(parquet),
            "--page-limit",
            str(page_limit),
            "--overlap-seconds",
            "0",
            "--json",
        ],
        env={**os.environ, "BRAINTRUST_API_KEY": api_key or emulator.api_key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `bt-sync ARGS` to completion and capture its output."""
    return subprocess.run(
        [*CLI, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120
    )


def table_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table except the sync timestamp, in key order."""
    key = EVENT_TABLES.get(table, "id")
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"SELECT * EXCLUDE (_synced_at) FROM {table} ORDER BY {key}, id").fetchall()


def all_tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """`table_rows` of every event table."""
    return {table: table_rows(db, table) for table in EVENT_TABLES}
