"""Shared fixtures: a real emulator on loopback, throwaway warehouses, fast API clients, a small disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.api.client import BraintrustClient
from connector.config import WarehouseSettings
from connector.emulator import Emulator
from tests.helpers import SmallDisk, fast_client, warehouse_in


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A running emulator with no data, on a free loopback port."""
    with Emulator(seed="empty") as running:
        yield running


@pytest.fixture
def demo_emulator() -> Iterator[Emulator]:
    """A running emulator with the demo seed."""
    with Emulator(seed="demo") as running:
        yield running


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseSettings:
    """A throwaway DuckDB destination (Parquet files and the DuckDB file of views) under `tmp_path`."""
    return warehouse_in(tmp_path)


@pytest.fixture
def push_client(emulator: Emulator) -> Iterator[BraintrustClient]:
    """A client of `emulator` with fast retries."""
    with fast_client(emulator) as client:
        yield client


@pytest.fixture
def small_disk_mb() -> int:
    """The size of `small_disk`; a test module that needs a smaller one overrides this fixture."""
    return 2


@pytest.fixture
def small_disk(tmp_path: Path, small_disk_mb: int) -> Iterator[SmallDisk]:
    """A tmpfs of `small_disk_mb` at `tmp_path / "small"`, for what a full disk does."""
    disk = SmallDisk(tmp_path / "small", small_disk_mb)
    yield disk
    disk.unmount()
