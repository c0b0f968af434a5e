"""bt-sync: keep Braintrust logs, experiments and datasets in DuckDB and Parquet, and push datasets back.

The public surface; everything else is internal:

    from connector import ApiSettings, BraintrustClient, SyncOptions, Warehouse, ParquetSink, run_sync

    with BraintrustClient(ApiSettings()) as client:  # BRAINTRUST_API_KEY / BRAINTRUST_API_URL
        summary = run_sync(client, Warehouse(Path("data/braintrust.duckdb")), ParquetSink("data/parquet"),
                           SyncOptions())
"""

__version__ = "0.1.0"

from connector.api.client import BraintrustClient
from connector.config import ApiSettings, WarehouseSettings
from connector.destinations.load_parquet import ParquetSink
from connector.destinations.warehouse import Warehouse
from connector.errors import (
    ApiError,
    AuthError,
    BtSyncError,
    ConfigError,
    PaginationError,
    PushError,
    ServerUnavailable,
    StateError,
    WarehouseError,
    WarehouseLocked,
)
from connector.push.run import PushOptions, PushSummary, push_file
from connector.sync.run import ObjectSummary, SyncOptions, SyncSummary, run_sync, sync_object

__all__ = [
    "ApiError",
    "ApiSettings",
    "AuthError",
    "BraintrustClient",
    "BtSyncError",
    "ConfigError",
    "ObjectSummary",
    "PaginationError",
    "ParquetSink",
    "PushError",
    "PushOptions",
    "PushSummary",
    "ServerUnavailable",
    "StateError",
    "SyncOptions",
    "SyncSummary",
    "Warehouse",
    "WarehouseError",
    "WarehouseLocked",
    "WarehouseSettings",
    "__version__",
    "push_file",
    "run_sync",
    "sync_object",
]
