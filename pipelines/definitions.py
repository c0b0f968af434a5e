"""The Dagster code location: `dg dev`, `dg check defs` and `dagster dev` load `defs` from here.

No `from __future__ import annotations` in this package's definition modules:
Dagster reads the annotations of asset and op functions at definition time.
"""

import dagster as dg

from connector.defaults import DEFAULT_DUCKDB_PATH
from connector.errors import ConfigError
from pipelines.assets import TRANSIENT_RETRY, build_catalog_asset, build_event_asset
from pipelines.checks import build_checks
from pipelines.jobs import build_jobs
from pipelines.maintain import maintain_job, maintain_schedule
from pipelines.push import push_job
from pipelines.resources import BraintrustResource, WarehouseResource, duckdb_schema
from pipelines.schedules import build_schedules
from pipelines.sensors import build_discovery_sensor
from pipelines.tables import resolve_specs
from pipelines.translator import DUCKDB_KINDS, ICEBERG_KINDS, BraintrustTranslator


def build_definitions(
    braintrust: BraintrustResource,
    warehouse: WarehouseResource,
    *,
    translator: BraintrustTranslator | None = None,
    retry_policy: dg.RetryPolicy = TRANSIENT_RETRY,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, bound to the given resources.

    Args:
        braintrust: the API to sync from (and push to).
        warehouse: the destination to sync into (DuckDB and Parquet, or Iceberg).
        translator: what turns each table into an asset spec (keys, groups, owners, tags...);
            None uses `BraintrustTranslator()`.
        retry_policy: how a sync step is retried after a transient failure (an API outage, an
            object locked by another run); terminal failures are never retried.
        executor: how each run executes its steps; None keeps Dagster's default (one process per
            step), e.g. `dagster_k8s.k8s_job_executor` or `dagster_celery.celery_executor` to scale out.
    """
    try:
        storage_kinds = ICEBERG_KINDS if warehouse.is_iceberg else DUCKDB_KINDS
        schema = warehouse.table_schema
    except ConfigError as error:
        # Loaded all the same, with the default destination's kinds: every run then fails in one line
        # naming the setting, as for the API's settings, where the code location would not load at all
        # (a traceback in every `dagster` command and in the UI).
        dg.get_dagster_logger().warning(f"bt-sync: {error}; every sync fails until it is mended")
        storage_kinds, schema = DUCKDB_KINDS, duckdb_schema(DEFAULT_DUCKDB_PATH)
    specs = resolve_specs(translator or BraintrustTranslator(), schema, storage_kinds)
    jobs = build_jobs(specs)
    return dg.Definitions(
        assets=[
            specs.source,
            build_catalog_asset(specs, retry_policy),
            *(build_event_asset(assets, retry_policy) for assets in specs.events),
        ],
        asset_checks=build_checks(specs),
        jobs=[*jobs.all(), push_job, maintain_job],
        schedules=[*build_schedules(specs, jobs), maintain_schedule],
        sensors=[build_discovery_sensor(specs, jobs)],
        resources={"braintrust": braintrust, "warehouse": warehouse},
        executor=executor,
    )


defs = build_definitions(BraintrustResource(), WarehouseResource())
