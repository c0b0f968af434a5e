"""Peer: a dlt `rest_api` pipeline, merging on `id` into DuckDB.

A declarative REST source as its docs show it: POST `fetch` with a JSON body,
the cursor read from and written into the body, `events` as the data, and a
`merge` on `id` that keeps the newest `_xact_id` (`dedup_sort`). Two settings
give dlt its best case rather than its defaults: nested values stay JSON
columns (`max_table_nesting=0`, the shape bt-sync stores, without the child
tables default unnesting creates), and load files are Parquet. dlt's default
for DuckDB, one `INSERT ... VALUES` statement per file, took 5x longer and
1.7 GB of memory for 20k rows, so it would not fit 1M rows on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import dlt
import duckdb
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from dlt.sources.rest_api import rest_api_source

from benchmarks.cases import CaseSpec, Counts

PAGE_LIMIT = 1000
DATASET = "braintrust"
LOADER_FILE_FORMAT: Final = "parquet"


def fetch(spec: CaseSpec) -> Counts:
    """Run the pipeline once into a fresh DuckDB file and pipelines directory."""
    workdir = Path(spec.workdir)
    table = spec.object_type
    source = rest_api_source(
        {
            "client": {"base_url": spec.api_url, "auth": BearerTokenAuth(token=spec.api_key)},
            "resources": [
                {
                    "name": table,
                    "primary_key": "id",
                    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
                    "columns": {"_xact_id": {"dedup_sort": "desc"}},
                    "endpoint": {
                        "path": f"v1/{spec.object_type}/{spec.object_id}/fetch",
                        "method": "POST",
                        "json": {"limit": PAGE_LIMIT},
                        "data_selector": "events",
                        "paginator": JSONResponseCursorPaginator(
                            cursor_path="cursor", cursor_body_path="cursor"
                        ),
                    },
                }
            ],
        },
        max_table_nesting=0,
    )
    database = workdir / "dlt.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(workdir / "dlt-pipelines"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name=DATASET,
    )
    info = pipeline.run(source, loader_file_format=LOADER_FILE_FORMAT)
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    assert trace is not None, "a pipeline that ran has a trace"
    normalized = trace.last_normalize_info
    steps = ", ".join(
        f"{step.step} {(step.finished_at - step.started_at).total_seconds():.1f} s"
        for step in trace.steps
        if step.step != "run" and step.finished_at is not None
    )
    with duckdb.connect(str(database), read_only=True) as connection:
        stored = connection.execute(f'SELECT count(*) FROM {DATASET}."{table}"').fetchone()
    return Counts(
        rows_stored=int(stored[0]) if stored else 0,
        rows_fetched=None if normalized is None else normalized.row_counts.get(table),
        detail=f"{steps} (max_table_nesting=0, loader_file_format={LOADER_FILE_FORMAT}, delete-insert merge)",
    )
