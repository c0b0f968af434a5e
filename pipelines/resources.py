"""Dagster resources: the Braintrust API and the warehouse (DuckDB file and Parquet root).

Both wrap `connector` settings rather than re-implementing them. A field left
as None falls through to the same environment variable and default as the
CLI (`BRAINTRUST_API_URL`, `BT_SYNC_DUCKDB`, `BT_SYNC_PARQUET`), so one
environment configures both.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from connector.api.client import BraintrustClient
from connector.config import ApiSettings, WarehouseSettings
from connector.destinations.load_parquet import ParquetSink
from connector.destinations.warehouse import Warehouse

# Partition runs wait on each other's DuckDB commits; a merge of a large object can hold the file for minutes.
DEFAULT_LOCK_WAIT_S = 600.0


class BraintrustResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The Braintrust API, and which of its projects to sync.

    Pass the key as `dg.EnvVar("BRAINTRUST_API_KEY")`: Dagster then stores and
    shows only the variable's name, and `connector` keeps the value in a
    `SecretStr`, so it appears in no metadata, log or error.

    Args:
        api_key: the API key.
        api_url: the API base URL; None reads `BRAINTRUST_API_URL`, else the public API.
        projects: names or ids of the projects to sync; empty syncs every project the key sees.
        timeout_s: per-request timeout in seconds.
        max_attempts: attempts per request before a transient failure is raised.
    """

    api_key: str
    api_url: str | None = None
    projects: list[str] = Field(default_factory=list)
    timeout_s: float = 60.0
    max_attempts: int = 6

    def settings(self) -> ApiSettings:
        """The `connector` settings these fields (and the environment, for unset ones) describe."""
        given: dict[str, Any] = {
            "api_key": self.api_key,
            "timeout_s": self.timeout_s,
            "max_attempts": self.max_attempts,
        }
        if self.api_url is not None:
            given["api_url"] = self.api_url
        return ApiSettings(**given)

    @contextmanager
    def client(self) -> Iterator[BraintrustClient]:
        """Open an API client, closed when the block ends."""
        with BraintrustClient(self.settings()) as client:
            yield client


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The DuckDB file and Parquet root that syncs write and checks read.

    Args:
        duckdb_path: the DuckDB file; None reads `BT_SYNC_DUCKDB`, else `data/braintrust.duckdb`.
        parquet_root: a directory or `pyarrow.fs` URI; None reads `BT_SYNC_PARQUET`, else `data/parquet`.
        write_parquet: False writes DuckDB only.
        lock_wait_s: how long a run waits for another process holding the DuckDB file.
    """

    duckdb_path: str | None = None
    parquet_root: str | None = None
    write_parquet: bool = True
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S

    def settings(self) -> WarehouseSettings:
        """The `connector` settings these fields (and the environment, for unset ones) describe."""
        given: dict[str, Any] = {"duckdb_path": self.duckdb_path, "parquet_root": self.parquet_root}
        settings = WarehouseSettings(**{name: value for name, value in given.items() if value is not None})
        return settings if self.write_parquet else settings.model_copy(update={"parquet_root": None})

    def warehouse(self) -> Warehouse:
        """The DuckDB file, waiting up to `lock_wait_s` for other writers."""
        return Warehouse(self.settings().duckdb_path, lock_wait_s=self.lock_wait_s)

    def parquet(self) -> ParquetSink | None:
        """The Parquet root, or None when Parquet is off."""
        root = self.settings().parquet_root
        return ParquetSink(root) if root else None

    @contextmanager
    def read_only(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the DuckDB file read-only (waiting for a writer to finish its commit)."""
        with self.warehouse().connect(read_only=True) as connection:
            yield connection
