"""The discovery sensor: keeps one partition per Braintrust object and syncs new objects at once.

It ships stopped; turn it on in the UI (Automation) or with
`dagster sensor start braintrust_discovery_sensor` run from the repository root.
"""

from collections import defaultdict

import dagster as dg

from connector.sync.catalog import Catalog, discover_catalog
from pipelines.jobs import SYNC_JOBS, catalog_job
from pipelines.resources import BraintrustResource
from pipelines.streams import STREAMS
from schemas.api import ObjectType
from schemas.kinds import EVENT_KINDS

DISCOVERY_INTERVAL_S = 300


@dg.sensor(
    name="braintrust_discovery_sensor",
    jobs=[catalog_job, *SYNC_JOBS.values()],
    minimum_interval_seconds=DISCOVERY_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="List Braintrust projects, experiments and datasets; add a partition for each new one "
    "and sync it, remove the partitions of deleted ones, and refresh the catalog when anything changed.",
)
def braintrust_discovery_sensor(
    context: dg.SensorEvaluationContext, braintrust: BraintrustResource
) -> dg.SensorResult:
    """Compare the API's objects with the instance's partitions and request the difference."""
    with braintrust.client() as client:
        catalog = discover_catalog(client, braintrust.projects, EVENT_KINDS)
    return discovery_result(catalog, context.instance)


def discovery_result(catalog: Catalog, instance: dg.DagsterInstance) -> dg.SensorResult:
    """The partition changes and runs that bring the instance's partitions in line with `catalog`."""
    live: defaultdict[ObjectType, list[str]] = defaultdict(list)
    for ref in catalog.refs(EVENT_KINDS):
        live[ref.object_type].append(ref.object_id)
    partition_requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    sync_requests: list[dg.RunRequest] = []
    for assets in STREAMS:
        known = set(instance.get_dynamic_partitions(assets.partitions_name))
        wanted = live[assets.object_type]
        added = [key for key in wanted if key not in known]
        removed = sorted(known.difference(wanted))
        if added:
            partition_requests.append(assets.partitions.build_add_request(added))
        if removed:
            partition_requests.append(assets.partitions.build_delete_request(removed))
        sync_requests += [
            dg.RunRequest(
                run_key=f"{assets.partitions_name}:{key}", job_name=assets.job_name, partition_key=key
            )
            for key in added
        ]
    if not partition_requests:
        return dg.SensorResult(skip_reason="no Braintrust object was added or deleted")
    # A new object's sync is run once (run_key); later syncs come from the schedules.
    catalog_request = dg.RunRequest(job_name=catalog_job.name)
    return dg.SensorResult(
        run_requests=[catalog_request, *sync_requests], dynamic_partitions_requests=partition_requests
    )
