"""Assets: the catalog tables, and the three event tables partitioned by object.

Each event partition is one object (a project's logs, an experiment or a
dataset), keyed by its readable name; materializing it runs
`connector.sync.sync_object` for that object. A run may hold one partition (the
schedules, the sensor, the UI's Materialize) or many (a backfill runs as one
run per table, as does the weekly reconcile): it syncs them one after another and
records a materialization per partition. Partitions extract in parallel across
runs; a per-object lock keeps two runs of the same object from interleaving.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any, TypeVar

import dagster as dg
import duckdb

from connector.api.client import BraintrustClient
from connector.defaults import DEFAULT_OVERLAP_S, DEFAULT_PAGE_LIMIT
from connector.errors import BtSyncError, NotFoundError, WarehouseError, first_line
from connector.sync.catalog import check_same_source, discover_catalog, listed_projects, write_catalog_whole
from connector.sync.run import SyncOptions, remove_vanished, sync_object
from pipelines.discovery import partition_changes
from pipelines.failures import (
    invalid_config_fails_without_retry,
    partition_failures,
    terminal_errors_fail_without_retry,
)
from pipelines.metadata import catalog_metadata, event_metadata, object_preview, table_size
from pipelines.objects import find_objects
from pipelines.progress import LogProgress
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.tables import BraintrustSpecs, EventAssets
from schemas.kinds import KINDS

# Caps concurrent syncs against the API (its rate limits).
API_POOL = "braintrust_api"
# The client already retries each request; this retries a run step whose retries ran out (an API outage,
# the object locked by another run). Terminal errors raise `Failure(allow_retries=False)` instead.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
CATALOG_OP = "braintrust_catalog"
T = TypeVar("T")


class EventSyncConfig(dg.Config):
    """Run config of an event asset: the `bt-sync sync` flags that apply to its objects.

    Args:
        full: re-read each object's whole history instead of only what is above the watermark.
        reconcile: re-read everything, delete rows deleted upstream, and remove the objects of this
            table that were deleted upstream.
        overlap_s: how far below the watermark an incremental sync re-reads.
        page_limit: traces per fetch page.
    """

    full: bool = False
    reconcile: bool = False
    overlap_s: float = DEFAULT_OVERLAP_S
    page_limit: int = DEFAULT_PAGE_LIMIT

    def options(self, lock_wait_s: float) -> SyncOptions:
        """The same options as `connector` takes them.

        Raises:
            dg.Failure: an option is out of its range (`page_limit: 0`, `overlap_s: nan`); not retried.
        """
        with invalid_config_fails_without_retry("sync"):
            return SyncOptions(
                full=self.full,
                reconcile=self.reconcile,
                overlap_s=self.overlap_s,
                page_limit=self.page_limit,
                lock_wait_s=lock_wait_s,
            )


def build_catalog_asset(specs: BraintrustSpecs, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    """The catalog tables, all listed in one step, which also keeps one event partition per object."""

    @dg.multi_asset(
        name=CATALOG_OP, specs=list(specs.catalog.values()), pool=API_POOL, retry_policy=retry_policy
    )
    def braintrust_catalog(
        context: dg.AssetExecutionContext, braintrust: BraintrustResource, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult[Any]]:
        """List the projects (those in `braintrust.projects`, or all) and their objects of every kind."""
        with terminal_errors_fail_without_retry():
            with braintrust.client() as client:
                catalog = discover_catalog(client, braintrust.projects)
                destination = warehouse.open(prepare=False)
                check_same_source(catalog.listed_project_ids, destination.list_states())
                write_catalog_whole(client, destination, catalog, KINDS)
            for change in partition_changes(specs, catalog, context.instance):
                change.apply(context.instance)
            with warehouse.reader() as connection:
                for kind, spec in specs.catalog.items():
                    metadata = catalog_metadata(
                        kind.catalog.table, kind.catalog.columns, catalog.count(kind), warehouse, connection
                    )
                    yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)

    return braintrust_catalog


def build_event_asset(assets: EventAssets, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    """The event table of one kind of object, one partition per object."""

    @dg.multi_asset(
        name=assets.op_name,
        # Skippable: a run of many partitions records each one's materialization, with its own metadata.
        specs=[assets.spec.replace_attributes(skippable=True)],
        pool=API_POOL,
        retry_policy=retry_policy,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def sync_events(
        context: dg.AssetExecutionContext,
        config: EventSyncConfig,
        braintrust: BraintrustResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult[Any] | dg.AssetMaterialization | dg.AssetObservation]:
        """Sync each object the run's partitions name, incrementally unless configured otherwise."""
        options = config.options(warehouse.lock_wait_s)
        errors: dict[str, Exception] = {}
        # Read before anything that may fail and be retried: a retry finding one removed then knows the
        # attempt before it had read them (`_partition_keys`).
        keys = _partition_keys(context, assets, reconcile=config.reconcile)
        if not (keys or config.reconcile):
            return  # every partition the run named was removed: nothing to sync
        with terminal_errors_fail_without_retry(), braintrust.client() as client:
            destination = warehouse.open()
            projects = listed_projects(client)
            # Another deployment's API (a staging URL, a key of another organization) would sync its objects
            # of the same names into this warehouse, and a reconcile then remove this one's.
            check_same_source({project.id for project in projects}, destination.list_states())
            alone = _one_partition(context)
            if not alone:
                # Dagster lists them as skipped, "due to skipped dependencies", and says no more.
                context.log.info(
                    f"a run of several partitions leaves the checks of {assets.stream.table} to "
                    "braintrust_checks_job (selected here too, they show as skipped)"
                )
            found = find_objects(client, assets.kind, keys, braintrust.projects, projects)
            org_names = _org_names(context, braintrust, client)
            with ExitStack() as run_reader:
                # One reader for the run, when it sees each sync's commit; else one after each sync.
                kept = (
                    _tables_reader(context, warehouse, run_reader)
                    if destination.reader_follows_commits
                    else None
                )
                synced_before = _synced_by_earlier_attempts(context, assets)
                for key in keys:
                    if key in synced_before:
                        # Synced again, it recorded a second materialization saying "0 inserted", which
                        # the partition then showed as this run's.
                        context.log.info(f"{key}: synced by an earlier attempt of this run, not again")
                        continue
                    obj = found.get(key)
                    if obj is None and config.reconcile:
                        # Deleted upstream: the reconcile removes its rows below, the sensor its partition.
                        context.log.warning(_missing(assets, key))
                        continue
                    try:
                        if obj is None:
                            raise NotFoundError(_missing(assets, key))
                        summary = sync_object(client, destination, obj.ref, options, LogProgress(context.log))
                    except BtSyncError as error:
                        # Said as it happens: the run's failure names it only in the retry's nested cause.
                        context.log.error(f"{key}: {error}")
                        errors[key] = error
                        continue
                    url = obj.url(braintrust.app(), org_names)
                    with _reader_after_syncs(context, warehouse, kept) as connection:
                        shown = _read(context, connection, partial(object_preview, obj=obj))
                    metadata = event_metadata(obj, summary, warehouse, shown, url)
                    yield _recorded(assets, key, metadata, alone=alone)
                if config.reconcile:
                    catalog = discover_catalog(client, braintrust.projects, [assets.kind])
                    vanished = remove_vanished(
                        client, destination, catalog, [assets.kind], options.lock_wait_s
                    )
                    for removed in vanished:
                        context.log.info(f"removed {removed}: deleted upstream")
                # The whole table's size: an observation of the asset, not of a partition (see metadata.py).
                with _reader_after_syncs(context, warehouse, kept) as connection:
                    size = _read(context, connection, partial(table_size, table=assets.stream.table))
                if size is not None:
                    yield dg.AssetObservation(asset_key=assets.key, metadata=size)
            if errors:
                raise partition_failures(errors, len(keys))

    return sync_events


