"""bt-sync as its users run it: the `bt-sync` command line, and its `--json` summary.

A sync writes into the case's directory: the DuckDB file and its Parquet tree
(the default destination), or Iceberg tables in a SQLite catalog there. An
incremental sync runs the same command on the same directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.cases import CaseSpec, Counts

# The installed console script, beside this interpreter.
COMMAND = str(Path(sys.executable).with_name("bt-sync"))
DUCKDB_FILE = "btsync.duckdb"
# `--objects` naming each object type's kind.
OBJECTS = {"project_logs": "logs", "experiment": "experiments"}


def sync_command(spec: CaseSpec, *, iceberg: bool = False) -> list[str]:
    """`bt-sync sync` of the case's object into the case's directory, with default settings otherwise."""
    workdir = Path(spec.workdir)
    where = (
        [
            "--destination",
            "iceberg",
            "--iceberg-catalog",
            f"sqlite:///{workdir / 'iceberg-catalog.db'}",
            "--iceberg-warehouse",
            str(workdir / "iceberg-warehouse"),
        ]
        if iceberg
        else ["--duckdb", str(workdir / DUCKDB_FILE), "--parquet", str(workdir / "parquet")]
    )
    return [
        COMMAND,
        "sync",
        "--project",
        spec.project_name,
        "--objects",
        OBJECTS[spec.object_type],
        *where,
        "--state-dir",
        str(workdir / "state"),
        # The one setting not left at its default: the emulator writes the seeded rows within seconds,
        # so the default 5 s re-read window below the watermark would hold thousands of rows where a
        # real log's last 5 seconds hold a handful. Only an incremental sync uses it.
        "--overlap-seconds",
        "0",
        "--json",
    ]


def push_command(spec: CaseSpec, *, validate_first: bool = True) -> list[str]:
    """`bt-sync push` of the case's file into a new dataset, with the default batching and concurrency.

    `validate_first` False adds `--no-validate-first`: each batch is sent once its rows are checked.
    """
    assert spec.push_file is not None
    return [
        COMMAND,
        "push",
        spec.push_file,
        "--project",
        spec.project_name,
        "--dataset",
        spec.object_name,
        "--id-column",
        "id",
        "--state-dir",
        str(Path(spec.workdir) / "push-state"),
        "--json",
        *(() if validate_first else ("--no-validate-first",)),
    ]


def help_command() -> list[str]:
    """`bt-sync --help`: what starting the command line costs."""
    return [COMMAND, "--help"]


def sync_counts(spec: CaseSpec, output: str) -> Counts:
    """What `bt-sync sync --json` says it did to the case's object."""
    summary = json.loads(output)
    (synced,) = [o for o in summary["objects"] if o["object_id"] == spec.object_id]
    return Counts(
        rows_stored=synced["rows"],
        rows_fetched=synced["rows_fetched"],
        bytes_written=synced["bytes_written"],
        table_bytes=synced["bytes"],
        detail=(
            f"{synced['mode']}: {synced['pages']} pages, {synced['inserted']:,} inserted, "
            f"{synced['updated']:,} updated; wrote {synced['bytes_written'] / 2**20:,.1f} MiB of the "
            f"table's {synced['bytes'] / 2**20:,.1f} MiB"
        ),
    )


def push_counts(output: str) -> Counts:
    """What `bt-sync push --json` says it did."""
    summary = json.loads(output)
    return Counts(
        rows_fetched=summary["rows_read"],
        rows_stored=summary["rows_sent"],
        detail=f"{summary['batches']} batches, {summary['retries']} retries, {summary['splits']} splits",
    )
