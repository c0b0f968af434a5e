"""The Iceberg catalog the settings name: opening it, creating the tables, committing, retrying conflicts.

`--iceberg-catalog` is either a SQL catalog URI (`sqlite:///…` for one
machine, `postgresql+psycopg://…` shared by many) or the name of a catalog in
`.pyiceberg.yaml` (or `PYICEBERG_CATALOG__<NAME>__…` variables), which is how
REST and Glue catalogs are configured. Object storage credentials come from the
standard AWS settings or the catalog's own `s3.*` properties.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchTableError,
    NotInstalledError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import BooleanExpression, EqualTo, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.io import load_file_io
from pyiceberg.io.pyarrow import PyArrowFileIO, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import DataScan, FileScanTask, Table

from connector.destinations.base import SyncState
from connector.errors import ConfigError, WarehouseError, first_line
from connector.redaction import redact
from schemas.tables import EventStream

logger = logging.getLogger("bt_sync")
T = TypeVar("T")

# The catalog name rows of a SQL catalog are kept under (other engines' JDBC catalogs must use it too).
SQL_CATALOG_NAME = "bt_sync"
TABLE_PROPERTIES = {
    # Workers on many machines commit to the same tables; pyiceberg re-validates and retries each conflict.
    "commit.retry.num-retries": "20",
    "commit.retry.min-wait-ms": "50",
    "commit.retry.max-wait-ms": "2000",
    # Every commit writes a metadata file: keep only the recent ones.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    "write.parquet.compression-codec": "zstd",
}
# Attempts at an operation whose commit conflicted with another writer's in a way that needs a new plan.
REPLANS = 12
# The table property holding an object's committed state (`SyncState` as JSON): `bt-sync.state.<object id>`.
STATE_PROPERTY = "bt-sync.state."
# Attempts at opening the catalog: only the first use of a new SQL catalog races, once.
OPEN_ATTEMPTS = 3


def open_catalog(uri_or_name: str | None, warehouse: str | None, *, create: bool = True) -> Catalog:
    """The catalog: a SQL catalog at a URI, or one configured by name.

    Args:
        uri_or_name: a SQL catalog URI, or the name of a configured catalog.
        warehouse: where a SQL catalog's tables keep their files.
        create: whether a SQLite catalog's missing file is created; if not, it is read as an empty
            catalog (commands that only read must leave no file behind).

    Raises:
        ConfigError: no catalog given, or a SQL catalog without a warehouse location.
        WarehouseError: the catalog cannot be opened.
    """
    if not uri_or_name:
        raise ConfigError(
            # `push --sql` reads an Iceberg warehouse from the environment alone: no flag to name.
            "the iceberg destination needs a catalog: BT_SYNC_ICEBERG_CATALOG (or --iceberg-catalog, for the "
            "commands that take it), a SQL catalog URI such as sqlite:///catalog.db or the name of a catalog "
            "in .pyiceberg.yaml"
        )
    properties = _standard_aws_settings()
    if "://" in uri_or_name:
        _refuse_what_is_no_sql_catalog(uri_or_name)
        if not warehouse:
            raise ConfigError(
                "a SQL catalog needs a warehouse location: BT_SYNC_ICEBERG_WAREHOUSE (or "
                "--iceberg-warehouse, for the commands that take it), a directory or s3://bucket/prefix"
            )
        uri, sqlite_file = uri_or_name, _sqlite_file(uri_or_name)
        if sqlite_file is not None and not sqlite_file.exists():
            if create:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)  # as the warehouse's directory is
            else:
                uri = "sqlite:///:memory:"
        name, properties = SQL_CATALOG_NAME, {**properties, "type": "sql", "uri": uri}
    else:
        name = uri_or_name
    if warehouse:
        properties["warehouse"] = warehouse if "://" in warehouse else os.path.abspath(warehouse)
    attempt = 1
    while True:
        try:
            return load_catalog(name, **properties)
        except NotInstalledError as error:
            # pyiceberg says SQLAlchemy is missing when the URI's database driver is: name the driver.
            missing = getattr(error.__cause__, "name", None)
            if missing is None:
                raise
            raise ConfigError(
                f"the iceberg catalog {redact(uri_or_name)} needs the Python module {missing}, which is not "
                "installed: name a driver bt-sync[iceberg] installs (postgresql+psycopg://, sqlite:///), "
                f"or install {missing}"
            ) from None
        except ValueError as error:
            reason = redacted_first_line(error)
            if "URI missing" in reason:  # pyiceberg's words name its own CLI's --uri
                variable = f"PYICEBERG_CATALOG__{name.upper()}__URI"
                reason = f"no catalog of that name is configured in .pyiceberg.yaml or {variable}"
            raise ConfigError(
                f"cannot use the iceberg catalog {redact(uri_or_name)}: {reason} (give a SQL "
                "catalog URI such as sqlite:///catalog.db, or the name of a catalog in .pyiceberg.yaml)"
            ) from None
        except Exception as error:
            if attempt == OPEN_ATTEMPTS:
                raise WarehouseError(
                    f"cannot open the iceberg catalog {redact(uri_or_name)}: {redacted_first_line(error)}"
                ) from None
            # Workers opening a new SQL catalog at one moment race to create its tables
            # (`table iceberg_tables already exists`): the loser finds them made on its next try.
            time.sleep(random.uniform(0.05, 0.2) * attempt)
            attempt += 1


def _refuse_what_is_no_sql_catalog(uri: str) -> None:
    """Refuse a URI that names no SQL catalog bt-sync can open, saying what to give instead.

    Raises:
        ConfigError: a REST catalog's URL, or a database other than SQLite and PostgreSQL.
    """
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        raise ConfigError(
            f"the iceberg catalog {redact(uri)} is a REST catalog's URL: define the catalog in "
            ".pyiceberg.yaml (catalog: {name: {uri: ...}}) and give its name"
        )
    if scheme.split("+", 1)[0] not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"the iceberg catalog {redact(uri)}: a SQL catalog's database is SQLite (sqlite:///catalog.db) "
            "or PostgreSQL (postgresql+psycopg://host/db)"
        )


def _sqlite_file(uri: str) -> Path | None:
    """The file of a SQLite catalog's URI (None for another database).

    Raises:
        ConfigError: the URI is no URI, or names a SQLite database in memory.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:
        return None  # opening it says what is wrong
    except ValueError:  # a port that is no number: SQLAlchemy's message is Python's, quoting the URI's text
        raise ConfigError(
            f"the iceberg catalog {redact(uri)} is not a valid URI (its port is not a number, or its host is "
            "cut): give one such as postgresql+psycopg://user@host:5432/db"
        ) from None
    if url.get_backend_name() != "sqlite":
        return None
    path = url.database
    if url.query.get("uri") in ("true", "1") and path is not None:
        # SQLite's own URI (`file:x.db?mode=memory`), which the driver reads: the file is its path.
        path = path.removeprefix("file:").partition("?")[0]
    if path in (None, "", ":memory:") or url.query.get("mode") == "memory":
        # What `sqlite:///$CATALOG` becomes with the variable unset: every sync read everything afresh,
        # kept nothing, and left its files in the warehouse for no catalog to name.
        raise ConfigError(
            f"the iceberg catalog {redact(uri)} is a SQLite catalog in memory, which keeps nothing between "
            "runs: name its file, such as sqlite:////var/lib/bt-sync/catalog.db"
        )
    return Path(str(path))


