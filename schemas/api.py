"""Pydantic models of the Braintrust API objects bt-sync reads and writes.

Checked against `openapi-official.yaml`. Models accept unknown fields
(``extra="allow"``) because the API grows new fields; bt-sync keeps them rather
than failing a sync over them. Each model builds its validator when first used
(``defer_build``): a command uses a few of them, and building all of them cost
0.04 s of every command's start.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# How the API writes an object's id (`format: uuid`).
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class ObjectType(StrEnum):
    """The three kinds of event containers that have `fetch` and `insert` endpoints."""

    PROJECT_LOGS = "project_logs"
    EXPERIMENT = "experiment"
    DATASET = "dataset"


class _Response(BaseModel):
    """Base of what the API returns: frozen, and keeping fields added to the API after this was written."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class ApiObject(_Response):
    """An object the API lists: a project, experiment, dataset, prompt, ...

    The models of listed objects declare only the fields bt-sync reads. The others (`created`,
    `description`, `tags`, …) stay as listed, whatever their type: the catalog's `_raw` is the object as
    listed, and its typed columns are typed from it (a `created` of "….391Z" stays that text; a
    `description` that is an object where the spec says text neither fails the sync nor is lost).
    """

    id: str
    name: str

    def listed_json(self) -> str:
        """The object as JSON, as the API listed it: a field it left out stays out (the catalog's `_raw`)."""
        return self.model_dump_json(exclude_unset=True)

    @property
    def owning_project_id(self) -> str:
        """The project the object belongs to (a project's own id)."""
        return str(getattr(self, "project_id", None) or self.id)


class Project(ApiObject):
    """`Project` in the spec."""

    org_id: str


class _InProject(ApiObject):
    """An object listed per project: an experiment, dataset, prompt, function, score or tag definition."""

    project_id: str


class Experiment(_InProject):
    """`Experiment` in the spec."""

    # Required by the spec, unread by bt-sync: kept as listed, whatever its type.
    public: Any = None


class Dataset(_InProject):
    """`Dataset` in the spec."""

    url_slug: Any = None  # as `Experiment.public`


class Prompt(_InProject):
    """`Prompt` in the spec; `_xact_id` is its version."""


class Function(_InProject):
    """`Function` in the spec: a scorer, tool, task or LLM function; `_xact_id` is its version."""


class ProjectScore(_InProject):
    """`ProjectScore` in the spec: the definition of one score name."""


class ProjectTag(_InProject):
    """`ProjectTag` in the spec: the definition of one tag."""


class ListResponse(_Response):
    """The envelope of every list endpoint: `{"objects": [...]}`."""

    objects: list[dict[str, Any]]


class FetchEventsRequest(BaseModel):
    """Body of `POST /v1/{object}/{id}/fetch` (`FetchEventsRequest`).

    `limit` counts traces, not rows. `max_xact_id`/`max_root_span_id` are the
    deprecated manual cursor, used only when a server returns no `cursor`.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    limit: int | None = Field(default=None, ge=0)
    cursor: str | None = None
    max_xact_id: str | None = None
    max_root_span_id: str | None = None
    version: str | None = None


class FetchEventsResponse(BaseModel):
    """Response of fetch: one page of row versions, newest `_xact_id` first.

    Events stay plain dicts: they are shaped straight into Arrow columns, and a
    model instance per row would cost more than the rest of the sync.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)

    events: list[dict[str, Any]]
    cursor: str | None = None


class InsertEventsResponse(BaseModel):
    """`{"row_ids": [...]}`, aligned one-to-one with the inserted events."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    row_ids: list[str]


class DataSummary(_Response):
    """`DataSummary`: how many live records a dataset has."""

    total_records: int = Field(ge=0)


class SummarizeDatasetResponse(_Response):
    """Response of `GET /v1/dataset/{id}/summarize`."""

    project_name: str
    dataset_name: str
    project_url: str
    dataset_url: str
    data_summary: DataSummary | None = None


class OrgInfo(_Response):
    """One organization the key belongs to, as the app's login endpoint describes it."""

    id: str
    name: str


class LoginResponse(_Response):
    """Response of the app's `POST /api/apikey/login`: the key's organizations."""

    org_info: list[OrgInfo] = Field(default_factory=list)
