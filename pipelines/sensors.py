"""The discovery sensor: keeps one partition per Braintrust object and syncs new objects at once.

It ships stopped; turn it on in the UI (Automation), or with
`dagster sensor start braintrust_discovery_sensor` run from the repository root.
"""

import dagster as dg

from connector.sync.catalog import discover_catalog
from pipelines.discovery import PartitionsRequest, partition_changes
from pipelines.jobs import BraintrustJobs
from pipelines.resources import BraintrustResource
from pipelines.tables import BraintrustSpecs
from schemas.kinds import EVENT_KINDS

DISCOVERY_SENSOR_NAME = "braintrust_discovery_sensor"
DISCOVERY_INTERVAL_S = 300


def build_discovery_sensor(specs: BraintrustSpecs, jobs: BraintrustJobs) -> dg.SensorDefinition:
    """The sensor that adds, removes and first syncs partitions as objects come and go upstream."""

    @dg.sensor(
        name=DISCOVERY_SENSOR_NAME,
        jobs=[jobs.catalog, *jobs.sync.values()],
        minimum_interval_seconds=DISCOVERY_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="List Braintrust projects, experiments and datasets; add a partition for each new "
        "(or renamed) one, sync every partition never synced yet, remove the partitions of deleted (or "
        "renamed) ones, and refresh the catalog when anything changed.",
    )
    def braintrust_discovery_sensor(
        context: dg.SensorEvaluationContext, braintrust: BraintrustResource
    ) -> dg.SensorResult:
        """Compare the API's objects with the instance's partitions and request the difference."""
        with braintrust.client() as client:
            catalog = discover_catalog(client, braintrust.projects, EVENT_KINDS)
        partition_requests: list[PartitionsRequest] = []
        sync_requests: list[dg.RunRequest] = []
        for change in partition_changes(specs, catalog, context.instance):
            partition_requests += change.requests()
            # New partitions, and those a catalog run added that were never synced. Keyed by object
            # too: an object deleted and re-created under the same name is synced again.
            synced = context.instance.get_materialized_partitions(change.assets.key)
            sync_requests += [
                dg.RunRequest(
                    run_key=f"{change.assets.partitions_name}:{key}:{ref.object_id}",
                    job_name=change.assets.job_name,
                    partition_key=key,
                )
                for key, ref in change.listed.items()
                if key in change.added or key not in synced
            ]
        if not partition_requests and not sync_requests:
            return dg.SensorResult(skip_reason="every Braintrust object has a synced partition")
        # A new object's first sync runs once (run_key); later syncs come from the schedules.
        catalog_request = [dg.RunRequest(job_name=jobs.catalog.name)] if partition_requests else []
        return dg.SensorResult(
            run_requests=[*catalog_request, *sync_requests], dynamic_partitions_requests=partition_requests
        )

    return braintrust_discovery_sensor
