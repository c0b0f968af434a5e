"""bt-sync: keep Braintrust logs, experiments and datasets in your warehouse, and push datasets back.

The public surface, for use from Python; everything else is internal:

    from connector import ApiSettings, SyncOptions, WarehouseSettings, open_client, open_destination, run_sync

    with open_client(ApiSettings()) as client:  # BRAINTRUST_API_KEY / BRAINTRUST_API_URL
        summary = run_sync(client, open_destination(WarehouseSettings(), prepare=False), SyncOptions())

Names load on first use, so importing `connector` costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_HOMES = {
    "ApiSettings": "connector.config",
    "WarehouseSettings": "connector.config",
    "BtSyncError": "connector.errors",
    "open_client": "connector.wiring",
    "open_destination": "connector.wiring",
    "SyncOptions": "connector.sync.run",
    "SyncSummary": "connector.sync.run",
    "run_sync": "connector.sync.run",
    "PushOptions": "connector.push.options",
    "PushSummary": "connector.push.options",
    "push_file": "connector.push.run",
}

__all__ = [
    "ApiSettings",
    "BtSyncError",
    "PushOptions",
    "PushSummary",
    "SyncOptions",
    "SyncSummary",
    "WarehouseSettings",
    "__version__",
    "open_client",
    "open_destination",
    "push_file",
    "run_sync",
]

if TYPE_CHECKING:
    from connector.config import ApiSettings, WarehouseSettings
    from connector.errors import BtSyncError
    from connector.push.options import PushOptions, PushSummary
    from connector.push.run import push_file
    from connector.sync.run import SyncOptions, SyncSummary, run_sync
    from connector.wiring import open_client, open_destination


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'connector' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
