"""Assets: the catalog tables, and the three event tables partitioned by object.

Each event asset partition is one object (a project's logs, an experiment or a
dataset); materializing it runs `connector.sync.sync_object` for that object.
Partitions extract in parallel (one run each) and their merges serialize on
the DuckDB file: `sync_object` opens the file only to commit, waiting with
backoff while another run holds it, and a per-object file lock keeps two runs
of the same partition from interleaving.
"""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from connector.api.client import BraintrustClient
from connector.defaults import DEFAULT_OVERLAP_S, DEFAULT_PAGE_LIMIT
from connector.destinations.base import ObjectRef
from connector.errors import NotFoundError
from connector.sync.catalog import discover_catalog, lookup_ref, write_catalog
from connector.sync.run import ObjectSummary, SyncOptions, sync_object
from pipelines.failures import terminal_errors_fail_without_retry
from pipelines.progress import LogProgress
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.streams import GROUP, STREAMS, StreamAssets, catalog_key
from schemas.kinds import KINDS as OBJECT_KINDS
from schemas.tables import Column

# Caps concurrent syncs against the API (its rate limits), not DuckDB writes: those serialize on the file.
API_POOL = "braintrust_api"
KINDS = {"braintrust", "duckdb"}
# What the schedules aim for (hourly) plus slack for a slow run; a per-object check backs this up.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6), warn_window=timedelta(hours=2))
# The client already retries each request; this retries a run step whose retries ran out (API outage,
# DuckDB file held by a long merge). Terminal errors raise `Failure(allow_retries=False)` instead.
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class EventSyncConfig(dg.Config):
    """Run config of an event asset partition: the `bt-sync sync` flags that apply to one object.

    Args:
        full: re-read the object's whole history instead of only what is above the watermark.
        reconcile: re-read everything and delete rows deleted upstream.
        overlap_s: how far below the watermark an incremental sync re-reads.
        page_limit: traces per fetch page.
    """

    full: bool = False
    reconcile: bool = False
    overlap_s: float = DEFAULT_OVERLAP_S
    page_limit: int = DEFAULT_PAGE_LIMIT


def summary_metadata(summary: ObjectSummary) -> dict[str, dg.MetadataValue]:
    """Materialization metadata of one synced object (one partition)."""
    return {
        "dagster/partition_row_count": dg.MetadataValue.int(summary.rows),
        "dagster/table_name": dg.MetadataValue.text(summary.table),
        "object_name": dg.MetadataValue.text(summary.name),
        "mode": dg.MetadataValue.text(summary.mode + (" (resumed)" if summary.resumed else "")),
        "rows_fetched": dg.MetadataValue.int(summary.rows_fetched),
        "inserted": dg.MetadataValue.int(summary.inserted),
        "updated": dg.MetadataValue.int(summary.updated),
        "deleted": dg.MetadataValue.int(summary.deleted),
        # An `_xact_id` is above 2**53: as a number the UI would round it.
        "version": dg.MetadataValue.text("" if summary.version is None else str(summary.version)),
        "pages": dg.MetadataValue.int(summary.pages),
        "seconds": dg.MetadataValue.float(summary.seconds),
    }


def _table_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.duckdb_type) for c in columns])


@dg.multi_asset(
    name="braintrust_catalog",
    specs=[
        dg.AssetSpec(
            catalog_key(kind),
            description=f"Every Braintrust {kind.name} row the API lists, in table `{kind.catalog.table}`.",
            group_name=GROUP,
            kinds=KINDS,
            metadata={
                "dagster/table_name": kind.catalog.table,
                "dagster/column_schema": _table_schema(kind.catalog.columns),
            },
        )
        for kind in OBJECT_KINDS
    ],
    pool=API_POOL,
    retry_policy=TRANSIENT_RETRY,
)
def braintrust_catalog(
    braintrust: BraintrustResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult[None]]:
    """List the projects (those in `braintrust.projects`, or all) and their objects of every kind."""
    with terminal_errors_fail_without_retry():
        with braintrust.client() as client:
            catalog = discover_catalog(client, braintrust.projects)
        write_catalog(warehouse.open(), catalog, replace_all=not braintrust.projects)
    for kind in OBJECT_KINDS:
        yield dg.MaterializeResult(
            asset_key=catalog_key(kind), metadata={"dagster/row_count": catalog.count(kind)}
        )


def _event_asset(assets: StreamAssets) -> dg.AssetsDefinition:
    stream = assets.stream

    @dg.asset(
        key=assets.key,
        description=f"Rows of `{stream.table}`, one partition per {stream.key_column.removesuffix('_id')} "
        f"(keyed by {stream.key_column}, id); materializing a partition syncs that object incrementally.",
        partitions_def=assets.partitions,
        deps=[assets.catalog_key],
        group_name=GROUP,
        kinds=KINDS,
        metadata={
            "dagster/table_name": stream.table,
            "dagster/column_schema": _table_schema(stream.columns),
        },
        freshness_policy=FRESHNESS,
        retry_policy=TRANSIENT_RETRY,
        pool=API_POOL,
    )
    def sync_events(
        context: dg.AssetExecutionContext,
        config: EventSyncConfig,
        braintrust: BraintrustResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult[None]:
        options = SyncOptions(
            full=config.full,
            reconcile=config.reconcile,
            overlap_s=config.overlap_s,
            page_limit=config.page_limit,
            lock_wait_s=warehouse.lock_wait_s,
        )
        with terminal_errors_fail_without_retry(), braintrust.client() as client:
            ref = _object_ref(client, assets, context.partition_key)
            summary = sync_object(client, warehouse.open(), ref, options, LogProgress(context.log))
        return dg.MaterializeResult(metadata=summary_metadata(summary))

    return sync_events


def _object_ref(client: BraintrustClient, assets: StreamAssets, object_id: str) -> ObjectRef:
    try:
        return lookup_ref(client, assets.object_type, object_id)
    except NotFoundError:
        raise dg.Failure(
            description=f"{assets.object_type.value} {object_id} no longer exists in Braintrust: the "
            "discovery sensor removes its partition, and the reconcile job deletes its rows.",
            allow_retries=False,
        ) from None


EVENT_ASSETS = [_event_asset(assets) for assets in STREAMS]
