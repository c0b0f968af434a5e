"""The Iceberg destination: the tables in an Iceberg catalog, written by many workers at once.

Workers on different machines share only the catalog and the object store;
each keeps its scratch (staged reads, checkpoints) under its own `--state-dir`.

An object's state (its watermark) is a property of its event table, set in
the same commit as its rows: one catalog commit swaps in the new table
metadata holding both, so a crash at any point leaves the previous commit
whole. The `sync_state` table is written from those properties after each
commit, for engines that read the tables directly; bt-sync itself reads the
properties. Commits by other workers are validated against this commit's
object only (the event tables are partitioned by object), so workers syncing
different objects never conflict; two syncs of one object conflict, and the
later plans again on the new snapshot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

# pyiceberg computes the day of `created` partition values with it when writing: a missing one is the
# extra's one-line error here, at open, rather than a failure in the middle of a merge.
import pyiceberg_core  # noqa: F401
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysFalse, AlwaysTrue, BooleanExpression, In
from pyiceberg.table import Table

from connector.config import WarehouseSettings
from connector.destinations.base import (
    LOCK_WAIT_SETTING,
    MaintainSummary,
    MergeResult,
    ObjectRef,
    StagedParts,
    SyncState,
    VersionRange,
)
from connector.destinations.file_lock import holding
from connector.destinations.iceberg_catalog import (
    STATE_PROPERTY,
    commit_object_files,
    ensure_namespace,
    ensure_table,
    object_files,
    object_state,
    open_catalog,
    redacted_first_line,
    replace_rows,
    retry_conflicts,
)
from connector.destinations.iceberg_maintain import TablesNotMaintained, maintain_tables
from connector.destinations.iceberg_merge import plan_merge, refuse_beyond_a_long, unreadable_files
from connector.destinations.iceberg_read import iceberg_reader
from connector.destinations.iceberg_schema import (
    SYNC_STATE_SCHEMA,
    SYNC_STATE_TABLE,
    event_partitioning,
    iceberg_schema,
    stored_select,
)
from connector.destinations.parquet_tree import catalog_select
from connector.destinations.scratch import scratch_connection
from connector.errors import ConfigError, TableChanged, UnreadableFiles, WarehouseError
from connector.redaction import redact, scrub, uri_secrets
from schemas.api import ApiObject
from schemas.kinds import CATALOG_TABLES, EVENT_STREAMS, KINDS, PROJECT, ObjectKind
from schemas.tables import SYNC_STATE_COLUMNS

logger = logging.getLogger("bt_sync")
# Every table's columns, by its name, as bt-sync writes them.
_COLUMNS = {
    **{stream.table: stream.columns for stream in EVENT_STREAMS.values()},
    **{table.table: table.columns for table in CATALOG_TABLES},
    SYNC_STATE_TABLE: SYNC_STATE_COLUMNS,
}
_EVENT_TABLES = frozenset(stream.table for stream in EVENT_STREAMS.values())


class IcebergDestination:
    """The tables in the Iceberg catalog and namespace the settings name.

    Args:
        settings: the catalog, warehouse, namespace and this worker's state directory.
        create: whether a missing SQLite catalog is created (False when the caller only reads, or
            prepares the destination later: until `prepare`, it is then an empty catalog).

    Raises:
        ConfigError: no catalog, or a SQL catalog without a warehouse.
        WarehouseError: the catalog cannot be opened.
    """

    def __init__(self, settings: WarehouseSettings, *, create: bool = True) -> None:
        self._catalog_name = settings.iceberg_catalog or ""
        self._warehouse = settings.iceberg_warehouse
        self._created = create
        self._catalog: Catalog = open_catalog(settings.iceberg_catalog, self._warehouse, create=create)
        self._namespace = settings.iceberg_namespace
        self._state_dir = settings.state_dir
        identity = f"{self._catalog_name}|{settings.iceberg_warehouse}|{self._namespace}"
        self._key = hashlib.sha256(identity.encode()).hexdigest()[:12]
        # pyiceberg quotes a bad warehouse without its scheme, where `redact` cannot see its credentials.
        self._secrets = uri_secrets(f"{settings.iceberg_catalog} {settings.iceberg_warehouse}")
        # The objects a file of which could not be read, to be rebuilt from their whole history.
        self._rebuilding: set[str] = set()

    @property
    def key(self) -> str:
        """A short stable identity of the catalog and namespace."""
        return self._key

    @property
    def description(self) -> str:
        """The catalog and namespace, without credentials."""
        return f"iceberg catalog {redact(self._catalog_name)}, namespace {self._namespace}"

    @property
    def scratch(self) -> Path:
        """Where this worker stages its reads."""
        return self._state_dir / "staging" / self._key

    def prepared(self) -> bool:
        """Whether a sync prepared the namespace: the table `prepare` creates last exists."""
        return bool(self._catalog.table_exists(self._id(SYNC_STATE_TABLE)))

    def lost_catalog(self) -> list[ObjectKind]:
        """The kinds whose catalog table is gone (dropped by hand) from a namespace a sync prepared before:
        made again empty by `prepare`, it stayed empty where the syncs that followed did not list its kind."""
        if not self.prepared():
            return []
        return [kind for kind in KINDS if not self._exists(kind.catalog.table)]

    def prepare(self) -> None:
        """Create the catalog, if it was opened without, then the namespace and every table that does not
        exist yet."""
        if not self._created:
            self._catalog = open_catalog(self._catalog_name, self._warehouse, create=True)
            self._created = True
        self._check_warehouse()
        try:
            ensure_namespace(self._catalog, self._namespace)
            for stream in EVENT_STREAMS.values():
                schema = iceberg_schema(stream.columns)
                ensure_table(
                    self._catalog, self._id(stream.table), schema, event_partitioning(stream, schema)
                )
            for table in CATALOG_TABLES:
                ensure_table(self._catalog, self._id(table.table), iceberg_schema(table.columns))
            ensure_table(self._catalog, self._id(SYNC_STATE_TABLE), SYNC_STATE_SCHEMA)
        except Exception as error:  # the catalog's, the object store's or the database driver's
            raise WarehouseError(
                f"cannot create the tables in {self.description}: {self._reason(error)}"
            ) from None

    @contextmanager
    def lock(self, ref: ObjectRef, wait_s: float) -> Iterator[None]:
        """Hold the object against other syncs of it on this machine.

        Workers on other machines are kept apart by the commit: a sync that committed to the
        object since another read it makes that one plan its merge again.
        """
        path = self._state_dir / "locks" / self._key / ref.stream.table / f"{ref.object_id}.lock"
        holder = f"syncing {ref.stream.table} {ref.name!r} ({ref.object_id})"
        with holding(path, wait_s, holder, wait_setting=LOCK_WAIT_SETTING):
            yield

    def read_state(self, ref: ObjectRef) -> SyncState | None:
        """The object's committed state; None, as for an object never synced, when a file of it could not
        be read (`merge`): the sync then reads its whole history again, and its merge rebuilds it."""
        if ref.object_id in self._rebuilding:
            return None
        return object_state(self._table(ref.stream.table), ref.object_id)

    def list_states(self) -> list[SyncState]:
        """Every synced object's committed state (none before the first sync created the tables, nor of
        an event table dropped since: the sync's `prepare` creates it again, and reads its objects whole)."""
        if not self.prepared():
            return []
        tables = (self._table_if_any(stream.table) for stream in EVENT_STREAMS.values())
        return _states(table for table in tables if table is not None)

    def merge(
        self,
        ref: ObjectRef,
        staged: StagedParts,
        state: SyncState,
        *,
        delete_missing_up_to: int | None,
        run_wrote: VersionRange | None = None,
    ) -> MergeResult:
        """Merge `staged` into the object's rows and commit them with `state` in one commit.

        Raises:
            MalformedResponse: the watermark is beyond Iceberg's long (the newest version the API
                reported, which no staged row may hold: it was deleted meanwhile).
        """
        refuse_beyond_a_long("the object's newest _xact_id", state.version)

        def attempt() -> MergeResult:
            table = self._unchanged(self._table(ref.stream.table), ref.stream.table)
            committed = object_state(table, ref.object_id)
            rebuild = ref.object_id in self._rebuilding
            try:
                plan = plan_merge(
                    table,
                    ref.stream,
                    ref.object_id,
                    staged,
                    delete_missing_up_to=delete_missing_up_to,
                    run_wrote=run_wrote,
                    scratch=self.scratch / "merge" / ref.object_id,
                    rebuild=rebuild,
                )
            except (OSError, pa.ArrowException) as error:
                # A read that failed may have met a data file deleted or damaged: the object is read
                # again whole (`read_state`) and its files replaced without reading them.
                if rebuild or not (
                    unreadable := unreadable_files(table, object_files(table, ref.stream, ref.object_id))
                ):
                    raise
                self._rebuilding.add(ref.object_id)
                raise UnreadableFiles(
                    f"{ref.stream.table} {ref.name!r} ({ref.object_id}): {'; '.join(unreadable)}: its whole "
                    "history is read again to replace its files"
                ) from error
            versions = [v for v in (state.version, committed.version if committed else None) if v is not None]
            final = state.model_copy(
                update={
                    # Another machine may have committed a newer read of the object since this one began.
                    "version": max(versions) if versions else None,
                    "rows": plan.rows,
                    "files": plan.files,
                    "bytes": plan.bytes,
                    "last_bytes_written": state.last_bytes_written + plan.bytes_written,
                }
            )
            commit_object_files(
                table,
                ref.stream,
                ref.object_id,
                plan.removed,
                plan.added,
                snapshot_properties={"bt-sync.object": f"{ref.object_type.value}:{ref.object_id}"},
                set_properties={STATE_PROPERTY + ref.object_id: final.model_dump_json()},
            )
            return MergeResult(
                inserted=plan.inserted,
                updated=plan.updated,
                deleted=plan.deleted,
                rows=plan.rows,
                bytes_written=plan.bytes_written,
                bytes=plan.bytes,
            )

        result = retry_conflicts(f"committing {ref.stream.table} {ref.name!r}", attempt)
        self._rebuilding.discard(ref.object_id)
        self._publish_states()
        return result

    def remove_object(self, state: SyncState) -> None:
        """Delete a deleted object's rows and state in one commit."""
        stream = EVENT_STREAMS[state.object_type]

        def attempt() -> None:
            table = self._table(stream.table)
            commit_object_files(
                table,
                stream,
                state.object_id,
                [task.file for task in object_files(table, stream, state.object_id)],
                [],
                snapshot_properties={"bt-sync.removed": f"{state.object_type.value}:{state.object_id}"},
                remove_properties=[STATE_PROPERTY + state.object_id],
            )

        retry_conflicts(f"removing {stream.table} {state.name!r}", attempt)
        self._publish_states()

    def write_catalog(
        self, kind: ObjectKind, objects: Sequence[ApiObject], project_ids: Sequence[str] | None
    ) -> None:
        """Replace the catalog table's rows: all, or those of `project_ids` (other projects' rows stay)."""
        table_name = kind.catalog.table
        with scratch_connection() as con:
            con.register("catalog_rows", pa.table({"raw": pa.array([o.listed_json() for o in objects])}))
            rows = con.sql(
                f"SELECT {stored_select(kind.catalog.columns)} FROM ({catalog_select(kind.catalog)})"
            ).to_arrow_table()
        owner = "id" if kind is PROJECT else "project_id"
        scope: BooleanExpression = AlwaysTrue()
        if project_ids is not None:
            # pyright reads In's pydantic fields (`values`), mypy its own constructor (`literals`).
            scope = In(term=owner, literals=set(project_ids)) if project_ids else AlwaysFalse()  # pyright: ignore[reportCallIssue]

        def attempt() -> None:
            table = self._unchanged(self._table(table_name), table_name)
            current = table.scan(row_filter=scope).to_arrow()
            if _same_rows(current, rows):
                return  # nothing changed: no commit, no snapshot
            if project_ids is None:
                replace_rows(table, rows, {"bt-sync.catalog": table_name})
                return
            with warnings.catch_warnings():
                # A project's first listing replaces no rows, which pyiceberg warns about.
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                table.overwrite(rows.cast(table.schema().as_arrow()), overwrite_filter=scope)

        retry_conflicts(f"writing {table_name}", attempt)

    @property
    def reader_follows_commits(self) -> bool:
        """False: a reader views the snapshots current when it opened."""
        return False

    def reader(self, *, pinned: bool = False) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection viewing every table's snapshot current now (so always pinned)."""
        tables = {
            name: self._unchanged(self._table(name), name, added_too=False) for name in self._table_names()
        }
        # The states of the snapshots viewed: loaded again, a table may hold a commit made meanwhile.
        try:
            return iceberg_reader(tables, _states(tables[stream.table] for stream in EVENT_STREAMS.values()))
        except FileNotFoundError as error:  # pyarrow's names only the path
            raise WarehouseError(
                f"a data file of the tables is missing ({self._reason(error)}): the next `bt-sync sync` of "
                "its object reads the object's whole history again to replace its files"
            ) from None
        except (OSError, pa.ArrowException) as error:
            raise WarehouseError(
                f"cannot read the tables of {self.description}: {self._reason(error)}"
            ) from None

    def maintain(self, retain: timedelta) -> MaintainSummary:
        """Merge small files, expire snapshots older than `retain`, delete files no snapshot needs."""
        self._check_warehouse()
        existing: list[str] = []
        # A table whose metadata cannot be read (damaged) is one table not maintained, not every table.
        failed: dict[str, Exception] = {}
        for name in self._table_names():
            try:
                if self._catalog.table_exists(self._id(name)):
                    existing.append(name)
            except Exception as error:  # the catalog's, pyiceberg's or the store's
                failed[name] = error
        try:
            summary = maintain_tables(existing, retain, self._table)
        except TablesNotMaintained as error:
            summary, failed = error.done, failed | error.failed
        if summary.files_compacted:
            self._publish_states()  # the objects' file counts changed
        if failed:
            reasons = "; ".join(f"{name}: {self._reason(cause)}" for name, cause in failed.items())
            raise WarehouseError(
                f"{len(failed)} of {len(failed) + summary.tables} tables of {self.description} not "
                f"maintained (the others were: {summary.snapshots_expired:,} snapshots expired, "
                f"{summary.files_compacted:,} small files merged, {summary.files_deleted:,} files deleted): "
                f"{reasons}"
            )
        return summary

    def _publish_states(self) -> None:
        """Rewrite the `sync_state` table from the committed states (it lags them only if this fails)."""

        def attempt() -> None:
            states = self.list_states()
            table = self._table(SYNC_STATE_TABLE)
            rows = pa.Table.from_pylist([s.model_dump() for s in states], schema=table.schema().as_arrow())
            replace_rows(table, rows, {"bt-sync.sync-state": str(len(states))})

        try:
            retry_conflicts("writing sync_state", attempt)
        except Exception as error:  # the rows and their state are committed: this copy can wait
            logger.warning(
                "could not rewrite the sync_state table (%s); the next sync does", self._reason(error)
            )

    def _reason(self, error: BaseException) -> str:
        """An error's first line, without the credentials of the catalog and warehouse settings."""
        return scrub(redacted_first_line(error), self._secrets)

    def _table(self, name: str) -> Table:
        try:
            return self._catalog.load_table(self._id(name))
        except Exception as error:
            raise self._cannot_load(name, error) from None

    def _unchanged(self, table: Table, name: str, *, added_too: bool = True) -> Table:
        """`table`, the table `name`, as long as it has bt-sync's columns (and no others, unless not
        `added_too`: a reader selects bt-sync's).

        Raises:
            TableChanged: its columns were changed by hand: the merge failed with a traceback (a column
                dropped) or an error naming its own scratch table (a column added), every run, and `sql`
                (a column dropped) with a binder error for every table.
        """
        held = {field.name for field in table.schema().fields}
        wanted = [column.name for column in _COLUMNS[name]]
        missing = [c for c in wanted if c not in held]
        added = sorted(held - set(wanted)) if added_too else []
        if not missing and not added:
            return table
        changes = [
            *([f"lacks {', '.join(missing)}"] if missing else []),
            *([f"has {', '.join(added)}, which bt-sync does not write"] if added else []),
        ]
        objects = " (reading its objects whole)" if name in _EVENT_TABLES else ""
        raise TableChanged(
            f"the Iceberg table {self._namespace}.{name} {' and '.join(changes)}: its schema was changed "
            f"outside bt-sync; undo the change, or drop the table, which the next sync creates again{objects}"
        )

    def _table_if_any(self, name: str) -> Table | None:
        try:
            return self._catalog.load_table(self._id(name))
        except NoSuchTableError:
            return None
        except Exception as error:
            raise self._cannot_load(name, error) from None

    def _exists(self, name: str) -> bool:
        try:
            # pyiceberg loads the table to tell: its metadata file may be damaged.
            return self._catalog.table_exists(self._id(name))
        except Exception as error:
            raise self._cannot_load(name, error) from None

    def _cannot_load(self, name: str, error: Exception) -> WarehouseError:
        # A table missing is the common case (nothing synced yet); a catalog lost mid-sync is not.
        hint = " (a sync creates the tables)" if isinstance(error, NoSuchTableError) else ""
        return WarehouseError(
            f"cannot load {self._namespace}.{name} from {self.description}: {self._reason(error)}{hint}"
        )

    def _check_warehouse(self) -> None:
        """Refuse a warehouse other than the one the namespace's tables live in: a table stays where it was
        created, so a sync given another (a move to `s3://…`) went on writing to the first without a word.

        Raises:
            ConfigError: the tables live elsewhere (a SQL catalog's, whose warehouse places them).
        """
        warehouse = self._catalog.properties.get("warehouse")
        if not isinstance(self._catalog, SqlCatalog) or not warehouse or not self._exists(SYNC_STATE_TABLE):
            return
        if self._catalog.load_namespace_properties(self._namespace).get("location"):
            return  # the namespace places its tables itself
        location = self._table(SYNC_STATE_TABLE).location()
        if not _under(location, f"{warehouse.rstrip('/')}/{self._namespace}"):
            raise ConfigError(
                f"the tables of namespace {self._namespace} in {redact(self._catalog_name)} live in "
                f"{redact(location.rsplit('/', 2)[0])}, not under the warehouse given, "
                f"{redact(self._warehouse or warehouse)}: a catalog's tables stay where they were created. "
                "Give the warehouse they live in, or a new catalog (or namespace) for the new warehouse"
            )

    def _table_names(self) -> list[str]:
        return [
            *(stream.table for stream in EVENT_STREAMS.values()),
            *(table.table for table in CATALOG_TABLES),
            SYNC_STATE_TABLE,
        ]

    def _id(self, name: str) -> tuple[str, str]:
        return (self._namespace, name)


def _under(location: str, directory: str) -> bool:
    """Whether `location` lies in `directory`, either written as a path or as a `file:` URI; a local one
    through its links too (a warehouse given by a link to it, macOS's `/tmp` and `/private/tmp`)."""
    place, root = (text.removeprefix("file://") for text in (location, directory))
    if "://" not in place and "://" not in root:
        place, root = os.path.realpath(place), os.path.realpath(root)
    return place.startswith(f"{root.rstrip('/')}/")


def _states(event_tables: Iterable[Table]) -> list[SyncState]:
    """The objects' states the event tables' snapshots hold (a property per object)."""
    return [
        SyncState.model_validate_json(value)
        for table in event_tables
        for name, value in table.properties.items()
        if name.startswith(STATE_PROPERTY)
    ]


def _same_rows(current: pa.Table, new: pa.Table) -> bool:
    """Whether two versions of catalog rows hold the same objects, apart from when they were fetched."""
    if current.num_rows != new.num_rows:
        return False
    kept = [name for name in new.column_names if name != "_synced_at"]
    ordered = [("id", "ascending")]
    return bool(
        current.select(kept)
        .sort_by(ordered)
        .equals(new.select(kept).sort_by(ordered).cast(current.select(kept).schema))
    )
