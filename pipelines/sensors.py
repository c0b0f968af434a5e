"""The discovery sensor: keeps one partition per Braintrust object and syncs new objects at once.

It ships stopped; turn it on in the UI (Automation), or with
`dagster sensor start braintrust_discovery_sensor` run from the repository root.

A setting a user got wrong (`BT_SYNC_TIMEOUT=abc`, a key Braintrust rejects) skips the tick in one
line naming it: Dagster shows an error a sensor raises as "Error occurred during the execution of
evaluation_fn", its own message buried under two tracebacks, in the UI and in the daemon's log.
"""

import hashlib
import time

import dagster as dg

from connector.destinations.base import ObjectRef, SyncState
from connector.display import counted
from connector.errors import AuthError, ConfigError
from connector.sync.catalog import Catalog, check_same_source, discover_catalog
from pipelines.discovery import PartitionsRequest, partition_changes
from pipelines.jobs import BraintrustJobs
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.tables import BraintrustSpecs, EventAssets
from schemas.kinds import EVENT_KINDS

DISCOVERY_SENSOR_NAME = "braintrust_discovery_sensor"
DISCOVERY_INTERVAL_S = 300
# The tag Dagster gives a partition's runs.
PARTITION_TAG = "dagster/partition"


# The runs that ended without doing their work.
_FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
# The runs that ended, whether or not they did their work.
_ENDED = [*_FAILED, dg.DagsterRunStatus.SUCCESS]
# The longest a first sync that keeps failing waits to be asked for again: the hourly schedule's period,
# which syncs every partition anyway.
_LONGEST_FIRST_SYNC_WAIT_S = 3600
# Enough failed runs in a row to reach that wait (`_backing_off`).
_FAILURES_COUNTED = 5
# Partitions waiting after a failed first sync that a skipped tick names.
_SHOWN_WAITING = 5


def build_discovery_sensor(specs: BraintrustSpecs, jobs: BraintrustJobs) -> dg.SensorDefinition:
    """The sensor that adds, removes and first syncs partitions as objects come and go upstream."""

    @dg.sensor(
        name=DISCOVERY_SENSOR_NAME,
        jobs=[jobs.catalog, *jobs.sync.values()],
        minimum_interval_seconds=DISCOVERY_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="List Braintrust projects, experiments and datasets; add a partition for each new "
        "(or renamed) one, sync every partition never synced yet, remove the partitions of deleted (or "
        "renamed) ones, and refresh the catalog when one of those changed.",
    )
    def braintrust_discovery_sensor(
        context: dg.SensorEvaluationContext, braintrust: BraintrustResource, warehouse: WarehouseResource
    ) -> dg.SensorResult:
        """Compare the API's objects with the instance's partitions and request the difference."""
        try:
            catalog, states = _listings(braintrust, warehouse)
        except (ConfigError, AuthError) as error:
            # Anything else (an outage, a damaged warehouse) fails the tick, where alerts see it.
            return dg.SensorResult(skip_reason=f"bt-sync: {error}")
        # Known by id, not by partition: an object deleted and re-created under its name was never synced.
        # With the name it had then: one renamed since is synced under its new key, even where a catalog
        # run, not this sensor, moved its partition.
        synced = {(state.object_type, state.object_id): state.name for state in states}
        partition_requests: list[PartitionsRequest] = []
        sync_requests: list[dg.RunRequest] = []
        # Partitions whose first sync failed, not asked for again yet.
        waiting: list[str] = []
        # What the catalog run follows: partitions removed, objects never synced (by key and id), and
        # objects renamed since their last sync (by their sync's key, which names that last run).
        changes: list[str] = []
        for change in partition_changes(specs, catalog, context.instance):
            partition_requests += change.requests()
            changes += (
                _removal(context.instance, change.assets, key, jobs.catalog.name) for key in change.removed
            )
            # New partitions, every object never synced into the warehouse, and every object renamed since
            # its last sync.
            for key, ref in change.listed.items():
                synced_as = synced.get((ref.object_type, ref.object_id))
                if key in change.added or synced_as != ref.name:
                    is_synced = synced_as is not None
                    request = _first_sync(context.instance, change.assets, key, ref)
                    if _backing_off(context.instance, change.assets, key):
                        waiting.append(f"{change.assets.partitions_name}:{key}")
                    else:
                        sync_requests.append(request)
                    identity = f"{change.assets.partitions_name}:{key}:{ref.object_id}"
                    # Never synced: by the run that last synced it into a warehouse, if one did (the
                    # warehouse is new, or restored: its catalog tables too), not by its failures.
                    after = (
                        request.run_key if is_synced else _last_success(context.instance, change.assets, key)
                    )
                    changes.append(f"{identity}:{after}")
        # A catalog run that failed is asked for again at the next tick, whether or not anything is pending.
        catalog_failed = _failed_last(context.instance, jobs.catalog.name)
        if not partition_requests and not sync_requests and not catalog_failed:
            return dg.SensorResult(skip_reason=_nothing_to_do(waiting))
        # Later syncs come from the schedules. A first sync is of a new object, which the catalog lacks
        # even when its partition key is an old one (an object deleted and re-created under its name).
        # Keyed by what it follows, and by its own last failure: Dagster launches it once, not again at
        # every tick a sync still waits or fails again (a first sync the API refuses for good), but again
        # at the tick after a catalog run that failed.
        failed = _last_failure(context.instance, jobs.catalog.name)
        catalog_key = hashlib.sha256("\n".join([*sorted(changes), failed]).encode()).hexdigest()[:16]
        catalog_request = dg.RunRequest(job_name=jobs.catalog.name, run_key=f"catalog:{catalog_key}")
        return dg.SensorResult(
            run_requests=[catalog_request, *sync_requests], dynamic_partitions_requests=partition_requests
        )

    return braintrust_discovery_sensor


