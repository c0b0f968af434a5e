"""How bt-sync's tables become Dagster asset specs, and the hook that changes them.

`build_definitions` asks a `BraintrustTranslator` for the spec of every table
it writes (the seven catalog tables and the three event tables), and of the
external asset standing for Braintrust itself, upstream of them all. Subclass it to
change keys, groups, owners, tags, descriptions, kinds or the freshness
policy, as with dagster-dlt's `DagsterDltTranslator`:

    class MyTranslator(BraintrustTranslator):
        def get_asset_spec(self, data: BraintrustTableData) -> dg.AssetSpec:
            spec = super().get_asset_spec(data)
            return spec.replace_attributes(
                key=spec.key.with_prefix("llm"), group_name="llm_observability"
            ).merge_attributes(owners=["team:ml-platform"])

    defs = build_definitions(braintrust, warehouse, translator=MyTranslator())

Checks, jobs, schedules and the sensor follow the keys the translator gives.
The partitions are bt-sync's own (one per object): whatever `partitions_def`
a spec names is replaced by them.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from schemas.api import ObjectType
from schemas.kinds import ObjectKind
from schemas.tables import Column

KEY_PREFIX = "braintrust"
GROUP = "braintrust"
# The engines holding the tables, shown as asset kinds beside "braintrust".
DUCKDB_KINDS = frozenset({"duckdb", "parquet"})
ICEBERG_KINDS = frozenset({"iceberg"})
# What the schedules aim for (hourly) plus slack for a slow run; the `synced_recently` check sees each object.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6), warn_window=timedelta(hours=2))
_PARTITION_KEY_SHAPE = {
    ObjectType.PROJECT_LOGS: "`project`",
    ObjectType.EXPERIMENT: "`project/experiment`",
    ObjectType.DATASET: "`project/dataset`",
}


@dataclass(frozen=True)
class BraintrustTableData:
    """One table bt-sync writes, as the translator sees it.

    Args:
        table: the table's name, e.g. `experiment_events` or `experiments`.
        description: what one row is.
        columns: the columns, with their types and descriptions.
        kind: the kind of Braintrust object the table is about (`schemas.kinds`).
        partitions_def: for an event table, its partitions (one per object); None for a catalog table.
        schema: where the table is: `<DuckDB file name>.main`, or the Iceberg namespace.
        storage_kinds: the engines holding it: `DUCKDB_KINDS` or `ICEBERG_KINDS`.
    """

    table: str
    description: str
    columns: tuple[Column, ...]
    kind: ObjectKind
    partitions_def: dg.DynamicPartitionsDefinition | None
    schema: str
    storage_kinds: frozenset[str] = DUCKDB_KINDS

    @property
    def is_event_table(self) -> bool:
        """Whether this is an event table (partitioned by object), not a catalog table."""
        return self.partitions_def is not None

    @property
    def qualified_name(self) -> str:
        """The name analysts query the table by: `file.main.table` (DuckDB), `namespace.table` (Iceberg)."""
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class BraintrustTranslator:
    """Turns each table bt-sync writes into a Dagster `AssetSpec`; subclass it to customize the specs."""

    def get_source_spec(self) -> dg.AssetSpec:
        """The spec of Braintrust itself: an external asset (Dagster never materializes it), upstream of
        every table so the graph shows where they come from. Nothing observes it, so it never marks a
        table "Unsynced"."""
        return dg.AssetSpec(
            key=dg.AssetKey([KEY_PREFIX, "api"]),
            description="The Braintrust API: projects, their logs, experiments, datasets and the rest of "
            "the catalog, which every table here is synced from. External: bt-sync reads it, never writes "
            "it.",
            group_name=GROUP,
            kinds={"braintrust"},
        )

    def get_asset_spec(self, data: BraintrustTableData) -> dg.AssetSpec:
        """The spec of one table: key `braintrust/<table>`, group `braintrust`, kinds, schema and freshness.

        Args:
            data: the table.
        """
        return dg.AssetSpec(
            key=dg.AssetKey([KEY_PREFIX, data.table]),
            description=_description(data),
            group_name=GROUP,
            kinds={"braintrust", *data.storage_kinds},
            tags={"braintrust/table_type": "events" if data.is_event_table else "catalog"},
            code_version=schema_version(data.columns),
            metadata={
                "dagster/table_name": data.qualified_name,
                "dagster/column_schema": table_schema(data.columns),
            },
            partitions_def=data.partitions_def,
            freshness_policy=FRESHNESS if data.is_event_table else None,
            deps=[self.get_source_spec().key],
        )


def table_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    """The Dagster schema of a table: names, DuckDB types and the README's descriptions."""
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.duckdb_type, c.description) for c in columns])


def schema_version(columns: tuple[Column, ...]) -> str:
    """A short digest of a table's column names and types: the asset's code version.

    It changes only when an upgrade changes the table's shape, not with every bt-sync release.
    """
    shape = "\n".join(f"{c.name} {c.duckdb_type}" for c in columns)
    return hashlib.sha256(shape.encode()).hexdigest()[:12]


def _description(data: BraintrustTableData) -> str:
    if data.kind.events is None or not data.is_event_table:
        return f"`{data.table}`: one row per Braintrust object the API lists. {data.description}"
    key_shape = _PARTITION_KEY_SHAPE[data.kind.events.object_type]
    return (
        f"`{data.table}`: {data.description} One partition per object, keyed {key_shape} "
        "(`bt-sync status` lists them); materializing a partition syncs that object incrementally."
    )