def _standard_aws_settings() -> dict[str, str]:
    """The standard AWS variables pyiceberg's S3 file IO does not read itself, as catalog properties."""
    properties: dict[str, str] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        # Without a region pyiceberg asks AWS where each bucket is: an S3-compatible store cannot answer.
        properties["s3.region"] = region
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        properties["s3.endpoint"] = endpoint
    return properties


def ensure_table(
    catalog: Catalog, identifier: tuple[str, str], schema: Schema, spec: PartitionSpec | None = None
) -> Table:
    """The table, created if missing (another worker creating it at the same moment is fine)."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    location = _location_of_its_own(catalog, identifier)
    try:
        return catalog.create_table(
            identifier,
            schema,
            location=location,
            partition_spec=spec or UNPARTITIONED_PARTITION_SPEC,
            properties=TABLE_PROPERTIES,
        )
    except TableAlreadyExistsError:
        if location is not None:
            # The metadata file written for the table this worker lost the race to create, at a location
            # no table names: `maintain` would never find it.
            _delete_directory(catalog, location)
        return catalog.load_table(identifier)


def _delete_directory(catalog: Catalog, location: str) -> None:
    io = load_file_io(catalog.properties, location)
    if not isinstance(io, PyArrowFileIO):
        return
    scheme, netloc, path = PyArrowFileIO.parse_location(location)
    with contextlib.suppress(OSError):  # left behind, it only takes room
        io.fs_by_scheme(scheme, netloc).delete_dir(path)


def _location_of_its_own(catalog: Catalog, identifier: tuple[str, str]) -> str | None:
    """A new directory for a SQL catalog's table, or None to let a REST or Glue catalog place it.

    `maintain` deletes the files under a table's location that its metadata does not name, so two
    tables must never share one: a SQL catalog's default (`<warehouse>/<namespace>/<table>`) is shared
    by a second catalog given the same warehouse (a relative `sqlite:///cat.db` used from another
    directory, a staging catalog pointed at production's warehouse), and by a table created again
    after a drop, whose old files are those of the table before.
    """
    if not isinstance(catalog, SqlCatalog):
        return None
    namespace, name = identifier
    warehouse = catalog.properties.get("warehouse")
    # Where pyiceberg would place it: under the namespace's own location if it has one.
    directory = catalog.load_namespace_properties(namespace).get("location") or (
        warehouse and f"{warehouse.rstrip('/')}/{namespace}"
    )
    return f"{directory.rstrip('/')}/{name}-{uuid.uuid4().hex}" if directory else None


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create the namespace if missing (another worker creating it at the same moment is fine)."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        # Created by another worker between the check and the create: pyiceberg says so, or the SQL
        # catalog's database does (a unique constraint on the namespace's properties).
        if not catalog.namespace_exists(namespace):
            raise


def replace_rows(table: Table, rows: pa.Table, snapshot_properties: dict[str, str]) -> None:
    """Commit one snapshot in which `rows` (one file) replace every row of a small table."""
    transaction = table.transaction()
    with transaction.update_snapshot(snapshot_properties=snapshot_properties).overwrite() as update:
        for task in planned_files(table.scan()):
            update.delete_data_file(task.file)
        if rows.num_rows:
            for data_file in _dataframe_to_data_files(
                transaction.table_metadata, rows.cast(table.schema().as_arrow()), table.io, update.commit_uuid
            ):
                update.append_data_file(data_file)
    transaction.commit_transaction()


def object_files(table: Table, stream: EventStream, object_id: str) -> list[FileScanTask]:
    """The object's data files in the table's current snapshot (its partitions only)."""
    return planned_files(table.scan(row_filter=_object_rows(stream, object_id)))


def planned_files(scan: DataScan) -> list[FileScanTask]:
    """The data files a scan reads, from the manifests of the table's snapshot.

    Raises:
        WarehouseError: a manifest cannot be read (truncated, overwritten): pyiceberg's reason.
    """
    try:
        return list(scan.plan_files())
    except OSError:
        raise  # the file system's: possibly passing, for the caller to retry
    except Exception as error:  # a damaged file fails pyiceberg in many ways (UnicodeDecodeError, EOFError…)
        raise WarehouseError(
            f"cannot read the manifests of the Iceberg table at {scan.table_metadata.location}: "
            f"{redacted_first_line(error)}"
        ) from None


def _object_rows(stream: EventStream, object_id: str) -> BooleanExpression:
    # A Reference and a literal, not the column's name and the id: pyiceberg converts those too, but its
    # pydantic fields declare only these.
    return EqualTo(term=Reference(stream.key_column), value=literal(object_id))


def commit_object_files(
    table: Table,
    stream: EventStream,
    object_id: str,
    removed: Sequence[DataFile],
    added: Sequence[DataFile],
    *,
    snapshot_properties: dict[str, str],
    set_properties: dict[str, str] | None = None,
    remove_properties: Sequence[str] = (),
) -> None:
    """Commit one snapshot replacing an object's `removed` data files by `added`, and table properties.

    Conflicts are looked for in the object's partitions only, so writers of other objects never
    conflict. A commit that did not land deletes the files written for it.
    """
    transaction = table.transaction()
    if removed or added:
        with transaction.update_snapshot(snapshot_properties=snapshot_properties).overwrite() as update:
            update.delete_by_predicate(_object_rows(stream, object_id))
            for data_file in removed:
                update.delete_data_file(data_file)
            for data_file in added:
                update.append_data_file(data_file)
    if set_properties:
        transaction.set_properties(set_properties)
    if remove_properties:
        transaction.remove_properties(*remove_properties)
    try:
        transaction.commit_transaction()
    except (CommitFailedException, ValidationException):
        for data_file in added:
            table.io.delete(data_file.file_path)
        raise


def object_state(table: Table, object_id: str) -> SyncState | None:
    """The object's committed state, as its table's property holds it."""
    value = table.properties.get(STATE_PROPERTY + object_id)
    return None if value is None else SyncState.model_validate_json(value)


def retry_conflicts(what: str, attempt: Callable[[], T]) -> T:
    """Run `attempt` (which loads the table afresh, plans and commits) until no other writer conflicts.

    pyiceberg retries a commit whose base moved on its own; a conflict it cannot resolve (another
    writer changed the same rows) raises, and the operation is planned again on the new snapshot.

    Raises:
        WarehouseError: it still conflicted after `REPLANS` attempts, or a file could not be read or
            written (a full disk, a permission): that object fails, not the run.
    """
    number = 0
    while True:
        number += 1
        try:
            return attempt()
        except OSError as error:
            raise WarehouseError(f"{what}: {redacted_first_line(error)}") from None
        except (CommitFailedException, ValidationException) as error:
            reason = redacted_first_line(error)
            if number == REPLANS:
                raise WarehouseError(
                    f"{what}: another writer kept committing conflicting changes ({reason}); "
                    "run the sync again"
                ) from None
            logger.info("%s conflicted with another writer (%s): planning again", what, reason)
            time.sleep(random.uniform(0.05, 0.2) * number)


def redacted_first_line(error: BaseException) -> str:
    """An error's first line, fit for a one-line message (credentials hidden)."""
    return redact(first_line(error))
