"""The reconcile job: `bt-sync sync --reconcile` as one Dagster run.

It re-reads every object, deletes rows and objects deleted upstream (fetch
never returns deleted rows, so incremental partition runs cannot see them),
and then records what it did on the assets: a materialization per catalog
table and per object partition, adding partitions for objects the sensor has
not seen yet and removing those of deleted objects.
"""

from collections import defaultdict

import dagster as dg
from pydantic import Field

from connector.sync.run import SyncOptions, SyncSummary, run_sync
from pipelines.assets import API_POOL, TRANSIENT_RETRY, summary_metadata
from pipelines.failures import terminal_errors_fail_without_retry
from pipelines.progress import LogProgress
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.streams import BY_TYPE, STREAMS, catalog_key
from schemas.api import ObjectType
from schemas.kinds import BY_OBJECT_TYPE, KINDS

RECONCILE_JOB_NAME = "braintrust_reconcile_job"


class ReconcileConfig(dg.Config):
    """Run config of the reconcile job.

    Args:
        object_types: which event tables to reconcile: `project_logs`, `experiment`, `dataset`.
    """

    object_types: list[str] = Field(default_factory=lambda: [t.value for t in ObjectType])


@dg.op(name="reconcile_warehouse", retry_policy=TRANSIENT_RETRY, pool=API_POOL)
def reconcile_warehouse(
    context: dg.OpExecutionContext,
    config: ReconcileConfig,
    braintrust: BraintrustResource,
    warehouse: WarehouseResource,
) -> None:
    """Sync the catalog and every object with `reconcile=True`, then record it on the assets."""
    unknown = sorted(set(config.object_types) - {t.value for t in ObjectType})
    if unknown:
        raise dg.Failure(
            description=f"unknown object_types {unknown}: use project_logs, experiment, dataset",
            allow_retries=False,
        )
    options = SyncOptions(
        projects=tuple(braintrust.projects),
        kinds=frozenset(BY_OBJECT_TYPE[ObjectType(t)].option for t in config.object_types),
        reconcile=True,
        lock_wait_s=warehouse.lock_wait_s,
    )
    with terminal_errors_fail_without_retry(), braintrust.client() as client:
        summary = run_sync(client, warehouse.open(), options, LogProgress(context.log))
    _record_partitions(context.instance, summary)
    for event in _materializations(summary):
        context.log_event(event)


def _record_partitions(instance: dg.DagsterInstance, summary: SyncSummary) -> None:
    synced: defaultdict[ObjectType, list[str]] = defaultdict(list)
    for obj in summary.objects:
        synced[obj.object_type].append(obj.object_id)
    removed: defaultdict[ObjectType, list[str]] = defaultdict(list)
    for entry in summary.removed_objects:
        object_type, _, object_id = entry.partition(":")
        removed[ObjectType(object_type)].append(object_id)
    for assets in STREAMS:
        known = set(instance.get_dynamic_partitions(assets.partitions_name))
        added = [key for key in synced[assets.object_type] if key not in known]
        if added:
            instance.add_dynamic_partitions(assets.partitions_name, added)
        for key in removed[assets.object_type]:
            if key in known:
                instance.delete_dynamic_partition(assets.partitions_name, key)


def _materializations(summary: SyncSummary) -> list[dg.AssetMaterialization]:
    events = [
        dg.AssetMaterialization(asset_key=catalog_key(kind), metadata={"dagster/row_count": count})
        for kind in KINDS
        if (count := summary.catalog.get(kind.name)) is not None
    ]
    events += [
        dg.AssetMaterialization(
            asset_key=BY_TYPE[obj.object_type].key, partition=obj.object_id, metadata=summary_metadata(obj)
        )
        for obj in summary.objects
    ]
    return events


@dg.job(
    name=RECONCILE_JOB_NAME,
    description="Re-read every object; delete rows and objects deleted upstream (`sync --reconcile`).",
)
def reconcile_job() -> None:
    """Run `reconcile_warehouse`."""
    reconcile_warehouse()
