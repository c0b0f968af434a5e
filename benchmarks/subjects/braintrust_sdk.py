"""Peer: the official `braintrust` SDK, reading into DuckDB and pushing a file, the way a user would.

Reading: the SDK has no fetcher for project logs, so this reads an experiment
holding the same generated rows (`braintrust.init(..., open=True).fetch()`). The
SDK returns every version of every row, so the loop appends batches of 10,000
rows and keeps the newest version per `id` at the end.

Pushing: `Dataset.insert()` per line of the file in the SDK's default (background)
mode, with a `flush()` every 10,000 lines: its queue holds 25,000 rows and silently
drops the oldest beyond that, so a single flush at the end stored half the rows or
less. The rows stored are what the emulator then holds.

`BRAINTRUST_APP_URL`, `BRAINTRUST_API_URL` and `BRAINTRUST_API_KEY` point it at the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import braintrust
import duckdb
import orjson
import pyarrow as pa

from benchmarks.cases import CaseSpec, Counts

BATCH_ROWS = 10_000
# Flushed this often, the SDK's queue never overflows (measured on the 200k file: every 10,000 rows, all
# 200,000 stored in 10.2 s and 99 MB; every 20,000, 11.3 s; a 1,000,000-row queue, 12.6 s and 852 MB).
PUSH_FLUSH_ROWS = 10_000
TEXT = ("id", "_xact_id", "created", "project_id", "experiment_id", "span_id", "root_span_id")
LISTS = ("span_parents", "tags")
PAYLOADS = ("input", "output", "expected", "error", "scores", "metadata", "metrics", "span_attributes")
# Arrow columns in this order; DuckDB casts the text columns on insert.
VERSIONS_DDL = (
    "CREATE TABLE versions (id VARCHAR, _xact_id UBIGINT, created TIMESTAMPTZ, project_id VARCHAR, "
    "experiment_id VARCHAR, span_id VARCHAR, root_span_id VARCHAR, span_parents VARCHAR[], tags VARCHAR[], "
    "input JSON, output JSON, expected JSON, error JSON, scores JSON, metadata JSON, metrics JSON, "
    "span_attributes JSON, is_root BOOLEAN)"
)


def fetch(spec: CaseSpec) -> Counts:
    """Fetch every row version of the experiment and keep the newest per `id` in DuckDB."""
    experiment = braintrust.init(project=spec.project_name, experiment=spec.object_name, open=True)
    fetched = 0
    with duckdb.connect(str(Path(spec.workdir) / "sdk.duckdb")) as connection:
        connection.execute(VERSIONS_DDL)
        batch: list[Mapping[str, Any]] = []
        for row in experiment.fetch():
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                _append(connection, batch)
                fetched, batch = fetched + len(batch), []
        _append(connection, batch)
        fetched += len(batch)
        connection.execute(
            "CREATE TABLE experiment_events AS SELECT * FROM versions "
            "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _xact_id DESC) = 1"
        )
        connection.execute("DROP TABLE versions")
        stored = connection.execute("SELECT count(*) FROM experiment_events").fetchone()
    return Counts(
        rows_stored=int(stored[0]) if stored else 0,
        rows_fetched=fetched,
        detail=f"the SDK held all {fetched:,} row versions in a list before the loop saw the first",
    )


def _append(connection: duckdb.DuckDBPyConnection, rows: list[Mapping[str, Any]]) -> None:
    if not rows:
        return
    arrays = [pa.array([row.get(name) for row in rows], pa.string()) for name in TEXT]
    arrays += [pa.array([row.get(name) for row in rows], pa.list_(pa.string())) for name in LISTS]
    arrays += [
        pa.array([None if row.get(name) is None else orjson.dumps(row[name]) for row in rows], pa.string())
        for name in PAYLOADS
    ]
    arrays.append(pa.array([row.get("is_root") for row in rows], pa.bool_()))
    connection.from_arrow(
        pa.Table.from_arrays(arrays, names=[*TEXT, *LISTS, *PAYLOADS, "is_root"])
    ).insert_into("versions")


def push(spec: CaseSpec) -> Counts:
    """Insert every line of the file into a new dataset with `Dataset.insert`, flushing every
    `PUSH_FLUSH_ROWS` lines and at the end."""
    assert spec.push_file is not None
    dataset = braintrust.init_dataset(project=spec.project_name, name=spec.object_name)
    sent = 0
    with open(spec.push_file, "rb") as lines:
        for line in lines:
            dataset.insert(**orjson.loads(line))
            sent += 1
            if sent % PUSH_FLUSH_ROWS == 0:
                dataset.flush()
    dataset.flush()
    # The SDK drops what it cannot send without raising: count what arrived.
    summary = dataset.summarize(summarize_data=True).data_summary
    return Counts(
        rows_fetched=sent,
        rows_stored=None if summary is None else summary.total_records,
        detail=f"Dataset.insert per line, a flush every {PUSH_FLUSH_ROWS:,} (POST /logs3 in the background)",
    )
