"""Options shared by several commands, and turning them into settings.

Flags default to None so that an absent flag falls through to the
environment, then to the default (CLI flag > environment > default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from connector.config import ApiSettings, WarehouseSettings

ApiUrlOption = typer.Option(None, "--api-url", help="Braintrust API URL (env: BRAINTRUST_API_URL).")
ApiKeyOption = typer.Option(
    None, "--api-key", help="Braintrust API key (env: BRAINTRUST_API_KEY). Prefer the environment variable."
)
DuckDbOption = typer.Option(
    None, "--duckdb", help="DuckDB file (env: BT_SYNC_DUCKDB; default ./data/braintrust.duckdb)."
)
ParquetOption = typer.Option(
    None,
    "--parquet",
    help="Parquet root: directory or s3://… URI (env: BT_SYNC_PARQUET; default ./data/parquet).",
)
NoParquetOption = typer.Option(False, "--no-parquet", help="Do not write Parquet.")
JsonOption = typer.Option(False, "--json", help="Print a machine-readable JSON summary instead of tables.")


def api_settings(api_url: str | None, api_key: str | None) -> ApiSettings:
    """Build API settings from flags given on the command line."""
    return ApiSettings(**_given(api_url=api_url, api_key=api_key))


def warehouse_settings(duckdb: Path | None, parquet: str | None, no_parquet: bool) -> WarehouseSettings:
    """Build warehouse settings; `--no-parquet` wins over `--parquet` and the environment."""
    settings = WarehouseSettings(**_given(duckdb_path=duckdb, parquet_root=parquet))
    return settings.model_copy(update={"parquet_root": None}) if no_parquet else settings


def _given(**flags: Any) -> dict[str, Any]:
    return {name: value for name, value in flags.items() if value is not None}
