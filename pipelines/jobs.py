"""Asset jobs: the catalog, one partitioned sync job per event table, and the checks.

A job's assets must share one partitions definition, so each event table has
its own job (one object per run); the sensor and schedules target these.
Checks are left out of sync runs: they read whole tables, once per check run.
"""

import dagster as dg

from pipelines.streams import CATALOG_KEYS, STREAMS

CATALOG_JOB_NAME = "braintrust_catalog_job"
CHECKS_JOB_NAME = "braintrust_checks_job"

catalog_job = dg.define_asset_job(
    CATALOG_JOB_NAME,
    selection=dg.AssetSelection.assets(*CATALOG_KEYS).without_checks(),
    description="List projects, experiments and datasets into the catalog tables.",
)


SYNC_JOBS = {
    assets.object_type: dg.define_asset_job(
        assets.job_name,
        selection=dg.AssetSelection.assets(assets.key).without_checks(),
        partitions_def=assets.partitions,
        description=f"Sync one object (partition) into `{assets.stream.table}`.",
    )
    for assets in STREAMS
}

checks_job = dg.define_asset_job(
    CHECKS_JOB_NAME,
    selection=dg.AssetSelection.checks_for_assets(*(assets.key for assets in STREAMS)),
    description="Run every check on the event tables.",
)
