"""Dagster resources: the Braintrust API and the warehouse (DuckDB and Parquet, or Iceberg).

Both wrap `connector` settings rather than re-implementing them. A field left
as None falls through to the same environment variable and default as the
CLI (`BRAINTRUST_API_URL`, `BT_SYNC_DUCKDB`, `BT_SYNC_PARQUET`), so one
environment configures both.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import dagster as dg
import duckdb
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings

from connector.api.client import BraintrustClient
from connector.config import ApiSettings, DestinationKind, WarehouseSettings, check_duckdb_file
from connector.defaults import DEFAULT_API_URL, DEFAULT_APP_URL, DEFAULT_LOCK_WAIT_S
from connector.destinations.base import Destination, SyncState
from connector.destinations.filesystem import Root
from connector.destinations.query import named_damage
from connector.errors import ConfigError, MissingApiKey, WarehouseError, first_line, validation_problems
from connector.wiring import open_destination

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def duckdb_schema(duckdb_path: Path) -> str:
    """The schema analysts find the tables in, in the DuckDB file at `duckdb_path`: `<file name>.main`."""
    return f"{duckdb_path.stem}.main"


class BraintrustResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The Braintrust API, and which of its projects to sync.

    Leave the key unset: `connector` reads `BRAINTRUST_API_KEY` itself when it
    needs it and keeps the value in a `SecretStr`, so it appears in no metadata,
    log or error, and a missing key is one line. (`dg.EnvVar` also keeps it out
    of Dagster's config, but while the variable is unset Dagster fails every
    sensor tick and run with its own error and traceback.)

    Args:
        api_key: the API key; None reads `BRAINTRUST_API_KEY`.
        api_url: the API base URL; None reads `BRAINTRUST_API_URL`, else the public API.
        projects: names or ids of the projects to sync; empty syncs every project the key sees.
        timeout_s: per-request timeout in seconds; None reads `BT_SYNC_TIMEOUT`, else 60.
        max_attempts: attempts per request before a transient failure is raised; None reads
            `BT_SYNC_MAX_ATTEMPTS`, else 6.
        app_url: the Braintrust web UI that materializations link to; None links to the public UI
            when `api_url` is the public API, and nowhere otherwise.
    """

    api_key: str | None = None
    api_url: str | None = None
    projects: list[str] = Field(default_factory=list)
    timeout_s: float | None = None
    max_attempts: int | None = None
    app_url: str | None = None

    def settings(self) -> ApiSettings:
        """The `connector` settings these fields (and the environment, for unset ones) describe.

        Raises:
            ConfigError: a field or variable is invalid (which no retry can mend).
        """
        fields = ("api_key", "api_url", "timeout_s", "max_attempts")
        return _settings(ApiSettings, {name: getattr(self, name) for name in fields})

    @contextmanager
    def client(self) -> Iterator[BraintrustClient]:
        """Open an API client, closed when the block ends.

        Raises:
            ConfigError: no key, or a blank one (said in Dagster's words: there is no `--api-key` here).
        """
        try:
            client = BraintrustClient(self.settings())
        except MissingApiKey:
            raise ConfigError(
                "No Braintrust API key: set BRAINTRUST_API_KEY where Dagster runs, or give "
                "BraintrustResource an api_key that is not blank."
            ) from None
        with client:
            yield client

    def app(self) -> str | None:
        """The Braintrust web UI that links point to, if known."""
        if self.app_url is not None:
            return self.app_url
        return DEFAULT_APP_URL if self.settings().api_url == DEFAULT_API_URL else None


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where syncs write and checks read: the same settings as the CLI's.

    A field left as None falls through to the same environment variable and
    default as the CLI (`BT_SYNC_DESTINATION`, `BT_SYNC_DUCKDB`, `BT_SYNC_PARQUET`, ...).

    Args:
        destination: `duckdb` or `iceberg`.
        duckdb_path: the DuckDB file of views analysts open.
        parquet_root: a directory or `s3://` URI holding the tables' Parquet files.
        write_parquet: False keeps the Parquet files in a private directory beside the DuckDB file.
        state_dir: this worker's scratch directory (staged pages, checkpoints).
        iceberg_catalog: the Iceberg catalog (a SQL catalog URI or a `.pyiceberg.yaml` name).
        iceberg_warehouse: where Iceberg data files go.
        iceberg_namespace: the Iceberg namespace.
        lock_wait_s: how long a run waits for another run syncing the same object.
    """

    destination: str | None = None
    duckdb_path: str | None = None
    parquet_root: str | None = None
    write_parquet: bool = True
    state_dir: str | None = None
    iceberg_catalog: str | None = None
    iceberg_warehouse: str | None = None
    iceberg_namespace: str | None = None
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S

    def settings(self) -> WarehouseSettings:
        """The `connector` settings these fields (and the environment, for unset ones) describe.

        Raises:
            ConfigError: a field or variable is invalid (which no retry can mend).
        """
        settings = _settings(WarehouseSettings, {name: getattr(self, name) for name in _WAREHOUSE_FIELDS})
        return settings if self.write_parquet else settings.model_copy(update={"parquet_root": None})

    def open(self, *, prepare: bool = True) -> Destination:
        """The destination, ready to sync into (`prepare`), or to be prepared by the caller.

        Raises:
            ConfigError: the settings are invalid, or the DuckDB file is a directory or no DuckDB file (as
                the command line refuses it: every sync failed opening it, the sensor's ticks healthy).
        """
        settings = self.settings()
        if settings.destination is DestinationKind.DUCKDB:
            named = "the warehouse resource's duckdb_path" if self.duckdb_path else "BT_SYNC_DUCKDB"
            check_duckdb_file(settings.duckdb_path, named)
        return open_destination(settings, prepare=prepare)

    @property
    def table_schema(self) -> str:
        """Where analysts find the tables: `<DuckDB file name>.main`, or the Iceberg namespace."""
        settings = self.settings()
        if settings.destination is DestinationKind.ICEBERG:
            return settings.iceberg_namespace
        return duckdb_schema(settings.duckdb_path)

    @property
    def is_iceberg(self) -> bool:
        """Whether the tables are Iceberg tables (else Parquet files and a DuckDB file of views)."""
        return self.settings().destination is DestinationKind.ICEBERG

    def uri(self, relative: str = "") -> str:
        """A URI of a path inside the tables' Parquet root, without credentials (`file://` when local)."""
        root = Root(self.settings().tables_root)
        uri = root.uri(relative)
        return f"file://{quote(uri, safe='/=')}" if root.is_local else uri

    def duckdb_file(self) -> Path:
        """The analysts' DuckDB file, as an absolute path."""
        return self.settings().duckdb_path.resolve()

    def synced_objects(self) -> list[SyncState]:
        """The state of every object synced into the warehouse; read without a lock, never blocking a sync."""
        return self.open(prepare=False).list_states()

    @contextmanager
    def reader(self, *, pinned: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection viewing the synced tables (never blocks a sync).

        `pinned`: read the commits current now, naming each of their files, so a file missing from the
        warehouse fails the reader (`WarehouseError`) rather than leaving its rows out of every query.
        A DuckDB error of a query made with it (a file that cannot be read) is raised as a
        `WarehouseError` too: a step fails at once with it, rather than being retried for minutes.
        """
        with self.open(prepare=False).reader(pinned=pinned) as connection:
            try:
                yield connection
            except duckdb.Error as error:
                # A file damaged on disk, found by a query: terminal, as a missing one is at the start.
                reason = named_damage(error, self.settings()) or first_line(error)
                raise WarehouseError(f"the synced tables cannot be read: {reason}") from error


_WAREHOUSE_FIELDS = (
    "destination",
    "duckdb_path",
    "parquet_root",
    "state_dir",
    "iceberg_catalog",
    "iceberg_warehouse",
    "iceberg_namespace",
)


def _settings(kind: type[SettingsT], fields: dict[str, Any]) -> SettingsT:
    """`kind` from the fields that are set (the others from the environment), or a one-line `ConfigError`.

    pydantic's own error is no `BtSyncError`: the retry policy would retry a typo for minutes.
    """
    try:
        return kind(**{name: value for name, value in fields.items() if value is not None})
    except ValidationError as error:
        raise ConfigError(f"invalid setting: {validation_problems(error)}") from None
