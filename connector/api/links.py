"""Links to objects in the Braintrust web UI, spelled as the official SDK spells them."""

from __future__ import annotations

from urllib.parse import quote

from schemas.api import ObjectType

_PAGES = {ObjectType.EXPERIMENT: "experiments", ObjectType.DATASET: "datasets"}


def object_url(
    app_url: str, org_name: str, project_name: str, object_type: ObjectType, object_name: str
) -> str:
    """The UI page of a project's logs, an experiment or a dataset.

    Args:
        app_url: the Braintrust app, e.g. `https://www.braintrust.dev`.
        org_name: the organization the project belongs to.
        project_name: the project's name.
        object_type: what the page shows.
        object_name: the experiment's or dataset's name (the project's name for its logs).
    """
    project = f"{app_url.rstrip('/')}/app/{_segment(org_name)}/p/{_segment(project_name)}"
    if object_type is ObjectType.PROJECT_LOGS:
        return f"{project}/logs"
    return f"{project}/{_PAGES[object_type]}/{_segment(object_name)}"


def _segment(name: str) -> str:
    return quote(name, safe="")