@contextmanager
def _reader_after_syncs(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, kept: duckdb.DuckDBPyConnection | None
) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A reader seeing the run's syncs so far: `kept`, the run's reader that follows commits, or a new one
    (None if the tables cannot be read: `_tables_reader`)."""
    if kept is not None:
        yield kept
        return
    with ExitStack() as stack:
        yield _tables_reader(context, warehouse, stack)


def _tables_reader(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, stack: ExitStack
) -> duckdb.DuckDBPyConnection | None:
    """A reader of the synced tables for the run's metadata, closed with `stack`; None, with a warning, when
    they cannot be read: a damaged file of one object must not fail the syncs of the others (the CLI
    syncs them too), only leave their preview and the table's size out. The checks fail, naming it."""
    try:
        return stack.enter_context(warehouse.reader())
    except WarehouseError as error:
        context.log.warning(f"the synced tables cannot be read, so no preview or table size is kept: {error}")
        return None


def _read(
    context: dg.AssetExecutionContext,
    connection: duckdb.DuckDBPyConnection | None,
    read: Callable[[duckdb.DuckDBPyConnection], T],
) -> T | None:
    """What `read` reads with `connection`; None, with a warning, when the tables cannot be read (a file
    of another object missing or damaged: the checks fail, naming it), or `connection` is None."""
    if connection is None:
        return None
    try:
        return read(connection)
    except duckdb.Error as error:
        context.log.warning(
            f"the synced tables cannot be read, so no preview or table size is kept: {first_line(error)}"
        )
        return None


