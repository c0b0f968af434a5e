"""Schedules: the recurring incremental sync of every partition, the checks, and a weekly reconcile.

All ship stopped; turn them on in the UI (Automation) or with `dagster schedule start <name>`
run from the repository root, which loads the same code location (`bt_sync`) as `dagster dev`.
"""

import dagster as dg

from pipelines.jobs import SYNC_JOBS, checks_job
from pipelines.reconcile import reconcile_job
from pipelines.streams import STREAMS, StreamAssets

SYNC_CRON = "0 * * * *"
CHECKS_CRON = "45 * * * *"
RECONCILE_CRON = "0 3 * * 0"


def _sync_schedule(assets: StreamAssets) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"braintrust_{assets.stream.table}_schedule",
        cron_schedule=SYNC_CRON,
        job=SYNC_JOBS[assets.object_type],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Sync every partition of `{assets.stream.table}` incrementally, one run per object.",
    )
    def sync_every_partition(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        keys = context.instance.get_dynamic_partitions(assets.partitions_name)
        if not keys:
            return dg.SkipReason(
                f"no {assets.partitions_name} partitions yet: start braintrust_discovery_sensor "
                "or run braintrust_reconcile_job"
            )
        tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        return [dg.RunRequest(run_key=f"{tick}:{key}", partition_key=key) for key in keys]

    return sync_every_partition


SYNC_SCHEDULES = [_sync_schedule(assets) for assets in STREAMS]

checks_schedule = dg.ScheduleDefinition(
    name="braintrust_checks_schedule",
    cron_schedule=CHECKS_CRON,
    job=checks_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Run the event table checks hourly, after the syncs.",
)

reconcile_schedule = dg.ScheduleDefinition(
    name="braintrust_reconcile_schedule",
    cron_schedule=RECONCILE_CRON,
    job=reconcile_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly full re-read that removes rows and objects deleted upstream.",
)
