"""The catalog: which projects, experiments and datasets exist, and their tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from connector.api.client import BraintrustClient
from connector.errors import ConfigError
from connector.sync.extract import ObjectRef
from schemas.api import Dataset, Experiment, ObjectType, Project
from schemas.tables import (
    DATASETS,
    EVENT_STREAMS,
    EXPERIMENTS,
    PROJECTS,
    CatalogTable,
    json_struct,
    sql_literal,
)


@dataclass(frozen=True)
class Catalog:
    """The selected projects and every experiment and dataset in them."""

    projects: tuple[Project, ...]
    experiments: tuple[Experiment, ...]
    datasets: tuple[Dataset, ...]

    def refs(self, object_types: frozenset[ObjectType]) -> list[ObjectRef]:
        """The event containers to sync, for the requested object types."""
        refs: list[ObjectRef] = []
        if ObjectType.PROJECT_LOGS in object_types:
            refs += [
                ObjectRef(EVENT_STREAMS[ObjectType.PROJECT_LOGS], p.id, p.id, f"{p.name} logs")
                for p in self.projects
            ]
        if ObjectType.EXPERIMENT in object_types:
            refs += [
                ObjectRef(EVENT_STREAMS[ObjectType.EXPERIMENT], e.id, e.project_id, e.name)
                for e in self.experiments
            ]
        if ObjectType.DATASET in object_types:
            refs += [
                ObjectRef(EVENT_STREAMS[ObjectType.DATASET], d.id, d.project_id, d.name)
                for d in self.datasets
            ]
        return refs


def object_ref(client: BraintrustClient, object_type: ObjectType, object_id: str) -> ObjectRef:
    """Look up one event container by type and id (project id for project logs)."""
    stream = EVENT_STREAMS[object_type]
    if object_type is ObjectType.PROJECT_LOGS:
        project = client.get_project(object_id)
        return ObjectRef(stream, project.id, project.id, f"{project.name} logs")
    found: Experiment | Dataset = (
        client.get_experiment(object_id)
        if object_type is ObjectType.EXPERIMENT
        else client.get_dataset(object_id)
    )
    return ObjectRef(stream, found.id, found.project_id, found.name)


def discover_catalog(client: BraintrustClient, selectors: Sequence[str] = ()) -> Catalog:
    """List the projects matching `selectors` (names or ids; all when empty) and their objects.

    Raises:
        ConfigError: a selector matches no project.
    """
    projects = list(client.list_projects())
    if selectors:
        chosen = [p for p in projects if p.id in selectors or p.name in selectors]
        unknown = set(selectors) - {p.id for p in chosen} - {p.name for p in chosen}
        if unknown:
            known = ", ".join(sorted(p.name for p in projects)) or "none"
            raise ConfigError(f"no project named or with id {', '.join(sorted(unknown))} (projects: {known})")
        projects = chosen
    experiments = [e for p in projects for e in client.list_experiments(p.id)]
    datasets = [d for p in projects for d in client.list_datasets(p.id)]
    return Catalog(tuple(projects), tuple(experiments), tuple(datasets))


def write_catalog(connection: duckdb.DuckDBPyConnection, catalog: Catalog, *, replace_all: bool) -> None:
    """Replace the catalog rows of the catalog's projects (or of every project) in one transaction."""
    project_ids = [p.id for p in catalog.projects]
    connection.execute("BEGIN TRANSACTION")
    try:
        for table, owner_column, objects in (
            (PROJECTS, "id", catalog.projects),
            (EXPERIMENTS, "project_id", catalog.experiments),
            (DATASETS, "project_id", catalog.datasets),
        ):
            if replace_all:
                connection.execute(f'DELETE FROM "{table.table}"')
            else:
                connection.execute(
                    f'DELETE FROM "{table.table}" WHERE {owner_column} = ANY(?)', [project_ids]
                )
            _insert_objects(connection, table, [o.model_dump_json() for o in objects])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _insert_objects(
    connection: duckdb.DuckDBPyConnection, table: CatalogTable, raw_objects: list[str]
) -> None:
    if not raw_objects:
        return
    typed = [c for c in table.columns if c.name not in ("_raw", "_synced_at")]
    struct = sql_literal(json_struct(tuple(typed)))
    staged = pa.table({"raw": pa.array(raw_objects, pa.string())})
    select = ", ".join(f's."{c.name}"' for c in typed)
    connection.register("catalog_rows", staged)
    try:
        connection.execute(
            f'INSERT INTO "{table.table}" SELECT {select}, raw::JSON, now() '
            f"FROM (SELECT raw, json_transform(raw, {struct}) AS s FROM catalog_rows)"
        )
    finally:
        connection.unregister("catalog_rows")
