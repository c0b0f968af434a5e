"""The tables as Dagster sees them: each table's asset spec (from the translator), partitions and job.

Declared as data so that assets, checks, jobs, schedules and the sensor are
each one code path over `BraintrustSpecs.events`.
"""

from dataclasses import dataclass

import dagster as dg

from pipelines.translator import BraintrustTableData, BraintrustTranslator
from schemas.api import ObjectType
from schemas.kinds import EVENT_KINDS, KINDS, ObjectKind
from schemas.tables import EventStream

# Named once and for all: the instance stores each object's partition under these names.
PARTITIONS = {
    ObjectType.PROJECT_LOGS: dg.DynamicPartitionsDefinition(name="bt_project_logs"),
    ObjectType.EXPERIMENT: dg.DynamicPartitionsDefinition(name="bt_experiments"),
    ObjectType.DATASET: dg.DynamicPartitionsDefinition(name="bt_datasets"),
}


@dataclass(frozen=True)
class EventAssets:
    """One event table and everything Dagster hangs off it.

    Args:
        kind: the kind of object whose events the table holds (projects, for project logs).
        spec: the event table's asset spec.
        catalog_spec: the spec of the catalog table listing those objects.
        partitions: one dynamic partition per object, keyed by its readable name.
    """

    kind: ObjectKind
    spec: dg.AssetSpec
    catalog_spec: dg.AssetSpec
    partitions: dg.DynamicPartitionsDefinition

    @property
    def stream(self) -> EventStream:
        """The event table."""
        assert self.kind.events is not None, "an event kind has events"
        return self.kind.events

    @property
    def object_type(self) -> ObjectType:
        """The API object type whose events the table holds."""
        return self.stream.object_type

    @property
    def key(self) -> dg.AssetKey:
        """The event asset's key, e.g. `braintrust/experiment_events`."""
        return self.spec.key

    @property
    def catalog_key(self) -> dg.AssetKey:
        """The catalog asset's key, e.g. `braintrust/experiments`."""
        return self.catalog_spec.key

    @property
    def op_name(self) -> str:
        """The name of the step that syncs the table's partitions (for run config)."""
        return f"braintrust_{self.stream.table}"

    @property
    def job_name(self) -> str:
        """The partitioned job that syncs objects of this kind."""
        return f"braintrust_{self.stream.table}_job"

    @property
    def partitions_name(self) -> str:
        """The dynamic partitions definition's name in the Dagster instance."""
        name = self.partitions.name
        assert name is not None, "every partitions definition in PARTITIONS is named"
        return name


@dataclass(frozen=True)
class BraintrustSpecs:
    """The asset spec of every table bt-sync writes.

    Args:
        source: the external asset standing for Braintrust, upstream of every table.
        catalog: per kind, the spec of its catalog table, in registry order.
        events: the three event tables.
    """

    source: dg.AssetSpec
    catalog: dict[ObjectKind, dg.AssetSpec]
    events: tuple[EventAssets, ...]

    def event(self, object_type: ObjectType) -> EventAssets:
        """The event table fed by `object_type`."""
        return next(assets for assets in self.events if assets.object_type is object_type)


def resolve_specs(
    translator: BraintrustTranslator, schema: str, storage_kinds: frozenset[str]
) -> BraintrustSpecs:
    """Ask the translator for every table's spec.

    Args:
        translator: what turns tables into specs.
        schema: where the tables are (`TableData.schema`).
        storage_kinds: the engines holding them (`TableData.storage_kinds`).
    """
    catalog = {
        kind: translator.get_asset_spec(
            BraintrustTableData(
                kind.catalog.table,
                kind.catalog.description,
                kind.catalog.columns,
                kind,
                None,
                schema,
                storage_kinds,
            )
        ).replace_attributes(partitions_def=None)
        for kind in KINDS
    }
    events = []
    for kind in EVENT_KINDS:
        assert kind.events is not None, "an event kind has events"
        partitions = PARTITIONS[kind.events.object_type]
        data = BraintrustTableData(
            kind.events.table,
            kind.events.description,
            kind.events.columns,
            kind,
            partitions,
            schema,
            storage_kinds,
        )
        spec = translator.get_asset_spec(data).replace_attributes(partitions_def=partitions)
        events.append(EventAssets(kind, spec, catalog[kind], partitions))
    return BraintrustSpecs(translator.get_source_spec(), catalog, tuple(events))
