"""A setting reads the environment variable the README names for it, and no other."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ApiSettings, WarehouseSettings
from connector.defaults import DEFAULT_DUCKDB_PATH, DEFAULT_PARQUET_ROOT, DEFAULT_TIMEOUT_S


def test_a_setting_reads_only_its_documented_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    for name in ("BT_SYNC_TIMEOUT", "BT_SYNC_DUCKDB", "BT_SYNC_PARQUET"):
        monkeypatch.delenv(name, raising=False)
    # The fields' own names under the prefix: no variable of bt-sync's, so a stale one changes nothing.
    monkeypatch.setenv("BT_SYNC_TIMEOUT_S", "abc")
    monkeypatch.setenv("BT_SYNC_API_KEY", "undocumented")
    monkeypatch.setenv("BT_SYNC_DUCKDB_PATH", str(tmp_path / "elsewhere.duckdb"))
    monkeypatch.setenv("BT_SYNC_PARQUET_ROOT", str(tmp_path / "elsewhere"))
    api, warehouse = ApiSettings(), WarehouseSettings()
    assert (api.timeout_s, api.api_key) == (DEFAULT_TIMEOUT_S, None)
    assert warehouse.duckdb_path == Path(DEFAULT_DUCKDB_PATH)
    assert warehouse.parquet_root == DEFAULT_PARQUET_ROOT

    monkeypatch.setenv("BRAINTRUST_API_KEY", "documented")
    monkeypatch.setenv("BT_SYNC_TIMEOUT", "7")
    monkeypatch.setenv("BT_SYNC_DUCKDB", str(tmp_path / "w.duckdb"))
    api, warehouse = ApiSettings(), WarehouseSettings()
    assert api.api_key is not None and api.api_key.get_secret_value() == "documented"
    assert (api.timeout_s, warehouse.duckdb_path) == (7, tmp_path / "w.duckdb")
    # A flag's value still comes by the field's name, and outranks the variable.
    assert ApiSettings(timeout_s=3).timeout_s == 3
