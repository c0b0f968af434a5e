"""The Dagster code location: `dagster dev` and `dagster definitions validate` load `defs` from here.

No `from __future__ import annotations` in this package's definition modules:
Dagster reads the annotations of asset and op functions at definition time.
"""

import dagster as dg

from pipelines.assets import EVENT_ASSETS, braintrust_catalog
from pipelines.checks import ASSET_CHECKS
from pipelines.jobs import SYNC_JOBS, catalog_job, checks_job
from pipelines.maintain import maintain_job, maintain_schedule
from pipelines.push import push_job
from pipelines.reconcile import reconcile_job
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.schedules import SYNC_SCHEDULES, checks_schedule, reconcile_schedule
from pipelines.sensors import braintrust_discovery_sensor


def build_definitions(
    braintrust: BraintrustResource,
    warehouse: WarehouseResource,
    *,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, bound to the given resources.

    Args:
        braintrust: the API to sync from (and push to).
        warehouse: the destination to sync into (DuckDB and Parquet, or Iceberg).
        executor: how each run executes its steps; None keeps Dagster's default (one process per
            step), e.g. `dagster_k8s.k8s_job_executor` or `dagster_celery.celery_executor` to scale out.
    """
    return dg.Definitions(
        assets=[braintrust_catalog, *EVENT_ASSETS],
        asset_checks=ASSET_CHECKS,
        jobs=[catalog_job, *SYNC_JOBS.values(), checks_job, reconcile_job, push_job, maintain_job],
        schedules=[*SYNC_SCHEDULES, checks_schedule, reconcile_schedule, maintain_schedule],
        sensors=[braintrust_discovery_sensor],
        resources={"braintrust": braintrust, "warehouse": warehouse},
        executor=executor,
    )


defs = build_definitions(
    BraintrustResource(api_key=dg.EnvVar("BRAINTRUST_API_KEY")),
    WarehouseResource(),
)
