"""Every default of bt-sync, in one place (the settings, the CLI and Dagster all read them here).

A module of plain constants, so the command line can show them without importing anything heavy.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_API_URL = "https://api.braintrust.dev"
# The web UI of the public API, for links to objects (`connector.api.links`).
DEFAULT_APP_URL = "https://www.braintrust.dev"
DEFAULT_DUCKDB_PATH = Path("data/braintrust.duckdb")
DEFAULT_PARQUET_ROOT = "data/parquet"
DEFAULT_STATE_DIR = Path("data/state")
DEFAULT_ICEBERG_NAMESPACE = "braintrust"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 6
# Traces per fetch page: the API's maximum.
DEFAULT_PAGE_LIMIT = 1000
# Braintrust ingestion is eventually consistent: an incremental sync re-reads this much below its watermark.
DEFAULT_OVERLAP_S = 5.0
# How long a sync waits for another process syncing the same object (a long full read can take minutes).
DEFAULT_LOCK_WAIT_S = 600.0
# Rows per insert request. The API limits a request's bytes (6 MiB), not its rows: rows over about
# 5.5 kB fill a batch by bytes first. A 200k-row push in batches of 1,000 rows took about a tenth less
# CPU than in batches of 500, in the same wall time.
DEFAULT_BATCH_ROWS = 1000
DEFAULT_CONCURRENCY = 4
# `bt-sync maintain` keeps table versions (Iceberg snapshots) and unreferenced files younger than this.
DEFAULT_RETAIN_HOURS = 24.0
# Windows given in hours (a retention, a check's age): a century. Any longer keeps every version
# anyway, and much longer is beyond what a clock can subtract.
MAX_WINDOW_HOURS = 100 * 366 * 24
# A day: no single API response is worth waiting longer for, and a socket cannot wait past ~317 years.
MAX_TIMEOUT_S = 24 * 3600.0
# An hour between two attempts, and a thousand attempts: past them a request is not worth retrying.
MAX_BACKOFF_S = 3600.0
MAX_ATTEMPTS = 1000