def _recorded(
    assets: EventAssets, key: str, metadata: dict[str, dg.MetadataValue], *, alone: bool
) -> dg.MaterializeResult[Any] | dg.AssetMaterialization:
    """How a synced partition is recorded: as the step's output when the run holds only it (the asset's
    checks then run after it), else as its own materialization (one output would stand for every
    partition of the range, with one set of metadata)."""
    if alone:
        return dg.MaterializeResult(metadata=metadata)
    return dg.AssetMaterialization(asset_key=assets.key, partition=key, metadata=metadata)


def _one_partition(context: dg.AssetExecutionContext) -> bool:
    """Whether the run is of one partition, not a range (which may have lost all but one: see below)."""
    requested = context.partition_key_range
    return bool(requested.start == requested.end)


def _synced_by_earlier_attempts(context: dg.AssetExecutionContext, assets: EventAssets) -> set[str]:
    """The partitions an earlier attempt of this step synced and recorded: a retry of a run of several,
    after one of them failed, syncs the others only."""
    if not context.retry_number:
        return set()
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {
        record.partition_key
        for record in records
        if record.asset_key == assets.key and record.partition_key is not None
    }


def _partition_keys(context: dg.AssetExecutionContext, assets: EventAssets, *, reconcile: bool) -> list[str]:
    """The run's partitions; when an end of its range was removed since the run was requested (an object
    deleted or renamed upstream, whose partition the discovery sensor removed while the run waited in the
    queue), a reconcile's are every partition there is now (the weekly reconcile's range is from the
    first to the last), any other run's none, with a warning.

    Dagster checks the range's ends only when the run reads them: the weekly reconcile failed whole,
    reconciling nothing that week.

    Raises:
        dg.Failure: the run names no partition (Dagster's own error was a traceback), or a retry of a
            step that failed finds its range's end removed: syncing none, it succeeded, and the run
            hid the failure of the partitions it retried.
    """
    if not (context.has_partition_key or context.has_partition_key_range):
        raise dg.Failure(
            description=f"a run of {assets.key.to_user_string()} syncs the objects its partitions name, and "
            "names none: launch it with a partition (dg launch --partition KEY, or the dagster/partition "
            "tag) or a range of them (the dagster/asset_partition_range_start and _end tags)",
            allow_retries=False,
        )
    try:
        return list(context.partition_keys)
    except dg.DagsterInvalidInvocationError:
        requested = context.partition_key_range
    partitions = list(context.instance.get_dynamic_partitions(assets.partitions_name))
    gone = [key for key in dict.fromkeys((requested.start, requested.end)) if key not in partitions]
    removed = (
        f"the run's partition {requested.start} was removed"
        if requested.start == requested.end
        else f"the run's partitions {requested.start} to {requested.end} name one removed ({', '.join(gone)})"
    ) + " since the run was requested (an object deleted or renamed upstream)"
    keys: list[str] = []
    if reconcile and requested.start != requested.end:
        keys = partitions
    elif context.retry_number:
        raise dg.Failure(
            description=f"{removed}: a retry of the step syncs nothing and fails, so that the failure of its "
            "earlier attempt is not hidden; launch the partitions again by the names they have now (`bt-sync "
            "status` lists them; an object deleted upstream needs none)",
            allow_retries=False,
        )
    done = f"it reconciles the {len(keys):,} partitions there are now" if keys else "nothing is synced"
    context.log.warning(f"{removed}: {done}")
    return keys


def _org_names(
    context: dg.AssetExecutionContext, braintrust: BraintrustResource, client: BraintrustClient
) -> dict[str, str]:
    """Organization names by id, for links to the UI; none when the UI is unknown or does not answer."""
    app = braintrust.app()
    if app is None:
        return {}
    try:
        return client.org_names(app)
    except BtSyncError as error:
        context.log.warning(f"materializations will not link to the Braintrust UI: {error}")
        return {}


def _missing(assets: EventAssets, key: str) -> str:
    return (
        f"no {assets.object_type.value} in Braintrust has the partition key {key!r}: it was deleted or "
        "renamed, or its project is not among `braintrust.projects`. The discovery sensor (or a catalog "
        "run) removes its partition and adds one under a renamed object's new name (`bt-sync status` "
        "lists the keys); a reconcile run removes the rows of deleted objects."
    )
