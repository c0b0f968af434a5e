"""Asset jobs: the catalog, one partitioned sync job per event table, and the checks.

A job's assets must share one partitions definition, so each event table has
its own job; the sensor and the schedules target these. Checks are left out of
sync runs: they read whole tables, once per check run.
"""

from dataclasses import dataclass

import dagster as dg

# What `define_asset_job` returns; dagster does not export the name.
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from pipelines.tables import BraintrustSpecs
from schemas.api import ObjectType

CATALOG_JOB_NAME = "braintrust_catalog_job"
CHECKS_JOB_NAME = "braintrust_checks_job"


@dataclass(frozen=True)
class BraintrustJobs:
    """The asset jobs.

    Args:
        catalog: lists every object into the catalog tables (and keeps the partitions in step).
        sync: per object type, the job syncing objects of that type, one or more partitions a run.
        checks: runs every check on the event tables.
    """

    catalog: UnresolvedAssetJobDefinition
    sync: dict[ObjectType, UnresolvedAssetJobDefinition]
    checks: UnresolvedAssetJobDefinition

    def all(self) -> list[UnresolvedAssetJobDefinition]:
        """Every job."""
        return [self.catalog, *self.sync.values(), self.checks]


def build_jobs(specs: BraintrustSpecs) -> BraintrustJobs:
    """The jobs over the assets the specs name."""
    catalog = dg.define_asset_job(
        CATALOG_JOB_NAME,
        selection=dg.AssetSelection.assets(*(spec.key for spec in specs.catalog.values())).without_checks(),
        description="List projects and their objects into the catalog tables; add a partition for each "
        "new object and remove those of deleted ones.",
    )
    sync = {
        assets.object_type: dg.define_asset_job(
            assets.job_name,
            selection=dg.AssetSelection.assets(assets.key).without_checks(),
            description=f"Sync objects (partitions) into `{assets.stream.table}`.",
        )
        for assets in specs.events
    }
    checks = dg.define_asset_job(
        CHECKS_JOB_NAME,
        selection=dg.AssetSelection.checks_for_assets(*(assets.key for assets in specs.events)),
        description="Run every check on the event tables.",
    )
    return BraintrustJobs(catalog, sync, checks)
