"""A local Braintrust-compatible API server for tests, benchmarks and the demo.

from connector.emulator import Emulator, FaultRule

with Emulator(seed="demo") as emulator:
    emulator.faults.add(FaultRule(kind="status", status=429, retry_after="1", route="/fetch"))
    ...  # point a client at emulator.url with emulator.api_key
"""

from __future__ import annotations

from connector.emulator.app import DEFAULT_MAX_REQUEST_BYTES, Emulator
from connector.emulator.catalog import ListQuery
from connector.emulator.errors import Rejected
from connector.emulator.faults import FaultPlan, FaultRule
from connector.emulator.history import Page
from connector.emulator.kinds import KINDS, Kind
from connector.emulator.server import READ_ONLY_SUFFIX
from connector.emulator.stats import Stats
from connector.emulator.store import OBJECT_TYPES, Events, ObjectType, Store

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "KINDS",
    "OBJECT_TYPES",
    "READ_ONLY_SUFFIX",
    "Emulator",
    "Events",
    "FaultPlan",
    "FaultRule",
    "Kind",
    "ListQuery",
    "ObjectType",
    "Page",
    "Rejected",
    "Stats",
    "Store",
]
