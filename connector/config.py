"""Settings, read with the precedence CLI flag > environment > default."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "https://api.braintrust.dev"


class ApiSettings(BaseSettings):
    """Where the Braintrust API is and how to authenticate.

    Args:
        api_url: base URL of the API (`BRAINTRUST_API_URL`).
        api_key: the API key (`BRAINTRUST_API_KEY`); a `SecretStr`, so it never
            shows in `repr`, logs or error messages.
        timeout_s: per-request timeout in seconds.
        max_attempts: attempts per request before a transient failure is raised.
        backoff_initial_s: first retry wait (jittered, doubling), unless the server sends `Retry-After`.
        backoff_max_s: longest wait between two attempts.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    api_url: str = Field(
        default=DEFAULT_API_URL, validation_alias=AliasChoices("api_url", "BRAINTRUST_API_URL")
    )
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("api_key", "BRAINTRUST_API_KEY")
    )
    timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)

    @field_validator("api_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class WarehouseSettings(BaseSettings):
    """Where synced data lands.

    Args:
        duckdb_path: the DuckDB database file (`BT_SYNC_DUCKDB`).
        parquet_root: local directory or `pyarrow.fs` URI such as `s3://bucket/prefix`
            (`BT_SYNC_PARQUET`); None disables Parquet output.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    duckdb_path: Path = Field(
        default=Path("data/braintrust.duckdb"),
        validation_alias=AliasChoices("duckdb_path", "BT_SYNC_DUCKDB"),
    )
    parquet_root: str | None = Field(
        default="data/parquet", validation_alias=AliasChoices("parquet_root", "BT_SYNC_PARQUET")
    )
