"""`bt-sync projects`: list what the API serves."""

from __future__ import annotations

import orjson
import typer
from rich.console import Console
from rich.table import Table

from connector.cli.app import app
from connector.cli.options import ApiKeyOption, ApiUrlOption, JsonOption, api_settings
from connector.client import BraintrustClient


@app.command()
def projects(
    api_url: str | None = ApiUrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """List projects with their experiments and datasets."""
    rows = []
    with BraintrustClient(api_settings(api_url, api_key)) as client:
        for project in client.list_projects():
            rows.append(
                {
                    "project": project.name,
                    "project_id": project.id,
                    "experiments": [e.name for e in client.list_experiments(project.id)],
                    "datasets": [d.name for d in client.list_datasets(project.id)],
                }
            )
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("project", "id", "experiments", "datasets")
    for row in rows:
        table.add_row(
            row["project"], row["project_id"], ", ".join(row["experiments"]), ", ".join(row["datasets"])
        )
    Console().print(table)
