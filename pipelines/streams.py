"""The three synced object kinds as Dagster sees them: asset keys, partitions, jobs, catalog tables.

Declared as data so that assets, checks, jobs, schedules and the sensor are
each one code path over `STREAMS`.
"""

from dataclasses import dataclass

import dagster as dg

from schemas.api import ObjectType
from schemas.kinds import EVENT_STREAMS, KINDS, ObjectKind
from schemas.tables import DATASETS, EXPERIMENTS, PROJECTS, CatalogTable, EventStream

GROUP = "braintrust"
KEY_PREFIX = "braintrust"


@dataclass(frozen=True)
class StreamAssets:
    """One event table and everything Dagster hangs off it.

    Args:
        stream: the event table (`project_logs`, `experiment_events` or `dataset_records`).
        catalog: the catalog table listing the objects whose events it holds.
        partitions: one dynamic partition per object id (project id for project logs).
    """

    stream: EventStream
    catalog: CatalogTable
    partitions: dg.DynamicPartitionsDefinition

    @property
    def object_type(self) -> ObjectType:
        """The API object type whose events the table holds."""
        return self.stream.object_type

    @property
    def key(self) -> dg.AssetKey:
        """The event asset's key, e.g. `braintrust/experiment_events`."""
        return dg.AssetKey([KEY_PREFIX, self.stream.table])

    @property
    def catalog_key(self) -> dg.AssetKey:
        """The catalog asset's key, e.g. `braintrust/experiments`."""
        return dg.AssetKey([KEY_PREFIX, self.catalog.table])

    @property
    def job_name(self) -> str:
        """The partitioned job that syncs one object of this kind per run."""
        return f"braintrust_{self.stream.table}_job"

    @property
    def partitions_name(self) -> str:
        """The dynamic partitions definition's name in the Dagster instance."""
        name = self.partitions.name
        assert name is not None, "every StreamAssets partitions definition is named"
        return name


def catalog_key(kind: ObjectKind) -> dg.AssetKey:
    """The asset key of a kind's catalog table, e.g. `braintrust/prompts`."""
    return dg.AssetKey([KEY_PREFIX, kind.catalog.table])


PROJECT_LOGS = StreamAssets(
    EVENT_STREAMS[ObjectType.PROJECT_LOGS], PROJECTS, dg.DynamicPartitionsDefinition(name="bt_project_logs")
)
EXPERIMENT_EVENTS = StreamAssets(
    EVENT_STREAMS[ObjectType.EXPERIMENT], EXPERIMENTS, dg.DynamicPartitionsDefinition(name="bt_experiments")
)
DATASET_RECORDS = StreamAssets(
    EVENT_STREAMS[ObjectType.DATASET], DATASETS, dg.DynamicPartitionsDefinition(name="bt_datasets")
)
STREAMS = (PROJECT_LOGS, EXPERIMENT_EVENTS, DATASET_RECORDS)
BY_TYPE = {assets.object_type: assets for assets in STREAMS}
CATALOG_KEYS = [catalog_key(kind) for kind in KINDS]
