"""Schedules: the hourly incremental sync of every partition, the checks, the catalog, and a weekly reconcile.

All ship stopped; turn them on in the UI (Automation), or with `dagster schedule start <name>`
run from the repository root.
"""

import dagster as dg

from pipelines.jobs import BraintrustJobs
from pipelines.tables import BraintrustSpecs, EventAssets

SYNC_CRON = "0 * * * *"
CHECKS_CRON = "45 * * * *"
CATALOG_CRON = "30 * * * *"
RECONCILE_CRON = "0 3 * * 0"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _no_partitions(assets: EventAssets) -> dg.SkipReason:
    # No partition is also every object of the table deleted upstream: no run of the table can name one to
    # reconcile, and their rows stay in the warehouse until the command line's reconcile.
    return dg.SkipReason(
        f"no {assets.partitions_name} partitions: none discovered yet (start the braintrust_discovery_sensor "
        "or run braintrust_catalog_job), or every one deleted upstream, whose rows stay until `bt-sync sync "
        f"--reconcile --objects {assets.kind.option}` removes them"
    )


def _sync_schedule(assets: EventAssets, jobs: BraintrustJobs) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"braintrust_{assets.stream.table}_schedule",
        cron_schedule=SYNC_CRON,
        job=jobs.sync[assets.object_type],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Sync every partition of `{assets.stream.table}` incrementally, one run per object.",
    )
    def sync_every_partition(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        keys = context.instance.get_dynamic_partitions(assets.partitions_name)
        if not keys:
            return _no_partitions(assets)
        tick = context.scheduled_execution_time.isoformat()
        return [dg.RunRequest(run_key=f"{tick}:{key}", partition_key=key) for key in keys]

    return sync_every_partition


def _reconcile_schedule(assets: EventAssets, jobs: BraintrustJobs) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"braintrust_{assets.stream.table}_reconcile_schedule",
        cron_schedule=RECONCILE_CRON,
        job=jobs.sync[assets.object_type],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Weekly: re-read every object of `{assets.stream.table}` in one run, deleting rows "
        "and objects deleted upstream (`bt-sync sync --reconcile`).",
    )
    def reconcile_every_partition(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        keys = context.instance.get_dynamic_partitions(assets.partitions_name)
        if not keys:
            return _no_partitions(assets)
        # One run over the whole range: a reconcile reads everything anyway, and one process does it
        # without a run's start-up cost per object.
        return dg.RunRequest(
            run_config={"ops": {assets.op_name: {"config": {"reconcile": True}}}},
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
        )

    return reconcile_every_partition


def build_schedules(specs: BraintrustSpecs, jobs: BraintrustJobs) -> list[dg.ScheduleDefinition]:
    """The sync and reconcile schedule of each event table, and the checks' and the catalog's schedules."""
    checks = dg.ScheduleDefinition(
        name="braintrust_checks_schedule",
        cron_schedule=CHECKS_CRON,
        job=jobs.checks,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Run the event table checks hourly, after the syncs.",
    )
    # The sensor refreshes the catalog only when an event container comes, goes or is renamed: a prompt,
    # a function, a score or a tag changed alone waits for this.
    catalog = dg.ScheduleDefinition(
        name="braintrust_catalog_schedule",
        cron_schedule=CATALOG_CRON,
        job=jobs.catalog,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Refresh every catalog table (projects, experiments, datasets, prompts, functions, "
        "project_scores, project_tags) hourly.",
    )
    return [
        *(_sync_schedule(assets, jobs) for assets in specs.events),
        *(_reconcile_schedule(assets, jobs) for assets in specs.events),
        checks,
        catalog,
    ]