def _listings(
    braintrust: BraintrustResource, warehouse: WarehouseResource
) -> tuple[Catalog, list[SyncState]]:
    """The objects the API lists, and those synced into the warehouse.

    Raises:
        BtSyncError: a setting is invalid, the key is rejected, the API or the warehouse is unavailable, or
            the API lists none of the warehouse's projects (another deployment's, whose objects the tick
            would sync into it, every partition of the warehouse's own then removed).
    """
    with braintrust.client() as client:
        catalog = discover_catalog(client, braintrust.projects, EVENT_KINDS)
    states = warehouse.synced_objects()
    check_same_source(catalog.listed_project_ids, states)
    return catalog, states


def _removal(instance: dg.DagsterInstance, assets: EventAssets, key: str, catalog_job: str) -> str:
    """A partition's removal, as the catalog run's key follows it: the key, its last run and the catalog's.

    The key alone repeats when an object re-created under its name is deleted again (a nightly
    experiment), and Dagster would not launch that catalog run a second time. An object that was synced
    had runs of its own; one never synced had its partition added by a catalog run, or by a tick that
    asked for one, so the catalog's last run differs from the one before its removal.
    """
    filters = [
        dg.RunsFilter(job_name=assets.job_name, tags={PARTITION_TAG: key}),
        dg.RunsFilter(job_name=catalog_job),
    ]
    last_runs = [instance.get_runs(runs_filter, limit=1) for runs_filter in filters]
    run_ids = [runs[0].run_id if runs else "never run" for runs in last_runs]
    return ":".join([assets.partitions_name, key, *run_ids])


def _failed_last(instance: dg.DagsterInstance, job_name: str) -> bool:
    """Whether the job's latest run failed or was cancelled."""
    runs = instance.get_runs(dg.RunsFilter(job_name=job_name), limit=1)
    return bool(runs) and runs[0].status in _FAILED


def _last_failure(instance: dg.DagsterInstance, job_name: str) -> str:
    """The id of the job's last run that failed or was cancelled ("none" if none did)."""
    runs = instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=list(_FAILED)), limit=1)
    return runs[0].run_id if runs else "none"


def _nothing_to_do(waiting: list[str]) -> str:
    """Why a tick requests nothing: every object is synced, or those that are not wait after failing."""
    if not waiting:
        return "every Braintrust object has a synced partition"
    shown = ", ".join(waiting[:_SHOWN_WAITING]) + (", …" if len(waiting) > _SHOWN_WAITING else "")
    one = len(waiting) == 1
    return (
        f"{counted(len(waiting), 'partitions')} never synced {'waits' if one else 'wait'} to be asked for "
        f"again after {'its' if one else 'their'} first sync failed (5, 15, 35 minutes after, then hourly): "
        f"{shown}; every other object has a synced partition"
    )


def _backing_off(instance: dg.DagsterInstance, assets: EventAssets, key: str) -> bool:
    """Whether a first sync that failed is not asked for again yet.

    The first failure is followed at the next tick (an outage, a key fixed since); each one after it in a
    row about doubles the wait (5, 15, 35 minutes), up to `_LONGEST_FIRST_SYNC_WAIT_S`, so that an object
    the API refuses for good (a 403) is not asked for at every tick: 288 failed runs a day.
    """
    runs = instance.get_run_records(
        dg.RunsFilter(job_name=assets.job_name, tags={PARTITION_TAG: key}, statuses=_ENDED),
        limit=_FAILURES_COUNTED,
    )
    failures = next((n for n, run in enumerate(runs) if run.dagster_run.status not in _FAILED), len(runs))
    if not failures or runs[0].end_time is None:
        return False
    wait = min(DISCOVERY_INTERVAL_S * ((1 << (failures - 1)) - 1), _LONGEST_FIRST_SYNC_WAIT_S)
    return time.time() - float(runs[0].end_time) < wait


def _last_success(instance: dg.DagsterInstance, assets: EventAssets, key: str) -> str:
    """The id of the partition's last run that succeeded, or "never"."""
    runs = instance.get_runs(
        dg.RunsFilter(
            job_name=assets.job_name, tags={PARTITION_TAG: key}, statuses=[dg.DagsterRunStatus.SUCCESS]
        ),
        limit=1,
    )
    return runs[0].run_id if runs else "never"


def _first_sync(instance: dg.DagsterInstance, assets: EventAssets, key: str, ref: ObjectRef) -> dg.RunRequest:
    """The run that syncs a partition first, asked for once per run of it that ended before.

    Dagster launches a run key once, and never again even if its run failed: the key names the
    partition's last run that ended, failed or succeeded. So a first sync that failed (an outage, a key
    fixed since) is asked for again at the next tick, while one still queued or running is not asked
    for twice; an object renamed back to a key it had is synced under it again; and an object a run
    synced but the warehouse lacks (a new warehouse, or one restored from a backup older than the run)
    is synced again, rather than left out for good under the key of that run.
    """
    last = instance.get_runs(
        dg.RunsFilter(job_name=assets.job_name, tags={PARTITION_TAG: key}, statuses=_ENDED), limit=1
    )
    after = last[0].run_id if last else "first"
    return dg.RunRequest(
        run_key=f"{assets.partitions_name}:{key}:{ref.object_id}:{after}",
        job_name=assets.job_name,
        partition_key=key,
    )
