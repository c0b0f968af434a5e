"""The maintain job: `bt-sync maintain` as one Dagster run (expire old versions, merge small files).

Safe while partition runs sync: it never needs the API, and its commits to an
object give way to a sync of that object (it plans again on the new snapshot).
"""

import dagster as dg

from connector.config import hours_window
from connector.defaults import DEFAULT_RETAIN_HOURS
from pipelines.failures import terminal_errors_fail_without_retry
from pipelines.resources import WarehouseResource

MAINTAIN_JOB_NAME = "braintrust_maintain_job"
MAINTAIN_CRON = "30 4 * * *"


class MaintainConfig(dg.Config):
    """Run config of the maintain job.

    Args:
        retain_hours: keep table versions and unreferenced files younger than this.
    """

    retain_hours: float = DEFAULT_RETAIN_HOURS


@dg.op(name="maintain_warehouse")
def maintain_warehouse(
    context: dg.OpExecutionContext, config: MaintainConfig, warehouse: WarehouseResource
) -> None:
    """Maintain the warehouse's storage and log what it did."""
    with terminal_errors_fail_without_retry():
        summary = warehouse.open().maintain(hours_window(config.retain_hours, "retain_hours"))
    context.log.info(f"maintained the warehouse: {summary.model_dump_json()}")


@dg.job(
    name=MAINTAIN_JOB_NAME, description="Expire old table versions, merge small files (`bt-sync maintain`)."
)
def maintain_job() -> None:
    """Run `maintain_warehouse`."""
    maintain_warehouse()


maintain_schedule = dg.ScheduleDefinition(
    name="braintrust_maintain_schedule",
    cron_schedule=MAINTAIN_CRON,
    job=maintain_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily storage maintenance, at night after the hourly syncs.",
)
