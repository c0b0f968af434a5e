"""Building the parts of a sync or push from settings: the one place the CLI, the demo, Dagster,
the benchmarks and the tests get their API client and destination from."""

from __future__ import annotations

from connector.api.client import BraintrustClient
from connector.config import ApiSettings, DestinationKind, WarehouseSettings
from connector.destinations.base import Destination
from connector.errors import ConfigError


def open_client(settings: ApiSettings) -> BraintrustClient:
    """An API client (close it, or use it as a context manager).

    Raises:
        ConfigError: no API key.
    """
    return BraintrustClient(settings)


def open_destination(settings: WarehouseSettings, *, prepare: bool = True) -> Destination:
    """The destination the settings name.

    Args:
        settings: which destination, and where.
        prepare: make it ready to sync into (create its tables); False only reads.

    Raises:
        ConfigError: the settings are incomplete (an Iceberg destination without a catalog).
        WarehouseError: the destination cannot be used.
    """
    destination: Destination
    if settings.destination is DestinationKind.ICEBERG:
        destination = _iceberg_destination(settings, create=prepare)
    elif settings.destination is DestinationKind.DUCKDB:
        # Imported here: DuckDB and pyarrow would add 0.15 s to a push, which needs only a client.
        from connector.destinations.duckdb import DuckDbDestination

        destination = DuckDbDestination(settings.duckdb_path, settings.tables_root, settings.state_dir)
    else:
        raise ConfigError(f"unknown destination {settings.destination!r}: use duckdb or iceberg")
    if prepare:
        destination.prepare()
    return destination


def _iceberg_destination(settings: WarehouseSettings, *, create: bool) -> Destination:
    """The Iceberg destination, whose libraries are an optional extra (imported only when chosen)."""
    try:
        from connector.destinations.iceberg import IcebergDestination
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith(("pyiceberg", "sqlalchemy")):
            raise
        raise ConfigError(
            "the iceberg destination needs the iceberg extra: pip install 'bt-sync[iceberg]'"
        ) from None
    return IcebergDestination(settings, create=create)
