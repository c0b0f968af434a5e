"""The registry of Braintrust object kinds: everything else derives from it.

Catalog discovery, the sync's `--objects` choices, the catalog and event
tables, Dagster's assets and partitions, and the emulator's routes are all one
code path over `KINDS`. Adding a list-only kind (say, views) is one entry here
and one table in `schemas.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.api import (
    ApiObject,
    Dataset,
    Experiment,
    Function,
    ObjectType,
    Project,
    ProjectScore,
    ProjectTag,
    Prompt,
)
from schemas.tables import (
    DATASET_RECORDS,
    DATASETS,
    EXPERIMENT_EVENTS,
    EXPERIMENTS,
    FUNCTIONS,
    PROJECT_LOGS,
    PROJECT_SCORES,
    PROJECT_TAGS,
    PROJECTS,
    PROMPTS,
    CatalogTable,
    EventStream,
)


@dataclass(frozen=True)
class ObjectKind:
    """One kind of object the API lists; event containers also have `fetch` and `insert`.

    Args:
        option: its name in `bt-sync sync --objects` (`logs` selects the projects' logs).
        api_path: the path segment of its endpoints, `/v1/{api_path}`.
        catalog: the table with one row per object.
        model: the pydantic model of one object.
        events: the event table its `fetch` feeds, for event containers.
        in_project: listed per project (`?project_id=`); projects themselves are listed org-wide.
    """

    option: str
    api_path: str
    catalog: CatalogTable
    model: type[ApiObject]
    events: EventStream | None = None
    in_project: bool = True

    @property
    def name(self) -> str:
        """The kind's catalog table name, e.g. `experiments`."""
        return self.catalog.table


PROJECT = ObjectKind("logs", "project", PROJECTS, Project, PROJECT_LOGS, in_project=False)
EXPERIMENT = ObjectKind("experiments", "experiment", EXPERIMENTS, Experiment, EXPERIMENT_EVENTS)
DATASET = ObjectKind("datasets", "dataset", DATASETS, Dataset, DATASET_RECORDS)
PROMPT = ObjectKind("prompts", "prompt", PROMPTS, Prompt)
FUNCTION = ObjectKind("functions", "function", FUNCTIONS, Function)
PROJECT_SCORE = ObjectKind("project_scores", "project_score", PROJECT_SCORES, ProjectScore)
PROJECT_TAG = ObjectKind("project_tags", "project_tag", PROJECT_TAGS, ProjectTag)

KINDS: tuple[ObjectKind, ...] = (PROJECT, EXPERIMENT, DATASET, PROMPT, FUNCTION, PROJECT_SCORE, PROJECT_TAG)
BY_OPTION = {kind.option: kind for kind in KINDS}
EVENT_KINDS = tuple(kind for kind in KINDS if kind.events is not None)
BY_OBJECT_TYPE = {kind.events.object_type: kind for kind in KINDS if kind.events is not None}
EVENT_STREAMS: dict[ObjectType, EventStream] = {
    object_type: kind.events for object_type, kind in BY_OBJECT_TYPE.items() if kind.events is not None
}
CATALOG_TABLES = tuple(kind.catalog for kind in KINDS)


def event_stream(object_type: ObjectType) -> EventStream:
    """The event table fed by `object_type`'s fetch."""
    return EVENT_STREAMS[object_type]
