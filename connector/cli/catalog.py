"""`bt-sync projects`: list what the API serves."""

from __future__ import annotations

from typing import Any

from connector.cli.app import CheckedCommand, app, json_output, output_console
from connector.cli.options import ApiKeyOption, ApiUrlOption, JsonOption, TimeoutOption, api_settings
from connector.display import folded_table, plain_cells


@app.command(cls=CheckedCommand)
def projects(
    api_url: str | None = ApiUrlOption,
    api_key: str | None = ApiKeyOption,
    timeout: float | None = TimeoutOption,
    as_json: bool = JsonOption,
) -> None:
    """List projects with their experiments and datasets."""
    import orjson

    from connector.sync.catalog import discover_catalog
    from connector.wiring import open_client
    from schemas.kinds import DATASET, EXPERIMENT

    with open_client(api_settings(api_url, api_key, timeout)) as client:
        catalog = discover_catalog(client, kinds=(EXPERIMENT, DATASET))
    rows: list[dict[str, Any]] = [
        {
            "project": project.name,
            "project_id": project.id,
            **{
                kind.name: [o.name for o in catalog.objects[kind] if o.owning_project_id == project.id]
                for kind in (EXPERIMENT, DATASET)
            },
        }
        for project in catalog.projects
    ]
    if as_json:
        json_output.print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    # An id is to be copied; a name cut to `golden-questi…` is no dataset's.
    table = folded_table("project", "id", "experiments", "datasets")
    for row in rows:
        table.add_row(
            *plain_cells(
                row["project"], row["project_id"], ", ".join(row["experiments"]), ", ".join(row["datasets"])
            )
        )
    output_console().print(table)
