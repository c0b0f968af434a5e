"""Asset checks on the event tables: unique keys, rows against their state, coverage, freshness, and
dataset counts against the API.

Checks read the whole table, so they are not partitioned; they run in
`braintrust_checks_job` rather than in every partition run. They read the
files of the tables' current commits through an in-memory DuckDB, so they never
block a sync, and a file missing from the warehouse fails them (a query of the
views would read the object without that file's rows).
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from connector.config import hours_window
from connector.errors import NotFoundError
from pipelines.failures import terminal_errors_fail_without_retry
from pipelines.resources import BraintrustResource, WarehouseResource
from pipelines.tables import BraintrustSpecs, EventAssets
from schemas.api import ObjectType
from schemas.kinds import PROJECT

SAMPLE_SIZE = 10
DEFAULT_MAX_AGE_HOURS = 6.0


class SyncedRecentlyConfig(dg.Config):
    """Run config of the `synced_recently` checks.

    Args:
        max_age_hours: the oldest last sync an object may have and pass.
    """

    max_age_hours: float = DEFAULT_MAX_AGE_HOURS


def _sample(rows: Sequence[tuple[Any, ...]], fields: Sequence[str]) -> dg.MetadataValue:
    sample = [dict(zip(fields, map(str, row), strict=True)) for row in rows[:SAMPLE_SIZE]]
    return dg.MetadataValue.json(sample)


def _unique_key(assets: EventAssets) -> dg.AssetChecksDefinition:
    table, key = assets.stream.table, assets.stream.key_column

    @dg.asset_check(
        asset=assets.key,
        name="unique_key",
        description=f"No two rows of `{table}` share ({key}, id): each holds the newest version of one row.",
    )
    def unique_key(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        grouped = f'SELECT "{key}", id, count(*) AS copies FROM "{table}" GROUP BY ALL HAVING count(*) > 1'
        with terminal_errors_fail_without_retry(), warehouse.reader(pinned=True) as connection:
            total = connection.execute(f"SELECT count(*) FROM ({grouped})").fetchone()
            sample = connection.execute(f"{grouped} ORDER BY copies DESC LIMIT {SAMPLE_SIZE}").fetchall()
        duplicated = total[0] if total else 0
        return dg.AssetCheckResult(
            passed=duplicated == 0,
            metadata={"duplicated_keys": duplicated, "sample": _sample(sample, (key, "id", "copies"))},
        )

    return unique_key


def _rows_match_sync_state(assets: EventAssets) -> dg.AssetChecksDefinition:
    table, key, object_type = assets.stream.table, assets.stream.key_column, assets.object_type.value

    @dg.asset_check(
        asset=assets.key,
        name="rows_match_sync_state",
        description=f"Each object has as many rows in `{table}` as its `sync_state` row counts: its "
        "commit record names every file of its rows, and no more.",
    )
    def rows_match_sync_state(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with terminal_errors_fail_without_retry(), warehouse.reader(pinned=True) as connection:
            mismatched = connection.execute(
                f'SELECT s.object_id, s.name, s.rows, count(t.id) FROM sync_state AS s LEFT JOIN "{table}" '
                f'AS t ON t."{key}" = s.object_id WHERE s.object_type = ? GROUP BY ALL '
                "HAVING count(t.id) <> s.rows ORDER BY s.name",
                [object_type],
            ).fetchall()
        return dg.AssetCheckResult(
            passed=not mismatched,
            metadata={
                "mismatched_objects": len(mismatched),
                "sample": _sample(mismatched, ("id", "name", "sync_state_rows", "table_rows")),
            },
        )

    return rows_match_sync_state


def _readable_name(assets: EventAssets) -> tuple[str, str]:
    """SQL naming the catalog row `c` as its partition and the other checks name it, and the join it
    needs: `project/experiment` (its project's logs: the project's name)."""
    if not assets.kind.in_project:
        return "c.name", ""
    return (
        "coalesce(p.name || '/' || c.name, c.name)",
        f'LEFT JOIN "{PROJECT.catalog.table}" AS p ON p.id = c.project_id',
    )


def _objects_synced(assets: EventAssets) -> dg.AssetChecksDefinition:
    catalog, object_type = assets.kind.catalog.table, assets.object_type.value
    readable, with_project = _readable_name(assets)

    @dg.asset_check(
        asset=assets.key,
        name="objects_synced",
        description=f"Every row of the `{catalog}` catalog has a `sync_state` row: each object was synced.",
        additional_deps=[assets.catalog_key],
    )
    def objects_synced(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with terminal_errors_fail_without_retry(), warehouse.reader(pinned=True) as connection:
            missing = connection.execute(
                f'SELECT c.id, {readable} AS name FROM "{catalog}" AS c {with_project} '
                "LEFT JOIN sync_state AS s ON s.object_type = ? AND s.object_id = c.id "
                "WHERE s.object_id IS NULL ORDER BY name",
                [object_type],
            ).fetchall()
        return dg.AssetCheckResult(
            passed=not missing,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unsynced_objects": len(missing), "sample": _sample(missing, ("id", "name"))},
        )

    return objects_synced


def _synced_recently(assets: EventAssets) -> dg.AssetChecksDefinition:
    catalog, object_type = assets.kind.catalog.table, assets.object_type.value
    # Two projects' `baseline` experiments were two rows named `baseline`.
    readable, with_project = _readable_name(assets)

    @dg.asset_check(
        asset=assets.key,
        name="synced_recently",
        description=f"Every object in `{catalog}` was synced within `max_age_hours` (default "
        f"{DEFAULT_MAX_AGE_HOURS:g}). The asset's freshness policy sees only its latest partition run; "
        "this sees each object.",
        additional_deps=[assets.catalog_key],
    )
    def synced_recently(config: SyncedRecentlyConfig, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with terminal_errors_fail_without_retry():
            oldest_allowed = datetime.now(UTC) - hours_window(config.max_age_hours, "max_age_hours")
            with warehouse.reader(pinned=True) as connection:
                stale = connection.execute(
                    f"SELECT s.object_id, {readable} AS name, s.synced_at FROM sync_state AS s "
                    f'JOIN "{catalog}" AS c ON c.id = s.object_id {with_project} '
                    "WHERE s.object_type = ? AND s.synced_at < ? ORDER BY s.synced_at",
                    [object_type, oldest_allowed],
                ).fetchall()
        return dg.AssetCheckResult(
            passed=not stale,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "stale_objects": len(stale),
                "max_age_hours": config.max_age_hours,
                "sample": _sample(stale, ("id", "name", "synced_at")),
            },
        )

    return synced_recently


def _row_counts_match_api(assets: EventAssets) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=assets.key,
        name="row_counts_match_api",
        description="Each synced dataset has as many rows in `dataset_records` as "
        "`/v1/dataset/{id}/summarize` reports live records. A mismatch means rows changed upstream since "
        "the last sync, or rows were deleted upstream and no reconcile run has removed them since.",
    )
    def row_counts_match_api(
        braintrust: BraintrustResource, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        """Compare every synced dataset's row count with the API's live record count."""
        with terminal_errors_fail_without_retry(), warehouse.reader(pinned=True) as connection:
            local = connection.execute(
                # Not joined to the `datasets` catalog: a refresh drops a dataset deleted upstream from
                # it, while its rows stay until a reconcile removes them (and its state with them).
                "SELECT s.object_id, s.name, count(r.id) FROM sync_state AS s "
                "LEFT JOIN dataset_records AS r ON r.dataset_id = s.object_id "
                "WHERE s.object_type = 'dataset' GROUP BY ALL ORDER BY s.name"
            ).fetchall()
        mismatched: list[tuple[str, str, int, int | None]] = []
        with terminal_errors_fail_without_retry(), braintrust.client() as client:
            for dataset_id, name, rows in local:
                try:
                    summary = client.summarize_dataset(dataset_id).data_summary
                except NotFoundError:
                    mismatched.append((dataset_id, name, rows, None))
                    continue
                if summary is not None and summary.total_records != rows:
                    mismatched.append((dataset_id, name, rows, summary.total_records))
        return dg.AssetCheckResult(
            passed=not mismatched,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "datasets_checked": len(local),
                "mismatched": len(mismatched),
                "sample": _sample(mismatched, ("id", "name", "warehouse_rows", "api_records")),
            },
        )

    return row_counts_match_api


def build_checks(specs: BraintrustSpecs) -> list[dg.AssetChecksDefinition]:
    """Every check, on the event tables the specs name."""
    per_table = (_unique_key, _rows_match_sync_state, _objects_synced, _synced_recently)
    return [
        *(factory(assets) for assets in specs.events for factory in per_table),
        _row_counts_match_api(specs.event(ObjectType.DATASET)),
    ]
